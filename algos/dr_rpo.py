"""DR-RPO: distributionally robust regularized policy optimization on d-rectangular linear MDPs.

Paper: Gu, He, Liu, Xu, "Policy Regularized Distributionally Robust Markov Decision Processes with Linear
Function Approximation", arXiv 2510.14246 (2025). Spec: shared/specs/dr_rpo.md (no official code exists;
hyperparameters follow the same lab's R2PVI / DR-LSVI-UCB code as the spec lists them).

Each episode: act in the nominal environment with the current softmax policy; then, backward over steps,
estimate the robust Q of that policy by ridge regression with the per-factor dual of the TV (or KL)
uncertainty set plus a d-rectangular UCB bonus, evaluating V with the KL-to-reference regularizer; then take
a closed-form mirror-descent step toward exp(eta Q), regularized toward pi_ref. The baselines are the same
loop with one change (--algo): oppo (rho = 0), lsvi_ucb (rho = 0, greedy), dr_lsvi_ucb (robust, greedy).
All replications run as one batch on --device.

Run: python -m algos.dr_rpo --env LinearMDP --rho 0.6   |   python -m algos.dr_rpo --env AmericanPut
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Literal, Optional, Sequence

import torch

from classic_rl.config import parse_config, require, run_cli, to_dict
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import resolve_device, seed_everything, set_torch_threads
from envs.linear_mdp import LinearMDP, analytic_lines, make_linear_mdp, optimal_stopping_value

ALGOS = ("dr_rpo", "oppo", "lsvi_ucb", "dr_lsvi_ucb")
ROBUST = {"dr_rpo", "dr_lsvi_ucb"}
GREEDY = {"lsvi_ucb", "dr_lsvi_ucb"}


@dataclasses.dataclass
class DRRPOConfig:
    """Online robust policy optimization on a d-rectangular linear MDP, tested under dynamics shift."""

    env: Literal["LinearMDP", "AmericanPut"] = "LinearMDP"
    """LinearMDP: simulated 5-state MDP, shift q at step 1; AmericanPut: option on a price lattice, shift in p"""
    algo: Literal[ALGOS] = "dr_rpo"  # type: ignore[valid-type]
    """dr_rpo; oppo (non-robust policy optimization, rho forced to 0); lsvi_ucb (non-robust, greedy);
    dr_lsvi_ucb (robust, greedy)"""
    rho: Optional[float] = None
    """uncertainty radius on the factors the env marks as perturbable (LinearMDP: factor 4 at step 1;
    AmericanPut: every price factor); None = the env's preset (0.6 / 0.03)"""
    divergence: Literal["tv", "kl"] = "tv"
    """uncertainty set: total variation (exact sorted dual) or KL (dual maximized over beta)"""
    episodes: int = 100
    """K: online training episodes in the nominal environment"""
    replications: int = 10
    """independent runs, batched on the device"""
    beta: Optional[float] = None
    """UCB bonus scale; None = the env's preset (LinearMDP 1.0; AmericanPut 10, see presets)"""
    ridge: Optional[float] = None
    """ridge regularizer lambda; None = the env's preset (0.1 / 1.0)"""
    eta: Optional[float] = None
    """mirror-descent step size; None = the env's preset (LinearMDP 5: spec says 5 works at K = 100 and 1 is
    too slow; AmericanPut 0.05, scaled to its dollar payoffs)"""
    reg: float = 0.002
    """tau: strength of the KL regularizer toward the uniform reference policy"""
    delta: float = 0.3
    """LinearMDP: delta in p(a) = delta + <xi, a>"""
    xi_norm: float = 0.1
    """LinearMDP: ||xi||_1 (0.1 gives rho* ~ 0.48, 0.2 gives ~ 0.375)"""
    test_episodes: int = 200
    """Monte Carlo test episodes per shift and replication (exact test returns are always computed too)"""
    regret: bool = True
    """compute the exact robust regularized regret of every episode's policy from the known model (LinearMDP)"""
    seed: int = 1
    """random seed"""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """device for the batched replications"""
    run_dir: str = "runs"
    """root folder; the run goes to runs/<algo>/<env>/<seed>-<timestamp>/"""
    progress: bool = False
    """show a progress bar over episodes"""
    torch_threads: int = 1
    """torch CPU threads; the tensors here are tiny, so extra threads only add synchronization (0 = default)"""

    def validate(self) -> None:
        require(self.rho is None or 0 <= self.rho <= 1 or self.divergence == "kl",
                f"--rho must be in [0, 1] for TV, got {self.rho}")
        require(self.rho is None or self.rho >= 0, f"--rho must be >= 0, got {self.rho}")
        require(self.episodes > 0 and self.replications > 0, "--episodes and --replications must be positive")
        require(self.eta is None or self.eta > 0, f"--eta must be positive, got {self.eta}")
        require(self.reg >= 0, f"--reg must be >= 0, got {self.reg}")
        require(self.beta is None or self.beta >= 0, f"--beta must be >= 0, got {self.beta}")
        require(self.ridge is None or self.ridge > 0, f"--ridge must be positive, got {self.ridge}")
        require(self.test_episodes >= 0, "--test-episodes must be >= 0")
        require(self.torch_threads >= 0, "--torch-threads must be >= 0")


def presets(env: str) -> dict:
    if env == "AmericanPut":
        # rho and ridge from the R2PVI code. Its beta = 0.1 is an offline pessimism scale; online, with payoffs
        # in dollars (up to ~35), beta = 0.1 never explores "hold" and eta = 5 commits to "exercise" after one
        # episode, so beta and eta are rescaled to the reward range here (measured: beta=10, eta=0.05 holds).
        return {"rho": 0.03, "beta": 10.0, "ridge": 1.0, "eta": 0.05}
    return {"rho": 0.6, "beta": 1.0, "ridge": 0.1, "eta": 5.0}


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
    robust, greedy = cfg.algo in ROBUST, cfg.algo in GREEDY
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


def train(cfg: DRRPOConfig, log: bool = True) -> dict:
    # fields left at None take the env's preset (the CLI does this already; programmatic callers may not)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in presets(cfg.env).items() if getattr(cfg, k) is None})
    seed_everything(cfg.seed)
    set_torch_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    mdp = make_env(cfg).to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    R, K, H, S, A, d = cfg.replications, cfg.episodes, mdp.horizon, mdp.n_states, mdp.n_actions, mdp.dim
    robust, greedy = cfg.algo in ROBUST, cfg.algo in GREEDY
    rho = (cfg.rho if robust else 0.0) * mdp.rho_mask                               # [H, d]
    kern = mdp.kernel()
    log_ref = torch.full((H, S, A), -math.log(A), dtype=torch.float64, device=device)  # uniform pi_ref
    logits = log_ref.expand(R, H, S, A).clone()
    data_phi = torch.zeros(H, R, K, d, dtype=torch.float64, device=device)
    data_next = torch.zeros(H, R, K, dtype=torch.long, device=device)
    ridx = torch.arange(R, device=device)
    logger = RunLogger.create(cfg.run_dir, cfg.algo, cfg.env, cfg.seed, to_dict(cfg), str(device)) if log else None
    do_regret = cfg.regret and mdp.factors is not None
    if do_regret:
        v_star = robust_policy_value(mdp, logits.exp(), rho, cfg.reg, log_ref, cfg.divergence, optimal=True)
    Q = optimistic_q(mdp, data_phi[:, :, :0], data_next[:, :, :0], logits.exp(), rho, cfg, log_ref)
    regret = torch.zeros(R, dtype=torch.float64, device=device)
    history, progress, start = [], Progress(K, enabled=cfg.progress, desc=cfg.algo), time.time()
    for k in range(K):
        policy = torch.nn.functional.one_hot(Q.argmax(-1), A).double() if greedy else logits.exp()
        if do_regret:
            regret += v_star - robust_policy_value(mdp, policy, rho, cfg.reg, log_ref, cfg.divergence)
        s = torch.multinomial(mdp.mu0.expand(R, -1), 1, generator=gen).squeeze(-1)
        ep_return = torch.zeros(R, dtype=torch.float64, device=device)
        for h in range(H):
            a = torch.multinomial(policy[ridx, h, s], 1, generator=gen).squeeze(-1)
            data_phi[h, :, k] = mdp.phi[h, s, a]
            ep_return += mdp.reward[h, s, a]
            s = torch.multinomial(kern[h, s, a], 1, generator=gen).squeeze(-1)
            data_next[h, :, k] = s
        Q = optimistic_q(mdp, data_phi[:, :, :k + 1], data_next[:, :, :k + 1], policy, rho, cfg, log_ref)
        if not greedy:
            logits = mirror_descent(logits, Q, log_ref, cfg.eta, cfg.reg)
        history.append(regret.clone())         # stays on the device; read back once at the end
        if logger is not None and (k + 1) % max(1, K // 100) == 0:
            logger.log((k + 1) * H, episode=k + 1, train_return=ep_return.mean().item(),
                       cumulative_regret=regret.mean().item() if do_regret else float("nan"))
        progress.update(1)
    progress.close()
    train_seconds = time.time() - start
    per_rep = torch.stack(history).cpu()                                          # [K, R]
    curve = per_rep.mean(-1).tolist() if do_regret else [float("nan")] * K
    per_rep = per_rep.tolist() if do_regret else []
    final = torch.nn.functional.one_hot(Q.argmax(-1), A).double() if greedy else logits.exp()
    return report(cfg, mdp, final, curve, per_rep, train_seconds, gen, logger)


def report(cfg, mdp, final, curve, per_rep, train_seconds, gen, logger) -> dict:
    """Test the frozen policy under every shift: exact returns, Monte Carlo returns, reference lines."""
    summary: dict = {"algo": cfg.algo, "env": cfg.env, "rho": cfg.rho if cfg.algo in ROBUST else 0.0,
                     "train_seconds": train_seconds, "shifts": {}}
    refs = analytic_lines(mdp) if cfg.env == "LinearMDP" else None
    if refs is not None:
        p_robust = final[:, 0, 0, 0]
        summary["p_robust_action_at_x1"] = p_robust.tolist()
        summary["rho_star"] = refs["rho_star"]
        print(f"{cfg.algo} rho={summary['rho']}: P(robust action -1^4 at x1) = {p_robust.mean():.3f} "
              f"(rho* = {refs['rho_star']:.3f}); train {train_seconds:.1f}s")
    if not math.isnan(curve[-1]):
        summary["cumulative_regret"] = curve
        summary["cumulative_regret_per_replication"] = per_rep   # [K][R]
        print(f"cumulative robust regret after {len(curve)} episodes: {curve[-1]:.3f}")
    ref_cols = ("non_robust", "robust") if refs is not None else ("oracle",)
    print(f"{'shift':>6}{'exact mean':>12}{'std':>8}{'MC mean':>10}{'std':>8}" + "".join(f"{c:>12}" for c in ref_cols))
    for q in mdp.test_shifts:
        exact = mdp.expected_return(final, q)
        row = {"exact_mean": exact.mean().item(), "exact_std": exact.std().item() if len(exact) > 1 else 0.0}
        if cfg.test_episodes:
            mc = mdp.rollout_returns(final, q, cfg.test_episodes, gen).mean(-1)
            row.update(mc_mean=mc.mean().item(), mc_std=mc.std().item() if len(mc) > 1 else 0.0)
        refv = [refs[c](q) for c in ref_cols] if refs is not None else [optimal_stopping_value(mdp, q)]
        row.update(dict(zip(ref_cols, refv)))
        summary["shifts"][str(q)] = row
        print(f"{q:>6}{row['exact_mean']:>12.4f}{row['exact_std']:>8.4f}{row.get('mc_mean', float('nan')):>10.4f}"
              f"{row.get('mc_std', float('nan')):>8.4f}" + "".join(f"{v:>12.4f}" for v in refv))
        if logger is not None:
            logger.log_eval(cfg.episodes * mdp.horizon, exact.tolist(), shift=q)
    if logger is not None:
        logger.write_summary(summary)
        print(f"run directory: {logger.path}")
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(DRRPOConfig, argv, presets=presets, prog="python -m algos.dr_rpo")
    return train(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
