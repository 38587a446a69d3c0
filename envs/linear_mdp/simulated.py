"""The simulated 5-state d-rectangular linear MDP of the DR-LSVI-UCB / R2PVI line of work (panxulab's code).

States x1..x5 (indices 0..4), start x1, H = 3; x4 is an absorbing fail state (reward 0), x5 an absorbing
goal (reward 1 per step). Actions a in {-1,+1}^4, p(a) = delta + <xi, a> with xi = (|xi|_1 / 4) 1.
phi(x_j, a) = (1 - p) e_j + p e_4 for j = 1, 2, 3; phi(x4, .) = e_3; phi(x5, .) = e_4.
Factors: mu_1 = 0.999 x2 + 0.001 x4, mu_2 = 0.999 x3 + 0.001 x4, mu_3 = x4, mu_4 = x5.
Rewards r_h = phi_4 for h >= 2 (theta_1 = 0). Test shift q (step 1 only): mu_{1,4} = (1 - q) x5 + q x4,
a TV perturbation of size q of factor 4 at step 1, which is where the uncertainty set is placed.
"""
from __future__ import annotations

import itertools

import torch

from envs.linear_mdp.model import LinearMDP

FAIL, GOAL = 3, 4


def action_set() -> torch.Tensor:
    """[16, 4] all sign vectors, ordered from all -1 to all +1."""
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=4)), dtype=torch.float64)


def simulated_linear_mdp(delta: float = 0.3, xi_norm: float = 0.1, horizon: int = 3) -> LinearMDP:
    acts = action_set()
    p = delta + acts @ torch.full((4,), xi_norm / 4, dtype=torch.float64)      # [A]
    S, A, d = 5, len(acts), 4
    phi = torch.zeros(S, A, d, dtype=torch.float64)
    for j in range(3):
        phi[j, :, j], phi[j, :, 3] = 1 - p, p
    phi[FAIL, :, 2] = 1.0
    phi[GOAL, :, 3] = 1.0
    mu = torch.zeros(d, S, dtype=torch.float64)
    mu[0, 1], mu[0, FAIL] = 0.999, 0.001
    mu[1, 2], mu[1, FAIL] = 0.999, 0.001
    mu[2, FAIL] = 1.0
    mu[3, GOAL] = 1.0
    factors = mu.expand(horizon, d, S).clone()
    phis = phi.expand(horizon, S, A, d).clone()
    reward = phis[..., 3].clone()
    reward[0] = 0.0                                                               # theta_1 = 0

    def kernel(q: float) -> torch.Tensor:
        f = factors.clone()
        f[0, 3, GOAL], f[0, 3, FAIL] = 1 - q, q
        return torch.einsum("hsad,hdn->hsan", phis, f)

    rho_mask = torch.zeros(horizon, d, dtype=torch.float64)
    rho_mask[0, 3] = 1.0
    mu0 = torch.zeros(S, dtype=torch.float64)
    mu0[0] = 1.0
    labels = tuple("".join("+" if x > 0 else "-" for x in a) for a in acts.tolist())
    return LinearMDP(name="LinearMDP", phi=phis, reward=reward, mu0=mu0, kernel_fn=kernel, nominal_shift=0.0,
                     test_shifts=tuple(round(0.1 * i, 1) for i in range(11)), rho_mask=rho_mask,
                     value_upper=torch.arange(horizon, 0, -1, dtype=torch.float64), fail_state=FAIL,
                     factors=factors, action_labels=labels)


def analytic_lines(mdp: LinearMDP) -> dict:
    """Exact test returns vs q of the non-robust policy (all +1) and the robust one (all -1 at x1, +1 after),
    and the threshold rho* = 1 - V(x2, step 2) / V(x5, step 2) above which the robust action wins."""
    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    plus = torch.zeros(H, S, A, dtype=torch.float64, device=mdp.reward.device)
    plus[..., A - 1] = 1.0
    robust = plus.clone()
    robust[0, 0] = 0.0
    robust[0, 0, 0] = 1.0
    V = mdp.evaluate(plus, mdp.kernel(0.0))
    return {"non_robust": lambda q: float(mdp.expected_return(plus, q)),
            "robust": lambda q: float(mdp.expected_return(robust, q)),
            "rho_star": float(1 - mdp.factors[0, 0] @ V[1] / V[1, GOAL]),
            "plus_policy": plus, "robust_policy": robust}
