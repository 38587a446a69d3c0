"""PARL / A-PARL: policy alignment as stochastic bilevel optimization (Chakraborty, Bedi, Koppel, Wang,
Manocha, Wang, Huang, "PARL: A Unified Framework for Policy Alignment in Reinforcement Learning", arXiv
2308.02585, ICLR 2024). No official code exists; this follows the equations below (derivation in docs/parl.md).

    lower:  theta*(nu) = argmax_theta V(nu, theta),   V = E_{tau ~ pi_theta}[sum_t gamma^t (r_nu - tau_ent log pi_theta)]
    upper:  max_nu F(nu) = E_{y ~ rho(.; theta*(nu))}[ U(nu, y) ]
    grad F = E_y[grad_nu U(nu, y)]                                   direct term (PEBBLE-style reward learning)
           + J(nu)^T E_y[(U(nu, y) - b) grad_theta log rho(y; theta)]   implicit correction, J = d theta*/d nu
    J^T v  = -(grad^2_{nu theta} V) [grad^2_{theta theta} V]^{-1} v    (implicit function theorem)

A-PARL outer iteration: lower-level policy steps on r_nu; upper-level data from the current policy
(preference: segment pairs labelled by a scripted teacher, U = Bradley-Terry log-likelihood; utility:
trajectories, U = true return); nu <- nu + alpha (g1 + w g2), g1 the direct term, g2 the correction,
w = --correction-weight (w = 0: the PEBBLE-style update). `--correction` picks how J^T v is computed:

    cg        solve (-H + lambda I) x = v by conjugate gradient with Hessian-vector products of the lower objective
              (H = grad^2_{theta theta} V, lambda = --cg-damping), then g2 = grad^2_{nu theta} V x
    unrolled  one step theta'(nu) = theta + beta grad_theta V(nu, theta) (beta = --unroll-lr), g2 = d/dnu [v . theta'(nu)]
              = beta grad^2_{nu theta} V v  (i.e. H^{-1} replaced by -beta I)
    exact     (tabular only) forward differentiation of the soft Bellman recursion: g2 = sum v . d log pi_nu / d nu

Two settings:

* `--env ChainToy` (exact, envs/tabular/parl_chain.py): tabular reward nu[s, a], the lower level solved
  exactly (soft value iteration each outer iteration), the Hessian and mixed derivatives of the exact lower
  objective, trajectories sampled exactly from the enumerated law (`--estimator sampled`, 8 pairs per
  iteration) or exact expectations over all 729 trajectories (`--estimator exact`, gradient ascent on F
  itself). A step is one outer iteration; eval.csv holds the exact true return, F(nu) and the queries used.

      python -m algos.parl --env ChainToy --feedback utility --correction-weight 1
      python -m algos.parl --env ChainToy --feedback preference --correction-weight 0     # PEBBLE-style

* `--env Walker2d | HalfCheetah` (deep, PEBBLE-style): SAC (classic_rl/sac.py) on the learned reward
  r_psi = mean of an ensemble of tanh-output reward nets, the replay buffer relabelled after every reward
  update, a scripted B-Pref teacher (perfectly rational, ties 1/2) on segments of --segment steps, a query
  budget --max-feedback spent --queries-per-session at a time every --num-interact env steps. The queries of a
  session are fresh segments of the current policy (rolled out in a separate env; their env steps count and
  their transitions enter the replay buffer). Reward learning: --reward-updates Adam steps per session on the
  Bradley-Terry loss over all labelled queries (g1), plus -w g2 in every step, g2 computed once per session on
  the fresh pairs by the one-step unrolled correction with a leave-one-out baseline (see `deep_correction`).
  `--oracle` trains the same SAC on the true reward (the ceiling; no queries). A step is one env step.

      python -m algos.parl --env Walker2d --correction-weight 0.1
      python -m algos.parl --env Walker2d --oracle
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from classic_rl import UserError
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.session import LoopState, RunSession

TABULAR_ENVS = ("ChainToy",)


@dataclass
class ParlConfig(RunConfig):
    """A-PARL (bilevel policy alignment). Defaults depend on --env: ChainToy (exact tabular testbed) or a
    MuJoCo env (PEBBLE-style deep variant on SAC)."""

    env: str = "ChainToy"
    """ChainToy (exact tabular testbed) or a gymnasium-MuJoCo env with a Box action space (Walker2d, HalfCheetah)"""
    total_steps: int = 150
    """outer iterations (ChainToy) or env steps (MuJoCo, fresh query rollouts included)"""
    eval_every: int = 10
    """evaluate every this many steps (outer iterations on ChainToy, env steps on MuJoCo; 0 = only at the end)"""
    feedback: Literal["preference", "utility"] = "preference"
    """upper objective: preference (segment pairs, scripted teacher, Bradley-Terry log-likelihood) or utility
    (true return; ChainToy only)"""
    correction: Literal["cg", "unrolled", "exact"] = "cg"
    """implicit correction J^T v: cg (CG with HVPs of the lower objective), unrolled (one lower step),
    exact (forward soft-Bellman differentiation; ChainToy only)"""
    correction_weight: float = 1.0
    """weight w of the implicit correction: direction g1 + w g2 (w = 0: PEBBLE-style reward learning)"""
    outer_lr: float = 0.5
    """ChainToy: step size alpha of nu <- nu + alpha (g1 + w g2)"""
    estimator: Literal["sampled", "exact"] = "sampled"
    """ChainToy: sampled (--pairs fresh pairs / trajectories per iteration) or exact expectations (ascent on F)"""
    pairs: int = 8
    """ChainToy: pairs (preference) or trajectories (utility) drawn from the current policy per iteration"""
    query_buffer: bool = True
    """ChainToy: the direct term g1 averages over every labelled pair so far (PEBBLE); off: the fresh pairs only"""
    baseline: bool = True
    """subtract a baseline from U in the score term (leave-one-out mean when sampled, E[U] when exact)"""
    cg_iters: int = 20
    """conjugate-gradient iterations of the cg correction"""
    cg_damping: float = 1e-9
    """damping lambda added to -H in the cg correction"""
    unroll_lr: float = 1.0
    """step size beta of the one-step unrolled correction (only beta * w matters)"""
    tau_ent: float = 0.3
    """ChainToy: entropy temperature of the soft-optimal lower level"""
    chain_states: int = 7
    """ChainToy: number of states"""
    chain_horizon: int = 6
    """ChainToy: horizon H (3^H trajectories are enumerated)"""
    # ---- deep variant (MuJoCo)
    oracle: bool = False
    """MuJoCo: train SAC on the true reward (the ceiling); no reward model, no queries"""
    segment: int = 50
    """MuJoCo: segment length (env steps) of a query"""
    max_feedback: int = 1000
    """MuJoCo: query budget (labelled pairs in the whole run)"""
    queries_per_session: int = 20
    """MuJoCo: pairs labelled per feedback session (fresh segments of the current policy)"""
    num_interact: int = 5000
    """MuJoCo: env steps between feedback sessions (the first one right after --start-steps)"""
    reward_updates: int = 100
    """MuJoCo: Adam steps of the reward ensemble per feedback session"""
    reward_batch: int = 128
    """MuJoCo: labelled pairs per reward-model step (each member draws its own batch)"""
    reward_ensemble: int = 3
    """MuJoCo: members of the reward ensemble (r_psi = their mean)"""
    reward_hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    """MuJoCo: hidden widths of each reward net (ReLU, tanh output)"""
    reward_lr: float = 3e-4
    """MuJoCo: Adam learning rate of the reward ensemble"""
    start_steps: int = 5000
    """MuJoCo: uniform-random actions for this many env steps (no state-entropy pre-training); SAC updates start here"""
    batch_size: int = 512
    """MuJoCo: SAC minibatch"""
    buffer_size: int = 1_000_000
    """MuJoCo: replay capacity"""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    """MuJoCo: hidden widths of the SAC actor and critics"""
    lr: float = 3e-4
    """MuJoCo: Adam learning rate of SAC"""
    gamma: float = 0.99
    """MuJoCo: SAC discount"""
    eval_envs: int = 5
    """MuJoCo: parallel evaluation envs"""
    eval_max_steps: int = 0
    """MuJoCo: cut evaluation episodes after this many steps (0 = the env's limit)"""
    log_every: int = 1000
    """metrics row every this many steps (ChainToy preset: every outer iteration)"""

    @property
    def tabular(self) -> bool:
        return self.env in TABULAR_ENVS

    def validate(self) -> None:
        super().validate()
        require(self.outer_lr > 0, f"--outer-lr must be positive, got {self.outer_lr}")
        require(self.correction_weight >= 0, f"--correction-weight must be >= 0, got {self.correction_weight}")
        require(self.pairs >= 2, f"--pairs must be >= 2 (the leave-one-out baseline needs two), got {self.pairs}")
        require(self.cg_iters >= 1 and self.cg_damping >= 0, "--cg-iters must be >= 1 and --cg-damping >= 0")
        require(self.unroll_lr > 0 and self.tau_ent > 0, "--unroll-lr and --tau-ent must be positive")
        if self.tabular:
            require(self.chain_states >= 3 and 1 <= self.chain_horizon <= 9,
                    "--chain-states must be >= 3 and --chain-horizon in [1, 9]")
            return
        require(self.feedback == "preference", "--feedback utility is implemented on the exact testbed only "
                                               "(--env ChainToy)")
        require(self.correction == "unrolled", f"--correction {self.correction} is implemented on --env ChainToy only; "
                                               f"the deep variant uses --correction unrolled")
        require(self.n_envs == 1, f"--n-envs must be 1, got {self.n_envs}")
        require(self.segment >= 1 and self.queries_per_session >= 2 and self.max_feedback >= 0,
                "--segment must be >= 1, --queries-per-session >= 2, --max-feedback >= 0")
        require(self.num_interact >= 1 and self.reward_updates >= 0 and self.reward_batch >= 1,
                "--num-interact and --reward-batch must be positive, --reward-updates >= 0")
        require(self.reward_ensemble >= 1 and self.reward_lr > 0 and self.lr > 0, "bad reward-model / SAC settings")
        require(self.start_steps >= 0 and self.batch_size >= 1 and self.buffer_size >= 1, "bad SAC settings")
        require(0 < self.gamma <= 1, f"--gamma must be in (0, 1], got {self.gamma}")
        require(self.eval_envs >= 1 and self.eval_max_steps >= 0 and self.log_every >= 1, "bad eval/log settings")


CHAIN_PRESET = dict(total_steps=150, eval_every=10, device="cpu", correction="cg", log_every=1)
MUJOCO_PRESET = dict(total_steps=1_000_000, eval_every=10_000, eval_episodes=10, correction="unrolled",
                     checkpoint_every=50_000, correction_weight=0.1)


def presets(env: str) -> dict[str, Any]:
    if env in TABULAR_ENVS:
        return dict(CHAIN_PRESET)
    from envs.registry import env_family, resolve_env_id
    if env_family(resolve_env_id(env)) != "mujoco":
        raise UserError(f"algos.parl runs --env ChainToy or a gymnasium-MuJoCo env (Walker2d, HalfCheetah); got {env}")
    return dict(MUJOCO_PRESET)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = float(a.norm()), float(b.norm())
    return float((a * b).sum()) / (na * nb) if na > 0 and nb > 0 else 0.0


# ============================================================================ pure pieces (both settings)
def leave_one_out_baseline(u: torch.Tensor) -> torch.Tensor:
    """b_n = mean_{m != n} u_m: keeps E[(U_n - b_n) grad log rho(y_n)] = E[U grad log rho] exactly (b_n is
    independent of y_n), unlike the plain batch mean."""
    n = u.shape[0]
    return (u.sum() - u) / (n - 1)


def score_weights(u: torch.Tensor, baseline: bool) -> torch.Tensor:
    """w_n = (U_n - b_n) / N of the score term v = sum_n w_n grad log rho(y_n)."""
    u = u.detach()
    return ((u - leave_one_out_baseline(u)) if baseline else u) / u.shape[0]


# ============================================================================ exact tabular setting
@dataclass
class TabularLoop(LoopState):
    nu: torch.Tensor = None  # type: ignore[assignment]
    queries: torch.Tensor = None  # type: ignore[assignment]   # [Q, 2] trajectory indices of labelled pairs
    n_queries: int = 0


def implicit_correction(tb, logpi: torch.Tensor, nu: torch.Tensor, v: torch.Tensor, method: str,
                        cg_iters: int = 20, damping: float = 1e-6, unroll_lr: float = 1.0):
    """g2 = J(nu)^T v on the exact testbed, for v [H, S, A] in logit space at theta* = log pi_nu. Returns
    (g2 [S, A], info)."""
    if method == "exact":
        J = tb.policy_jacobian(nu)
        return torch.einsum("hsa,hsak->k", v, J).reshape(nu.shape), {}
    theta = logpi.detach().clone().requires_grad_(True)
    x_nu = nu.detach().clone().requires_grad_(True)
    grad_theta = torch.autograd.grad(tb.lower_objective(theta, x_nu), theta, create_graph=True)[0]
    info: dict[str, Any] = {}
    if method == "unrolled":
        x = unroll_lr * v
    elif method == "cg":
        from envs.tabular.parl_chain import conjugate_gradient

        def matvec(p: torch.Tensor) -> torch.Tensor:  # (-H + lambda I) p by a Hessian-vector product
            return -torch.autograd.grad(grad_theta, theta, p, retain_graph=True)[0] + damping * p

        # Jacobi-like preconditioner: the entropy term's own curvature gamma^t d_t(s) tau pi (1 - pi) per logit
        # (states the policy rarely visits have tiny curvature: plain CG stalls on that conditioning)
        with torch.no_grad():
            pi = logpi.exp()
            diag = (tb.discounts[:, None, None] * tb.occupancy(logpi)[:, :, None] * tb.tau * pi * (1 - pi)
                    + damping).clamp_min(1e-30)
        x, info = conjugate_gradient(matvec, v, cg_iters, precondition=lambda r: r / diag)
    else:
        raise UserError(f"unknown correction {method!r}")
    return torch.autograd.grad(grad_theta, x_nu, x)[0], info


def tabular_direction(tb, nu: torch.Tensor, cfg: ParlConfig, rng: torch.Generator, loop: TabularLoop):
    """(g1, g2, stats) of one A-PARL outer iteration at nu (draws the iteration's feedback)."""
    from envs.tabular.parl_chain import bradley_terry_loglik

    logpi = tb.soft_value_iteration(nu).detach()
    x = nu.detach().clone().requires_grad_(True)
    stats: dict[str, Any] = {}
    if cfg.estimator == "exact":
        g1 = torch.autograd.grad(tb.objective(x, detach_policy=True), x, allow_unused=True)[0]
        g1 = torch.zeros_like(nu) if g1 is None else g1
        idx = torch.arange(tb.n_traj, device=tb.device)
        weights = tb.exact_trajectory_weights(nu, logpi, cfg.baseline)
    elif cfg.feedback == "utility":
        idx = tb.sample_trajectories(logpi, cfg.pairs, rng)
        g1 = torch.zeros_like(nu)  # U = true return does not depend on nu
        u = tb.true_returns[idx]
        weights = score_weights(u, cfg.baseline)
        loop.n_queries += cfg.pairs
        stats["u_mean"] = u.mean()
    else:
        pair = tb.sample_trajectories(logpi, 2 * cfg.pairs, rng).reshape(cfg.pairs, 2)
        loop.queries = torch.cat([loop.queries, pair])
        loop.n_queries += cfg.pairs
        train = loop.queries if cfg.query_buffer else pair
        R = tb.reward_returns(x)
        u_train = bradley_terry_loglik(R[train[:, 0]], R[train[:, 1]], tb.labels[train[:, 0], train[:, 1]])
        g1 = torch.autograd.grad(u_train.mean(), x)[0]
        with torch.no_grad():
            u = bradley_terry_loglik(R[pair[:, 0]], R[pair[:, 1]], tb.labels[pair[:, 0], pair[:, 1]])
        w = score_weights(u, cfg.baseline)
        idx, weights = pair.reshape(-1), w.repeat_interleave(2)  # both segments of a pair carry its weight
        stats["u_mean"] = u.mean()
    v = tb.score_vector(logpi, idx, weights)
    if cfg.correction_weight > 0:
        g2, info = implicit_correction(tb, logpi, nu, v, cfg.correction, cfg.cg_iters, cfg.cg_damping,
                                       cfg.unroll_lr)
        if "rel_residual" in info:
            stats["cg_rel_residual"] = info["rel_residual"]
    else:
        g2 = torch.zeros_like(nu)
    stats.update(g1_norm=g1.norm(), g2_norm=g2.norm(), cos_g1_g2=cosine(g1, g2))
    return g1, g2, stats


def train_tabular(cfg: ParlConfig, run: RunSession) -> RunSession:
    from envs.tabular.parl_chain import BilevelTestbed, chain_toy

    device = run.device
    tb = BilevelTestbed(chain_toy(cfg.chain_states, cfg.chain_horizon), cfg.tau_ent, cfg.feedback, device)
    loop = TabularLoop(nu=torch.zeros(tb.S, tb.A, dtype=torch.float64, device=device),
                       queries=torch.zeros(0, 2, dtype=torch.long, device=device))
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    soft_true = float(tb.true_return(tb.soft_value_iteration(tb.r_true)))

    def evaluate() -> dict[str, Any]:
        with torch.no_grad():
            ret = float(tb.true_return(tb.soft_value_iteration(loop.nu)))
            return {"returns": [ret], "objective": float(tb.objective(loop.nu)), "frac_best": ret / tb.best_return,
                    "queries": loop.n_queries}

    with run:
        run.track(loop=loop, rng=rng, evaluate=evaluate)
        while run.step < cfg.total_steps:
            g1, g2, stats = tabular_direction(tb, loop.nu, cfg, rng, loop)
            loop.nu = loop.nu + cfg.outer_lr * (g1 + cfg.correction_weight * g2)
            with torch.no_grad():
                true_ret = tb.true_return(tb.soft_value_iteration(loop.nu))
            run.advance(1, true_return=true_ret, queries=loop.n_queries, **stats)
        final = float(tb.true_return(tb.soft_value_iteration(loop.nu)))
        run.finish(headline=("true_return", final), frac_best=final / tb.best_return, best_return=tb.best_return,
                   soft_optimal_true_return=soft_true, queries=loop.n_queries, feedback=cfg.feedback,
                   correction=cfg.correction, correction_weight=cfg.correction_weight)
    return run


# ============================================================================ deep setting (PEBBLE-style)
class RewardEnsemble(nn.Module):
    """K reward nets r_k(s, a) = tanh(MLP_k([s, a])), evaluated together; r_psi = mean_k r_k."""

    def __init__(self, n_members: int, in_dim: int, hidden: Sequence[int]):
        super().__init__()
        from classic_rl.ensemble import EnsembleMLP
        self.net = EnsembleMLP(n_members, in_dim, list(hidden))
        self.n_members = n_members

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """obs [..., d_s], actions [..., d_a] -> [K, ...] member rewards; with per_member the inputs are
        [K, ..., d] (member k scores its own rows) -> [K, ...]."""
        x = torch.cat([obs, actions], -1)
        lead = x.shape[:-1]
        if per_member:
            return torch.tanh(self.net(x.reshape(self.n_members, -1, x.shape[-1]))).reshape(lead)
        out = self.net(x.reshape(-1, x.shape[-1]))
        return torch.tanh(out).reshape(self.n_members, *lead)

    def mean_reward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self(obs, actions).mean(0)


def segment_returns(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the last (time) dim of the steps the segment really had (mask 1), undiscounted (B-Pref)."""
    return (rewards * mask).sum(-1)


def segment_log_prob(actor, obs: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log pi(segment) = sum_t mask_t log pi(a_t | s_t) for stored tanh-squashed actions a in (-1, 1),
    with the change of variables u = atanh(a) (classic_rl.sac.tanh_gaussian_log_prob)."""
    from classic_rl.sac import tanh_gaussian_log_prob
    u = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))
    mean, log_std = actor(obs)
    return (tanh_gaussian_log_prob(u, mean, log_std) * mask).sum(-1)


@dataclass
class DeepLoop(LoopState):
    """Loop variables of the deep variant: the labelled queries, counters, the feedback schedule."""

    q_obs: torch.Tensor = None  # type: ignore[assignment]       # [Q, 2, L, d_s]
    q_act: torch.Tensor = None  # type: ignore[assignment]       # [Q, 2, L, d_a]
    q_mask: torch.Tensor = None  # type: ignore[assignment]      # [Q, 2, L]
    q_label: torch.Tensor = None  # type: ignore[assignment]     # [Q] P(sigma1 preferred)
    next_session: int = 0
    sessions: int = 0
    recent_returns: list = field(default_factory=list)
    episodes: int = 0
    last_feedback: dict = field(default_factory=dict)  # the last session's statistics (repeated on metric rows)

    @property
    def n_queries(self) -> int:
        return int(self.q_label.shape[0])


def deep_correction(actor, reward: RewardEnsemble, seg_obs, seg_act, seg_mask, utilities: torch.Tensor,
                    beta: float, gamma: float, baseline: bool = True) -> list[torch.Tensor]:
    """One-step unrolled A-PARL correction for the reward ensemble, from fresh segments of the current actor.

    v      = sum_n w_n grad_theta [log pi(sigma0_n) + log pi(sigma1_n)],  w_n = (U_n - b_n) / N  (score term)
    theta' = theta + beta grad_theta Vhat(psi, theta),  grad_theta Vhat = (1/M) sum_m sum_t grad log pi(a_t|s_t) Ahat_t
             Ahat_t = G_t - mean over segments of G_t,  G_t = sum_{t' >= t} gamma^(t'-t) r_psi(s_t', a_t')  (M segments)
    g2     = d/dpsi [v . theta'(psi)] = beta grad_psi (1/M) sum_m sum_t c_t Ahat_t,  c_t = grad log pi(a_t|s_t) . v
    (c_t is a Jacobian-vector product of the actor, computed with torch.func.jvp). Returned per reward-ensemble
    parameter, scaled by K: each member gets the correction it would get as the policy's reward.
    seg_*: [N, 2, L, ...]; utilities: [N] (U of each pair under r_psi)."""
    from torch.func import functional_call, jvp
    from classic_rl.sac import tanh_gaussian_log_prob

    N, _, L = seg_mask.shape
    obs, act, mask = seg_obs.reshape(2 * N, L, -1), seg_act.reshape(2 * N, L, -1), seg_mask.reshape(2 * N, L)
    w = score_weights(utilities, baseline).repeat_interleave(2)
    params = dict(actor.named_parameters())
    logp = segment_log_prob(actor, obs, act, mask)
    v = torch.autograd.grad((w * logp).sum(), list(params.values()))
    u = torch.atanh(act.clamp(-1 + 1e-6, 1 - 1e-6))

    def per_step_logp(p):
        mean, log_std = functional_call(actor, p, (obs,))
        return tanh_gaussian_log_prob(u, mean, log_std)

    primals = {k: t.detach() for k, t in params.items()}
    _, c = jvp(per_step_logp, (primals,), ({k: t for k, t in zip(params, v)},))
    c = (c * mask).detach()                                                      # [M, L]
    r = reward.mean_reward(obs, act) * mask                                      # [M, L], depends on psi
    disc = gamma ** torch.arange(L, device=r.device, dtype=r.dtype)
    G = torch.flip(torch.cumsum(torch.flip(r * disc, [1]), 1), [1]) / disc       # reward-to-go within the segment
    A = G - G.mean(0, keepdim=True)
    surrogate = beta * (c * A).sum() / (2 * N)
    grads = torch.autograd.grad(surrogate, list(reward.parameters()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else reward.n_members * g for p, g in zip(reward.parameters(), grads)]


def bradley_terry_member_loss(reward: RewardEnsemble, obs, act, mask, label) -> torch.Tensor:
    """Sum over members of the mean Bradley-Terry cross-entropy -U on each member's own batch of pairs:
    obs [K, B, 2, L, d], label [K, B]."""
    from envs.tabular.parl_chain import bradley_terry_loglik
    r = reward(obs, act, per_member=True)                        # [K, B, 2, L]
    R = segment_returns(r, mask)                                 # [K, B, 2]
    return -bradley_terry_loglik(R[..., 0], R[..., 1], label).mean(-1).sum()


def train_deep(cfg: ParlConfig, run: RunSession) -> RunSession:
    import gymnasium as gym

    from classic_rl.buffers import ReplayBuffer
    from classic_rl.evaluation import Evaluator, episode_infos
    from classic_rl.sac import SAC, SACSettings, to_env_action, uniform_actions
    from classic_rl.session import VecEnvState
    from envs.registry import make_vec_env
    from envs.tabular.parl_chain import bradley_terry_loglik, teacher_label

    device = run.device
    envs = make_vec_env(cfg.env, 1, training=True)
    run.add_cleanup(envs.close)
    qenvs = make_vec_env(cfg.env, 1, training=True)  # fresh query rollouts of the current policy
    run.add_cleanup(qenvs.close)
    space = envs.single_action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise UserError(f"{cfg.env} has a {type(space).__name__} action space; the deep variant needs a 1-D Box")
    obs_dim, act_dim = envs.single_observation_space.shape[0], space.shape[0]
    low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
    sac = SAC(obs_dim, act_dim, SACSettings(actor_hidden=cfg.hidden_sizes, critic_hidden=cfg.hidden_sizes,
                                            lr=cfg.lr, gamma=cfg.gamma, init_temperature=0.1), device)
    reward = RewardEnsemble(cfg.reward_ensemble, obs_dim + act_dim, cfg.reward_hidden).to(device)
    reward_opt = torch.optim.Adam(reward.parameters(), lr=cfg.reward_lr)
    buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps + 10 * cfg.segment), (obs_dim,), (act_dim,), device)
    true_rewards = torch.zeros(buffer.capacity, device=device)   # kept for --oracle and diagnostics
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    L = cfg.segment
    loop = DeepLoop(q_obs=torch.zeros(0, 2, L, obs_dim, device=device), q_act=torch.zeros(0, 2, L, act_dim, device=device),
                    q_mask=torch.zeros(0, 2, L, device=device), q_label=torch.zeros(0, device=device),
                    next_session=cfg.start_steps)
    env_state = VecEnvState(envs, lambda: [cfg.seed + 7919 * (loop.episodes + 1)])
    env_state.obs, _ = envs.reset(seed=[cfg.seed])
    qenv_state = VecEnvState(qenvs, lambda: [cfg.seed + 104_729 + loop.sessions])
    qenv_state.obs, _ = qenvs.reset(seed=[cfg.seed + 104_729])
    evaluator = Evaluator(lambda k: make_vec_env(cfg.env, k, training=False, max_episode_steps=cfg.eval_max_steps or None),
                          cfg.eval_episodes, cfg.eval_envs, cfg.seed + 10_000, device)
    run.add_cleanup(evaluator.close)

    class TrueRewards:  # the true rewards beside the buffer, checkpointed with it
        def state_dict(self):
            return {"r": true_rewards[:buffer.size].clone()}

        def load_state_dict(self, state):
            true_rewards[:state["r"].shape[0]] = state["r"].to(device)

    def evaluate() -> dict[str, Any]:
        returns, lengths = evaluator.run(lambda o: to_env_action(sac.actor.sample(o.to(torch.float32), True)[0], low, high))
        return {"returns": returns, "lengths": lengths, "queries": loop.n_queries}

    def store(state: VecEnvState, envs_, obs: torch.Tensor, action: torch.Tensor, track_returns: bool):
        """One env step; the transition enters the buffer with the learned (or, --oracle, true) reward."""
        next_obs, r, terminated, truncated, info = envs_.step(to_env_action(action, low, high).cpu().numpy())
        real_next = next_obs
        if info and "final_obs" in info:
            real_next = next_obs.copy()
            for i in np.flatnonzero(info["_final_obs"]):
                real_next[i] = info["final_obs"][i]
            if track_returns:
                ended, rets, _ = episode_infos(info)
                loop.recent_returns = (loop.recent_returns + [float(x) for x in rets[ended]])[-20:]
                loop.episodes += int(ended.sum())
        r_true = torch.as_tensor(r, dtype=torch.float32, device=device)
        with torch.no_grad():
            r_buf = r_true if cfg.oracle else reward.mean_reward(obs, action)
        true_rewards[buffer.pos] = r_true[0]
        buffer.add(obs, action, r_buf, torch.as_tensor(real_next, dtype=torch.float32), torch.as_tensor(terminated))
        state.obs = next_obs
        return r_true, bool(terminated[0] or truncated[0])

    def relabel() -> None:
        with torch.no_grad():
            for s in range(0, buffer.size, 65536):
                e = min(buffer.size, s + 65536)
                buffer.rewards[s:e] = reward.mean_reward(buffer.obs[s:e], buffer.actions[s:e])

    def fresh_segments(n: int):
        """n segments of L steps of the current (stochastic) actor in the query env; an episode that ends inside
        a segment masks its remaining steps. Returns obs, actions [n, L, d], mask, true rewards [n, L], steps."""
        o = torch.zeros(n, L, obs_dim, device=device)
        a = torch.zeros(n, L, act_dim, device=device)
        m = torch.zeros(n, L, device=device)
        rt = torch.zeros(n, L, device=device)
        steps = 0
        for i in range(n):
            for t in range(L):
                ob = torch.as_tensor(qenv_state.obs, dtype=torch.float32, device=device)
                with torch.no_grad():
                    act = sac.actor.sample(ob)[0]
                r_true, done = store(qenv_state, qenvs, ob, act, track_returns=False)
                o[i, t], a[i, t], m[i, t], rt[i, t] = ob[0], act[0], 1.0, r_true[0]
                steps += 1
                if done:
                    break
        return o, a, m, rt, steps

    def feedback_session() -> tuple[int, dict[str, Any]]:
        n = min(cfg.queries_per_session, cfg.max_feedback - loop.n_queries)
        o, a, m, rt, steps = fresh_segments(2 * n)
        o, a, m, rt = (x.reshape(n, 2, *x.shape[1:]) for x in (o, a, m, rt))
        true_R = segment_returns(rt, m)
        label = teacher_label(true_R[:, 0], true_R[:, 1]).float()
        stats: dict[str, Any] = {}
        with torch.no_grad():
            R = segment_returns(reward.mean_reward(o, a), m)
            stats["reward_acc_fresh"] = ((R[:, 1] > R[:, 0]).float() == label).float().mean()
        loop.q_obs, loop.q_act = torch.cat([loop.q_obs, o]), torch.cat([loop.q_act, a])
        loop.q_mask, loop.q_label = torch.cat([loop.q_mask, m]), torch.cat([loop.q_label, label])
        g2 = None
        if cfg.correction_weight > 0:
            with torch.no_grad():
                U = bradley_terry_loglik(R[:, 0], R[:, 1], label)
            g2 = deep_correction(sac.actor, reward, o, a, m, U, cfg.unroll_lr, cfg.gamma, cfg.baseline)
            stats["g2_norm"] = torch.sqrt(sum((g * g).sum() for g in g2))
        K, Q = cfg.reward_ensemble, loop.n_queries
        for _ in range(cfg.reward_updates):
            idx = torch.randint(0, Q, (K, min(cfg.reward_batch, Q)), generator=rng, device=rng.device).to(device)
            loss = bradley_terry_member_loss(reward, loop.q_obs[idx], loop.q_act[idx], loop.q_mask[idx], loop.q_label[idx])
            reward_opt.zero_grad(set_to_none=True)
            loss.backward()
            if g2 is not None:  # descent on -(g1 + w g2): subtract w g2 from the loss gradient
                for p, g in zip(reward.parameters(), g2):
                    p.grad = (p.grad if p.grad is not None else torch.zeros_like(p)) - cfg.correction_weight * g
            reward_opt.step()
            stats["reward_loss"] = loss.detach() / K
        relabel()
        loop.sessions += 1
        return steps, stats

    sac_stats: dict[str, Any] = {}
    with run:
        run.track(**sac.objects(), reward=reward, reward_opt=reward_opt, buffer=buffer, true_rewards=TrueRewards(),
                  sample_rng=rng, loop=loop, envs=env_state, query_envs=qenv_state, evaluate=evaluate)
        while run.step < cfg.total_steps:
            if not cfg.oracle and run.step >= loop.next_session and loop.n_queries < cfg.max_feedback \
                    and run.step >= cfg.start_steps:
                loop.next_session = run.step + cfg.num_interact
                steps, new_stats = feedback_session()
                loop.last_feedback.update({k: float(v) for k, v in new_stats.items()})
                recent = loop.recent_returns
                run.advance(steps, queries=loop.n_queries, **sac_stats, **loop.last_feedback,
                            train_return_mean=float(np.mean(recent)) if recent else "")
                continue
            obs = torch.as_tensor(env_state.obs, dtype=torch.float32, device=device)
            if run.step < cfg.start_steps:
                action = uniform_actions(1, act_dim, rng, device)
            else:
                with torch.no_grad():
                    action = sac.actor.sample(obs)[0]
            store(env_state, envs, obs, action, track_returns=True)
            if run.step + 1 >= cfg.start_steps:
                sac_stats = sac.update(buffer.sample(cfg.batch_size, rng), 1, rng)
            recent = loop.recent_returns
            run.advance(1, queries=loop.n_queries, **sac_stats, **loop.last_feedback,
                        train_return_mean=float(np.mean(recent)) if recent else "")
        run.finish(headline=("final_eval_return", (run.last_eval or {}).get("return_mean")), queries=loop.n_queries,
                   oracle=cfg.oracle, correction_weight=cfg.correction_weight)
    return run


# ============================================================================ entry point
def train(cfg: ParlConfig, argv: Sequence[str] | None = None) -> RunSession:
    run = RunSession(cfg, "parl", argv=argv)
    cfg = run.cfg  # the stored config on --resume: which setting this is is known only now
    run.steps_name = "outer iterations" if cfg.tabular else "env steps"
    return train_tabular(cfg, run) if cfg.tabular else train_deep(cfg, run)


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(ParlConfig, argv, presets=presets, prog="python -m algos.parl", description=__doc__)
    return finish_run(train(cfg, argv).path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
