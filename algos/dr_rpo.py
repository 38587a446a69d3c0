"""DR-RPO: distributionally robust regularized policy optimization on d-rectangular linear MDPs.

    python -m algos.dr_rpo --env LinearMDP --rho 0.6          # DR-RPO on the simulated linear MDP
    python -m algos.dr_rpo --env LinearMDP --method oppo      # baselines: oppo | lsvi_ucb | dr_lsvi_ucb
    python -m algos.dr_rpo --env AmericanPut
    python -m algos.dr_rpo --resume runs/dr_rpo/LinearMDP/1-...  --total-steps 800   # extend a run exactly

Paper: Gu, He, Liu, Xu, "Policy Regularized Distributionally Robust Markov Decision Processes with Linear
Function Approximation", arXiv 2510.14246 (2025). Only the abstract was available to us and no official
code exists; the pieces below are derived from first principles and from the same lab's public code for
its predecessors (R2PVI, DR-LSVI-UCB: panxulab/Robust-Regularized-Pessimistic-Value-Iteration), which is
also where the environments and most settings come from.

Setting. Episodic, horizon H, features phi_h(s, a) in the simplex of R^d, nominal kernel
P_h(.|s, a) = sum_i phi_i(s, a) mu_{h,i}; the adversary may move each factor mu_{h,i} within a ball
D(mu, mu_{h,i}) <= rho_{h,i} (TV, or KL with --divergence kl). The regularized robust value of a policy pi is

    Q_h(s, a) = r_h(s, a) + sum_i phi_i(s, a) inf_{D(mu, mu_{h,i}) <= rho_{h,i}} E_mu[V_{h+1}],
    V_h(s) = sum_a pi_h(a|s) Q_h(s, a) - tau KL(pi_h(.|s) || pi_ref),  V_{H+1} = 0,

and the optimal one is V*_h = tau log sum_a pi_ref(a|s) exp(Q*_h(s, a) / tau) (a softmax policy).
TV dual per factor: inf_{TV(mu, mu0) <= rho} E_mu V = max_{alpha in [min V, max V]} E_mu0[min(V, alpha)] - rho
(alpha - min V), maximized exactly over the kinks (see tv_dual; the reference code's Nelder-Mead is
neither exact nor fast). KL dual: sup_{beta > 0} -beta log E_mu0[exp(-V/beta)] - beta rho.

Each learning episode k (one "step" of this entry point): every replication acts for H steps in the nominal
environment with its current softmax policy pi_k; then, backward over h, it estimates the robust Q of pi_k by
ridge regression (Lambda = ridge I + sum phi phi^T) with the per-factor dual applied to the regression
weights, plus the d-rectangular bonus beta sum_i phi_i sqrt((Lambda^-1)_ii), clips Q to [0, H - h + 1] and
sets V(fail) = 0 (the known absorbing fail state); then it takes the closed-form mirror-descent step

    log pi_{k+1} = (log pi_k + eta tau log pi_ref + eta Q_k) / (1 + eta tau) + const   (eta = --step-size).

Baselines, each the same loop with one change (--method): oppo (rho = 0), lsvi_ucb (rho = 0, greedy in Q,
bonus beta ||phi||_{Lambda^-1}), dr_lsvi_ucb (robust, greedy). Regret (LinearMDP, whose factors are known):
sum_k V*_1 - V^{pi_k}_1 in regularized robust values, computed exactly from the model.

Settings: H = 3, 16 actions, delta = 0.3, ||xi||_1 = 0.1, beta = 1, ridge = 0.1, K = 100 episodes, 20
replications, test shifts q = 0, 0.1, ..., 1 are the reference code's; rho = 0.6 sits on factor 4 at step 1
(the factor the test shift perturbs; rho on every factor makes DR-RPO learn the non-robust action). eta = 5
and tau = 0.002 are ours (not published; eta = 1 is too slow at K = 100 and tau >= 0.01 makes the optimum
nearly uniform, since the Q-gaps are about 0.05); pi_ref is uniform. American put: rho = 0.03 and ridge = 1
from the R2PVI code; its beta = 0.1 is an offline pessimism scale, and online with dollar payoffs it never
explores "hold", so beta = 10 and eta = 0.05 (measured to hold).

What the run records. A step is one learning episode k of the K-episode loop (--total-steps = K); the
--n-envs replications are independent learners, each with its own data and policy, run as one batch on
--device (so a step is n_envs environment episodes of H steps). metrics.csv: a row every max(1, K // 200)
episodes and at the last (mean training return over replications, mean cumulative regret; the regret
after every episode is in summary.json). eval.csv: every --eval-every episodes, the exact
expected return of each replication's current policy under the least favourable test shift (its `returns`),
with the mean at every shift beside it. At the end the frozen policies are tested under every shift, exactly
and with --eval-episodes Monte Carlo episodes per shift and replication. Headline: `worst_shift_test_return`,
the mean over replications of the exact test return under the least favourable test shift. Why this one:
it is the max-min quantity a robust method is for, it is exact (no Monte Carlo noise), and it exists for both
envs (the regret needs the true factors, so LinearMDP only; it is in summary.json as cumulative_regret).
Checkpoints hold the policies, Q, the collected data, the regret and the random stream, so --resume
continues exactly.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import torch

from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.session import LoopState, RunSession
from envs.linear_mdp import LinearMDP, analytic_lines, make_linear_mdp, optimal_stopping_value

METHODS = ("dr_rpo", "oppo", "lsvi_ucb", "dr_lsvi_ucb")
ROBUST = {"dr_rpo", "dr_lsvi_ucb"}
GREEDY = {"lsvi_ucb", "dr_lsvi_ucb"}


@dataclass
class DRRPOConfig(RunConfig):
    """Online robust policy optimization on a d-rectangular linear MDP, tested under dynamics shift."""

    env: Literal["LinearMDP", "AmericanPut"] = "LinearMDP"
    """LinearMDP: simulated 5-state MDP, shift q at step 1; AmericanPut: option on a price lattice, shift in p"""
    total_steps: int = 100
    """K: learning episodes (one step = one episode k of the K-episode loop, in which every replication plays
    one H-step episode in the nominal env and then updates its policy)"""
    n_envs: int = 10
    """independent replications (each its own environment, data and policy), run as one batch on --device"""
    eval_every: int = 10
    """exact evaluation of the current policies under every test shift every this many episodes (0 = only at
    the end)"""
    eval_episodes: int = 200
    """Monte Carlo test episodes per test shift and replication for the final policies (the exact test returns
    are always computed too)"""
    checkpoint_every: int = 0
    """save a resumable checkpoint every this many learning episodes (0 = only at the end)"""
    method: Literal[METHODS] = "dr_rpo"  # type: ignore[valid-type]
    """dr_rpo; oppo (non-robust policy optimization, rho forced to 0); lsvi_ucb (non-robust, greedy);
    dr_lsvi_ucb (robust, greedy)"""
    rho: Optional[float] = None
    """uncertainty radius on the factors the env marks as perturbable (LinearMDP: factor 4 at step 1;
    AmericanPut: every price factor); None = the env's preset (0.6 / 0.03)"""
    divergence: Literal["tv", "kl"] = "tv"
    """uncertainty set: total variation (exact sorted dual) or KL (dual maximized over beta)"""
    beta: Optional[float] = None
    """UCB bonus scale; None = the env's preset (LinearMDP 1.0; AmericanPut 10)"""
    ridge: Optional[float] = None
    """ridge regularizer (the paper's lambda); None = the env's preset (0.1 / 1.0)"""
    step_size: Optional[float] = None
    """mirror-descent step size (the paper's eta); None = the env's preset (LinearMDP 5: 1 is too slow at
    K = 100; AmericanPut 0.05, scaled to its dollar payoffs)"""
    reg: float = 0.002
    """strength of the KL regularizer toward the uniform reference policy (the paper's tau)"""
    delta: float = 0.3
    """LinearMDP: delta in p(a) = delta + <xi, a>"""
    xi_norm: float = 0.1
    """LinearMDP: ||xi||_1 (0.1 gives rho* ~ 0.48, 0.2 gives ~ 0.375)"""
    regret: bool = True
    """compute the exact robust regularized regret of every episode's policy from the known model (LinearMDP)"""

    def validate(self) -> None:
        super().validate()
        require(self.rho is None or self.rho >= 0, f"--rho must be >= 0, got {self.rho}")
        require(self.rho is None or self.rho <= 1 or self.divergence == "kl",
                f"--rho must be in [0, 1] for TV, got {self.rho}")
        require(self.step_size is None or self.step_size > 0, f"--step-size must be positive, got {self.step_size}")
        require(self.reg >= 0, f"--reg must be >= 0, got {self.reg}")
        require(self.beta is None or self.beta >= 0, f"--beta must be >= 0, got {self.beta}")
        require(self.ridge is None or self.ridge > 0, f"--ridge must be positive, got {self.ridge}")


def presets(env: str) -> dict:
    if env == "AmericanPut":
        # rho and ridge from the R2PVI code. Its beta = 0.1 is an offline pessimism scale; online, with payoffs
        # in dollars (up to ~35), beta = 0.1 never explores "hold" and eta = 5 commits to "exercise" after one
        # episode, so beta and eta are rescaled to the reward range here (measured: beta=10, eta=0.05 holds).
        return {"rho": 0.03, "beta": 10.0, "ridge": 1.0, "step_size": 0.05}
    return {"rho": 0.6, "beta": 1.0, "ridge": 0.1, "step_size": 5.0}


# ----- robust expectations: duals of the per-factor uncertainty sets --------------------------------
def tv_dual(weights: torch.Tensor, values: torch.Tensor, rho: torch.Tensor, v_min, v_max) -> torch.Tensor:
    """max_{alpha in [v_min, v_max]} sum_n w[i, n] min(V_n, alpha) - rho_i (alpha - v_min), per factor i.

    weights [..., d, n] (the nominal factor distributions, or ridge weights estimating them), values [..., n],
    rho [..., d]. With exact factors and v_min = min over ALL states this is inf_{TV(mu, mu0_i) <= rho_i} E_mu V.
    The objective is piecewise linear in alpha with kinks at the V_n, so the max over the kinks and the two
    ends is exact (the reference code's Nelder-Mead is neither). Sorting V once gives every kink's value by
    prefix sums: z(alpha) = sum_{V_k < alpha} w_k V_k + alpha sum_{V_k >= alpha} w_k, O(n log n) per factor.
    """
    v_min = torch.as_tensor(v_min, dtype=values.dtype, device=values.device).expand(values.shape[:-1])
    v_max = torch.as_tensor(v_max, dtype=values.dtype, device=values.device).expand(values.shape[:-1])
    alphas = torch.cat([v_min[..., None], values.clamp(max=v_max[..., None]), v_max[..., None]], -1)
    alphas = torch.maximum(alphas, v_min[..., None]).contiguous()                    # [..., n + 2]
    v_sorted, order = values.sort(-1)
    w_sorted = weights.gather(-1, order[..., None, :].expand_as(weights))
    zero = torch.zeros(*w_sorted.shape[:-1], 1, dtype=w_sorted.dtype, device=w_sorted.device)
    prefix = torch.cat([zero, (w_sorted * v_sorted[..., None, :]).cumsum(-1)], -1)   # [..., d, n + 1]
    suffix = torch.cat([w_sorted.flip(-1).cumsum(-1).flip(-1), zero], -1)           # sum_{k >= j} w_k
    below = torch.searchsorted(v_sorted.contiguous(), alphas)                        # #{V_k < alpha}
    idx = below[..., None, :].expand(*weights.shape[:-1], alphas.shape[-1])
    z = prefix.gather(-1, idx) + alphas[..., None, :] * suffix.gather(-1, idx)       # [..., d, n + 2]
    return (z - rho[..., None] * (alphas - v_min[..., None])[..., None, :]).max(-1).values


def kl_dual(weights: torch.Tensor, values: torch.Tensor, rho: torch.Tensor, n_grid: int = 181,
            refine: int = 40) -> torch.Tensor:
    """sup_{beta > 0} -beta log E_mu0[exp(-V / beta)] - beta rho, per factor (= inf over the KL ball).

    E_mu0[exp(-V/beta)] is estimated as 1 + w . (exp(-V/beta) - 1), clipped at 1e-6: regressing
    exp(-V/beta) - 1 and adding 1 back reduces ridge shrinkage bias (the lab's code does this). The sup is
    taken on a log grid of beta and refined by golden-section search on log beta around the best point.
    rho = 0 gives the nominal expectation w . V (the beta -> infinity limit).
    """
    if values.shape[-1] == 0:                                                       # no data yet
        return torch.zeros(weights.shape[:-1], dtype=values.dtype, device=values.device)
    scale = values.abs().amax(-1, keepdim=True).clamp(min=1e-3)[..., None]      # [..., 1, 1]
    # shift by the smallest value each factor puts weight on, so exp(-(V - m) / beta) = 1 at that value:
    # without it, small beta underflows every term and the "+1 back" estimate cancels to noise
    big = torch.finfo(values.dtype).max
    m = torch.where(weights != 0, values[..., None, :].expand_as(weights), big).amin(-1)   # [..., d]
    m = torch.where(m == big, 0.0, m)

    def objective(beta):                                                            # beta [..., d, g]
        e = torch.exp(-(values[..., None, None, :] - m[..., None, None]) / beta[..., None])  # [..., d, g, n]
        e = torch.where(weights[..., None, :] != 0, e, 1.0)   # unweighted states may overflow: 0 * inf
        z = 1 + torch.einsum("...dn,...dgn->...dg", weights, e - 1)
        return m[..., None] - beta * torch.log(z.clamp(min=1e-6)) - beta * rho[..., None]

    grid = torch.logspace(-6, 3, n_grid, dtype=values.dtype, device=values.device)
    betas = (scale * grid).expand(*weights.shape[:-1], n_grid)
    vals = objective(betas)
    j = vals.argmax(-1, keepdim=True)
    lo = torch.log(betas.gather(-1, (j - 1).clamp(min=0)))
    hi = torch.log(betas.gather(-1, (j + 1).clamp(max=n_grid - 1)))
    g = (math.sqrt(5) - 1) / 2
    for _ in range(refine):
        x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
        better = objective(torch.exp(x1)) > objective(torch.exp(x2))
        hi, lo = torch.where(better, x2, hi), torch.where(better, lo, x1)
    best = torch.maximum(vals.max(-1).values, objective(torch.exp((lo + hi) / 2)).squeeze(-1))
    nominal = torch.einsum("...dn,...n->...d", weights, values)
    return torch.where(rho > 0, torch.minimum(best, nominal), nominal)


def robust_expectation(weights, values, rho, divergence: str, v_min, v_max):
    if divergence == "kl":
        return kl_dual(weights, values, rho)
    return tv_dual(weights, values, rho, v_min, v_max)


# ----- policy evaluation and improvement pieces ----------------------------------------------------
def kl_to_ref(policy: torch.Tensor, log_ref: torch.Tensor) -> torch.Tensor:
    return (policy * (torch.log(policy.clamp(min=1e-300)) - log_ref)).sum(-1)


def regularized_value(policy: torch.Tensor, Q: torch.Tensor, log_ref: torch.Tensor, tau: float) -> torch.Tensor:
    """V(s) = sum_a pi(a|s) Q(s, a) - tau KL(pi(.|s) || pi_ref(.|s))."""
    return (policy * Q).sum(-1) - tau * kl_to_ref(policy, log_ref)


def mirror_descent(logits: torch.Tensor, Q: torch.Tensor, log_ref: torch.Tensor, eta: float, tau: float):
    """argmax_p <p, Q> - tau KL(p || pi_ref) - KL(p || pi_k) / eta in closed form (log-probabilities):
    log pi_{k+1} = (log pi_k + eta tau log pi_ref + eta Q) / (1 + eta tau) + const. tau = 0 is OPPO's update."""
    new = (torch.log_softmax(logits, -1) + eta * tau * log_ref + eta * Q) / (1 + eta * tau)
    return torch.log_softmax(new, -1)


def bonus(phi: torch.Tensor, lam_inv: torch.Tensor, beta: float, d_rectangular: bool) -> torch.Tensor:
    """UCB bonus at every (s, a): phi [S, A, d], lam_inv [R, d, d] -> [R, S, A].
    d-rectangular: beta sum_i phi_i sqrt((Lambda^-1)_ii); standard LSVI: beta ||phi||_{Lambda^-1}."""
    if d_rectangular:
        return beta * torch.einsum("sad,rd->rsa", phi, torch.diagonal(lam_inv, dim1=-2, dim2=-1).sqrt())
    return beta * torch.einsum("sad,rde,sae->rsa", phi, lam_inv, phi).clamp(min=0).sqrt()


def optimistic_q(mdp: LinearMDP, data_phi: torch.Tensor, data_next: torch.Tensor, policy: torch.Tensor,
                 rho: torch.Tensor, cfg: "DRRPOConfig", log_ref: torch.Tensor) -> torch.Tensor:
    """Backward optimistic (robust) evaluation of `policy` [R, H, S, A] (greedy algos: of the max) from
    data_phi [H, R, n, d], data_next [H, R, n]. Returns Q [R, H, S, A]."""
    H, R = mdp.horizon, data_phi.shape[1]
    robust, greedy = cfg.method in ROBUST, cfg.method in GREEDY
    eye = torch.eye(mdp.dim, dtype=torch.float64, device=data_phi.device)
    V_next = torch.zeros(R, mdp.n_states, dtype=torch.float64, device=data_phi.device)
    Q = torch.zeros(R, H, mdp.n_states, mdp.n_actions, dtype=torch.float64, device=data_phi.device)
    for h in reversed(range(H)):
        Phi = data_phi[h]
        lam_inv = torch.linalg.inv(cfg.ridge * eye + Phi.transpose(1, 2) @ Phi)
        W = lam_inv @ Phi.transpose(1, 2)                                           # [R, d, n]
        Vn = V_next.gather(1, data_next[h])                                          # [R, n]
        v_max = float(mdp.value_upper[h + 1]) if h + 1 < H else 0.0
        if robust:
            # V_min = 0: the known fail state is absorbing with value 0 and Q is clipped at 0
            nu = robust_expectation(W, Vn, rho[h].expand(R, -1), cfg.divergence, 0.0, v_max)
        else:
            nu = torch.einsum("rdn,rn->rd", W, Vn)
        q = mdp.reward[h] + torch.einsum("sad,rd->rsa", mdp.phi[h], nu) \
            + bonus(mdp.phi[h], lam_inv, cfg.beta, d_rectangular=robust)
        Q[:, h] = q.clamp(0.0, float(mdp.value_upper[h]))
        V_next = Q[:, h].max(-1).values if greedy else regularized_value(policy[:, h], Q[:, h], log_ref[h], cfg.reg)
        if mdp.fail_state is not None:
            V_next[:, mdp.fail_state] = 0.0   # the bonus would otherwise inflate the known zero value
    return Q


# ----- exact robust values from the known model (for regret) ---------------------------------------
def robust_policy_value(mdp: LinearMDP, policy: torch.Tensor, rho: torch.Tensor, tau: float,
                        log_ref: torch.Tensor, divergence: str = "tv", optimal: bool = False) -> torch.Tensor:
    """Regularized robust value at the start, V_1(s_1), of policies [R, H, S, A] (optimal=True: of the
    optimal regularized robust policy, V*_h = tau logsumexp(log pi_ref + Q*/tau)). Needs the true factors."""
    R = policy.shape[0]
    V = torch.zeros(R, mdp.n_states, dtype=torch.float64, device=policy.device)
    for h in reversed(range(mdp.horizon)):
        f = mdp.factors[h].expand(R, -1, -1)
        nu = robust_expectation(f, V, rho[h].expand(R, -1), divergence, V.min(-1).values, V.max(-1).values)
        Q = mdp.reward[h] + torch.einsum("sad,rd->rsa", mdp.phi[h], nu)
        if optimal:
            V = tau * torch.logsumexp(log_ref[h] + Q / tau, -1) if tau > 0 else Q.max(-1).values
        else:
            V = regularized_value(policy[:, h], Q, log_ref[h], tau)
    return V @ mdp.mu0


# ----- training loop -------------------------------------------------------------------------------
def make_env(cfg: DRRPOConfig) -> LinearMDP:
    if cfg.env == "LinearMDP":
        return make_linear_mdp(cfg.env, delta=cfg.delta, xi_norm=cfg.xi_norm)
    return make_linear_mdp(cfg.env, seed=cfg.seed)


@dataclass
class DRRPOLoop(LoopState):
    """What a checkpoint holds besides the random stream: policies, Q, the data and the regret so far."""

    logits: Any = None          # [R, H, S, A] log pi_k
    Q: Any = None               # [R, H, S, A] the last optimistic (robust) Q
    data_phi: Any = None        # [H, R, capacity, d] features of the visited (s, a)
    data_next: Any = None       # [H, R, capacity] next states
    regret: Any = None          # [R] cumulative regret
    regret_history: Any = None  # [k, R] cumulative regret after each episode


def train(cfg: DRRPOConfig, argv: Sequence[str] | None = None) -> dict:
    """Train, test the final policies under every shift and return summary.json (plus `run_dir`)."""
    # fields left at None take the env's preset (the CLI does this already; programmatic callers may not)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in presets(cfg.env).items() if getattr(cfg, k) is None})
    run = RunSession(cfg, "dr_rpo", argv=argv, steps_name="episodes")
    cfg, device = run.cfg, run.device
    run.log_interval = max(1, cfg.total_steps // 200)  # <= ~200 rows: the logger rewrites metrics.csv per row
    mdp = make_env(cfg).to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    R, H, S, A, d = cfg.n_envs, mdp.horizon, mdp.n_states, mdp.n_actions, mdp.dim
    robust, greedy = cfg.method in ROBUST, cfg.method in GREEDY
    rho = (cfg.rho if robust else 0.0) * mdp.rho_mask                               # [H, d]
    kern = mdp.kernel()
    log_ref = torch.full((H, S, A), -math.log(A), dtype=torch.float64, device=device)  # uniform pi_ref
    ridx = torch.arange(R, device=device)
    do_regret = cfg.regret and mdp.factors is not None
    capacity = min(cfg.total_steps, 1024)
    logits = log_ref.expand(R, H, S, A).clone()
    loop = DRRPOLoop(logits=logits, data_phi=torch.zeros(H, R, capacity, d, dtype=torch.float64, device=device),
                     data_next=torch.zeros(H, R, capacity, dtype=torch.long, device=device),
                     regret=torch.zeros(R, dtype=torch.float64, device=device),
                     regret_history=torch.zeros(0, R, dtype=torch.float64, device=device))
    loop.Q = optimistic_q(mdp, loop.data_phi[:, :, :0], loop.data_next[:, :, :0], logits.exp(), rho, cfg, log_ref)
    if do_regret:
        v_star = robust_policy_value(mdp, logits.exp(), rho, cfg.reg, log_ref, cfg.divergence, optimal=True)

    def current_policy() -> torch.Tensor:
        return torch.nn.functional.one_hot(loop.Q.argmax(-1), A).double() if greedy else loop.logits.exp()

    def exact_test_returns(policy: torch.Tensor) -> torch.Tensor:
        """[shifts, R]: the exact expected return of every replication's policy under every test shift."""
        return torch.stack([mdp.expected_return(policy, q) for q in mdp.test_shifts])

    def evaluate() -> dict:
        exact = exact_test_returns(current_policy())
        return {"returns": exact.min(0).values.tolist(),
                **{f"return_at_{q:g}": exact[i].mean().item() for i, q in enumerate(mdp.test_shifts)}}

    with run:
        run.track(evaluate=evaluate, loop=loop, gen=gen)
        while run.step < cfg.total_steps:
            k = run.step
            if k >= loop.data_phi.shape[2]:  # grow the data arrays (doubling) instead of sizing them by K
                grow = loop.data_phi.shape[2]
                loop.data_phi = torch.cat([loop.data_phi, torch.zeros_like(loop.data_phi[:, :, :grow])], 2)
                loop.data_next = torch.cat([loop.data_next, torch.zeros_like(loop.data_next[:, :, :grow])], 2)
            policy = current_policy()
            if do_regret:
                loop.regret = loop.regret + v_star - robust_policy_value(mdp, policy, rho, cfg.reg, log_ref,
                                                                         cfg.divergence)
            s = torch.multinomial(mdp.mu0.expand(R, -1), 1, generator=gen).squeeze(-1)
            ep_return = torch.zeros(R, dtype=torch.float64, device=device)
            for h in range(H):
                a = torch.multinomial(policy[ridx, h, s], 1, generator=gen).squeeze(-1)
                loop.data_phi[h, :, k] = mdp.phi[h, s, a]
                ep_return += mdp.reward[h, s, a]
                s = torch.multinomial(kern[h, s, a], 1, generator=gen).squeeze(-1)
                loop.data_next[h, :, k] = s
            loop.Q = optimistic_q(mdp, loop.data_phi[:, :, :k + 1], loop.data_next[:, :, :k + 1], policy, rho, cfg,
                                  log_ref)
            if not greedy:
                loop.logits = mirror_descent(loop.logits, loop.Q, log_ref, cfg.step_size, cfg.reg)
            loop.regret_history = torch.cat([loop.regret_history, loop.regret[None]])
            run.advance(1, train_return_mean=ep_return.mean(), q_mean=loop.Q.mean(),
                        cumulative_regret=loop.regret.mean() if do_regret else "")
        train_seconds = run.logger.wall_time()
        final = current_policy()
        extra = shift_report(cfg, mdp, final, exact_test_returns(final))
        curve = loop.regret_history.mean(-1).tolist() if do_regret else None
        if curve:
            print(f"cumulative robust regret after {len(curve)} episodes: {curve[-1]:.3f}")
        run.finish(headline=("worst_shift_test_return", extra.pop("worst_shift_test_return")), **extra,
                   method=cfg.method, rho=cfg.rho if robust else 0.0, train_seconds=train_seconds,
                   final_cumulative_regret=curve[-1] if curve else None, cumulative_regret=curve,
                   cumulative_regret_per_replication=loop.regret_history.tolist() if do_regret else None)
    return {**json.loads((run.path / "summary.json").read_text()), "run_dir": str(run.path)}


def shift_report(cfg: DRRPOConfig, mdp: LinearMDP, final: torch.Tensor, exact: torch.Tensor) -> dict:
    """Test the frozen policies under every shift: exact returns, Monte Carlo returns (their own random stream,
    so a resumed run's training draws are untouched), the reference lines; print the table."""
    out: dict = {"shifts": {}, "worst_shift_test_return": exact.min(0).values.mean().item()}
    refs = analytic_lines(mdp) if cfg.env == "LinearMDP" else None
    if refs is not None:
        p_robust = final[:, 0, 0, 0]
        out["p_robust_action_at_x1"] = p_robust.tolist()
        out["rho_star"] = refs["rho_star"]
        print(f"{cfg.method}: P(robust action -1^4 at x1) = {p_robust.mean():.3f} (rho* = {refs['rho_star']:.3f})")
    test_gen = torch.Generator(device=final.device).manual_seed(cfg.seed + 10_000)
    ref_cols = ("non_robust", "robust") if refs is not None else ("oracle",)
    print(f"{'shift':>6}{'exact mean':>12}{'std':>8}{'MC mean':>10}{'std':>8}" + "".join(f"{c:>12}" for c in ref_cols))
    for i, q in enumerate(mdp.test_shifts):
        mc = mdp.rollout_returns(final, q, cfg.eval_episodes, test_gen).mean(-1)
        several = exact.shape[1] > 1
        row = {"exact_mean": exact[i].mean().item(), "exact_std": exact[i].std().item() if several else 0.0,
               "mc_mean": mc.mean().item(), "mc_std": mc.std().item() if several else 0.0}
        refv = [refs[c](q) for c in ref_cols] if refs is not None else [optimal_stopping_value(mdp, q)]
        row.update(dict(zip(ref_cols, refv)))
        out["shifts"][str(q)] = row
        print(f"{q:>6}{row['exact_mean']:>12.4f}{row['exact_std']:>8.4f}{row['mc_mean']:>10.4f}"
              f"{row['mc_std']:>8.4f}" + "".join(f"{v:>12.4f}" for v in refv))
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(DRRPOConfig, argv, presets=presets, prog="python -m algos.dr_rpo", description=__doc__)
    summary = train(cfg, argv=argv)
    finish_run(summary["run_dir"])
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
