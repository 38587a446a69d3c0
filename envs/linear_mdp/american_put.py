"""American put option on a binomial price lattice (the R2PVI / DR-LSVI-UCB line of work's second testbed).

Price s_{h+1} = 1.02 s_h w.p. p (up), 0.98 s_h otherwise; nominal p0 = 0.5; strike 100; H = 20.
s_1 ~ U[95, 105] is drawn once per environment instance (as in the reference code), so the reachable
prices form a lattice: state u at step h is the node with u up-moves, price s_1 1.02^u 0.98^(h-u).
One extra absorbing state (index H) is where the episode sits after exercising.
Actions: 0 = hold (reward 0), 1 = exercise (reward max(0, strike - s)).
Features: d hat functions phi_i(s) = max(0, 1 - |s - s_i| / Delta), s_i = 80 + i Delta,
Delta = (160 - 60) / d, for "hold"; "exercise" gets its own indicator feature (factor = the absorbing
state, value 0), so its value is known exactly and only "hold" is learned, as in the reference code.
The hat features do not sum to one near the grid edges, which breaks the simplex assumption of
d-rectangular theory; they are kept as in the reference code (panxulab/Robust-Regularized-Pessimistic-Value-
Iteration).
"""
from __future__ import annotations

import torch

from envs.linear_mdp.model import LinearMDP

HOLD, EXERCISE = 0, 1


def hat_features(price: torch.Tensor, d: int) -> torch.Tensor:
    delta = (160.0 - 60.0) / d
    anchors = 80.0 + delta * torch.arange(d, dtype=torch.float64)
    return torch.clamp(1 - (price[..., None] - anchors).abs() / delta, min=0.0)


def american_put(horizon: int = 20, d: int = 30, strike: float = 100.0, p0: float = 0.5, up: float = 1.02,
                 down: float = 0.98, seed: int = 0) -> LinearMDP:
    g = torch.Generator().manual_seed(seed)
    s1 = 95.0 + 10.0 * torch.rand((), generator=g, dtype=torch.float64)
    H, S, A, D = horizon, horizon + 1, 2, d + 1
    done = H                                                   # absorbing "exercised" state
    h = torch.arange(H, dtype=torch.float64)[:, None]
    u = torch.arange(H, dtype=torch.float64)[None, :]
    price = s1 * up ** u * down ** (h - u)                     # [H, H] (entries with u > h are unreachable)
    phi = torch.zeros(H, S, A, D, dtype=torch.float64)
    phi[:, :H, HOLD, :d] = hat_features(price, d)
    phi[:, :H, EXERCISE, d] = 1.0
    phi[:, done, :, d] = 1.0
    reward = torch.zeros(H, S, A, dtype=torch.float64)
    reward[:, :H, EXERCISE] = torch.clamp(strike - price, min=0.0)

    def kernel(p: float) -> torch.Tensor:
        P = torch.zeros(H, S, A, S, dtype=torch.float64)
        idx = torch.arange(H - 1)
        P[:, idx, HOLD, idx + 1] = p
        P[:, idx, HOLD, idx] = 1 - p
        P[:, H - 1, HOLD, done] = 1.0                           # unreachable node: park it
        P[:, :, EXERCISE, done] = 1.0
        P[:, done, :, :] = 0.0
        P[:, done, :, done] = 1.0
        return P

    rho_mask = torch.zeros(H, D, dtype=torch.float64)
    rho_mask[:, :d] = 1.0
    mu0 = torch.zeros(S, dtype=torch.float64)
    mu0[0] = 1.0
    return LinearMDP(name="AmericanPut", phi=phi, reward=reward, mu0=mu0, kernel_fn=kernel, nominal_shift=p0,
                     test_shifts=(0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0), rho_mask=rho_mask,
                     value_upper=torch.full((H,), strike, dtype=torch.float64), fail_state=done,
                     factors=None, action_labels=("hold", "exercise"))


def optimal_stopping_value(mdp: LinearMDP, p: float) -> float:
    """The best non-robust expected payoff when the true up-probability is p (backward induction)."""
    kern = mdp.kernel(p)
    V = torch.zeros(mdp.n_states, dtype=torch.float64, device=mdp.reward.device)
    for h in reversed(range(mdp.horizon)):
        V = (mdp.reward[h] + kern[h] @ V).max(-1).values
    return float(V[0])
