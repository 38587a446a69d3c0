"""Shared pieces of the stochastic policy-gradient family (vanilla PG, NSGDM, N-PG-IGT, (N)-HARPG).

Everything here is a pure function of tensors or a small stateful helper, so each algorithm module only has
to spell out its own update rule:
  * policies with a FLAT parameter view (`FlatPolicy`): theta is one 1-D tensor, the module is evaluated with
    `torch.func.functional_call`, so the same code gives gradients, HVPs and JVPs w.r.t. theta;
  * trajectory batches padded to [N, T] with a validity mask; a `SampleCounter` counts every env step and
    trajectory any sampler produces (IGT's extrapolated-point samples and HARPG's HVP samples included);
  * the GPOMDP surrogate, the HARPG Hessian-vector-product estimators, the linear-feature baseline;
  * the authors' schedules and the normalised step.

Discounting convention (one choice, used everywhere): the PAPER's GPOMDP,
    g(tau) = sum_h gamma^h * grad log pi(a_h|s_h) * (G_h - b(s_h, h)),   G_h = sum_{t>=h} gamma^{t-h} r_t,
which is unbiased for the truncated discounted return J_H(theta) (verified against the exact LQR gradient in
tests). The authors' code drops gamma^h and averages over all steps (spec pitfall 7); we do not.
The baseline is fitted on the PREVIOUS batch (as garage does: refit after the update), so at the time it is
used it does not depend on the actions of the current batch and the estimator stays unbiased.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call, jvp

from classic_rl import UserError
from classic_rl.config import RunConfig, require, to_dict
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import resolve_device, save_checkpoint, seed_everything, set_torch_threads

# ----------------------------------------------------------------------------- schedules (authors' code)


def igt_schedule(t: int, eta0: float, gamma0: float) -> tuple[float, float]:
    """N-PG-IGT [code: NIGT_optimizer.py]: eta_t = eta0 (2/(t+2))^(4/5), gamma_t = gamma0 * 2/(t+2)."""
    return eta0 * (2.0 / (t + 2)) ** 0.8, gamma0 * 2.0 / (t + 2)


def harpg_schedule(t: int, eta0: float, gamma0: float, normalized: bool) -> tuple[float, float]:
    """(N)-HARPG [code: STORMHess_optimizer.py]: eta_t = eta0 2/(t+2); gamma_t = gamma0 2/(t+2) (normalised)
    or gamma0 (2/(t+2))^(1/2) (unnormalised)."""
    eta = eta0 * 2.0 / (t + 2)
    gamma = gamma0 * 2.0 / (t + 2) if normalized else gamma0 * (2.0 / (t + 2)) ** 0.5
    return eta, gamma


def sgd_schedule(t: int, gamma0: float) -> float:
    """Vanilla PG [code: SGDM_optimizer.py, moving_avg=False]: gamma_t = gamma0 (2/(t+2))^(2/3)."""
    return gamma0 * (2.0 / (t + 2)) ** (2.0 / 3.0)


def nsgdm_schedule(t: int, eta0: float, gamma0: float) -> tuple[float, float]:
    """Normalised momentum PG [code: SGDM_optimizer.py, moving_avg=True, normalized=True]:
    eta_t = eta0 (2/(t+2))^(2/3), gamma_t = gamma0 * 2/(t+2)."""
    return eta0 * (2.0 / (t + 2)) ** (2.0 / 3.0), gamma0 * 2.0 / (t + 2)


def normalized_step(theta: torch.Tensor, direction: torch.Tensor, step: float) -> torch.Tensor:
    """theta + step * d / ||d||: moves theta by exactly `step` for any non-zero d (norm over ALL parameters,
    log-std included); d = 0 gives no move. The norm is floored at the dtype's smallest normal number instead
    of adding an eps, which would shorten the step when ||d|| is tiny."""
    norm = direction.norm().clamp_min(torch.finfo(direction.dtype).tiny)
    return theta + step * direction / norm


# ----------------------------------------------------------------------------- policies with a flat view


class LinearGaussianPolicy(nn.Module):
    """u = -K x + sigma * eps with FIXED sigma (LQR). Parameters: K only (float64)."""

    def __init__(self, obs_dim: int, act_dim: int, sigma: float, K0: np.ndarray | None = None):
        super().__init__()
        K0 = np.zeros((act_dim, obs_dim)) if K0 is None else K0
        self.K = nn.Parameter(torch.as_tensor(K0, dtype=torch.float64).clone())
        self.register_buffer("sigma", torch.tensor(float(sigma), dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        mean = -obs @ self.K.T
        return torch.distributions.Independent(
            torch.distributions.Normal(mean, self.sigma.expand_as(mean), validate_args=False), 1, validate_args=False)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.xavier_uniform_(lin.weight)  # garage's default initialiser
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())  # tanh, not ReLU: the HVP needs non-zero second derivatives (pitfall 6)
    return nn.Sequential(*layers)


class GaussianMLPPolicy(nn.Module):
    """garage-style Gaussian MLP: tanh hidden layers, learned state-independent log-std (init std 1)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], init_std: float = 1.0,
                 min_std: float = 1e-6):
        super().__init__()
        self.mean_net = _mlp([obs_dim, *hidden, act_dim])
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.min_log_std = math.log(min_std)

    def forward(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        mean = self.mean_net(obs)
        std = self.log_std.clamp(min=self.min_log_std).exp().expand_as(mean)
        return torch.distributions.Independent(torch.distributions.Normal(mean, std, validate_args=False), 1,
                                               validate_args=False)


class CategoricalMLPPolicy(nn.Module):
    """Softmax MLP with tanh hidden layers (CartPole, Acrobot)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: list[int]):
        super().__init__()
        self.logits_net = _mlp([obs_dim, *hidden, n_actions])

    def forward(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=self.logits_net(obs), validate_args=False)


def greedy_action(dist: torch.distributions.Distribution) -> torch.Tensor:
    """The deterministic evaluation action: Gaussian mean or argmax of the categorical."""
    if isinstance(dist, torch.distributions.Categorical):
        return dist.probs.argmax(-1)
    return dist.mean


class FlatPolicy:
    """A policy module evaluated at an explicit flat parameter vector theta (1-D tensor)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.numels = [p.numel() for _, p in module.named_parameters()]
        self.dim = sum(self.numels)

    def initial_theta(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()]).clone()

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks = torch.split(theta, self.numels)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def dist(self, theta: torch.Tensor, obs: torch.Tensor) -> torch.distributions.Distribution:
        return functional_call(self.module, self.unflatten(theta), (obs,))

    def log_prob(self, theta: torch.Tensor, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.dist(theta, obs).log_prob(act)

    @torch.no_grad()
    def load(self, theta: torch.Tensor) -> nn.Module:
        """Copy theta into the module's own parameters and return the module: the fast path for rollouts
        (one copy per batch instead of a functional_call re-parametrisation per step)."""
        torch.nn.utils.vector_to_parameters(theta.detach(), self.module.parameters())
        return self.module


# ----------------------------------------------------------------------------- trajectories and counting


@dataclass
class SampleCounter:
    """Every env step and trajectory used for learning (evaluation episodes are not counted)."""
    env_steps: int = 0
    trajectories: int = 0

    def add(self, steps: int, trajectories: int) -> None:
        self.env_steps += int(steps)
        self.trajectories += int(trajectories)


@dataclass
class TrajBatch:
    """N whole trajectories padded to length T. obs [N,T,d], act [N,T,...], rew [N,T], mask [N,T] (1 = valid)."""
    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    mask: torch.Tensor

    @property
    def n_traj(self) -> int:
        return self.obs.shape[0]

    @property
    def n_steps(self) -> int:
        return int(self.mask.sum().item())

    def undiscounted_returns(self) -> torch.Tensor:
        return (self.rew * self.mask).sum(1)


def sample_batched(env, policy: FlatPolicy, theta: torch.Tensor, n_traj: int, counter: SampleCounter,
                   deterministic: bool = False) -> TrajBatch:
    """`n_traj` fixed-length episodes of a batched torch simulator (BatchedLQR) at parameters theta.

    Stays on env.device; the only Python loop is over time steps."""
    H = env.horizon
    x = env.reset(n_traj)
    obs, acts, rews = [], [], []
    module = policy.load(theta)
    with torch.no_grad():
        for _ in range(H):
            dist = module(x)
            u = greedy_action(dist) if deterministic else dist.sample()
            obs.append(x)
            acts.append(u)
            x, r = env.step(u)
            rews.append(r)
    rew = torch.stack(rews, 1)
    if not deterministic:
        counter.add(n_traj * H, n_traj)
    return TrajBatch(torch.stack(obs, 1), torch.stack(acts, 1), rew, torch.ones_like(rew))


def sample_gym(envs: list, policy: FlatPolicy, theta: torch.Tensor, min_steps: int, counter: SampleCounter | None,
               device: torch.device, deterministic: bool = False, n_episodes: int | None = None) -> TrajBatch:
    """Whole episodes from a list of gymnasium envs stepped in lockstep (one batched policy forward per step).

    Training (n_episodes None): keep starting episodes until the steps of finished + running episodes reach
    `min_steps`, then let every running episode finish (whole episodes only, as in the authors' sampler).
    Evaluation: exactly `n_episodes` episodes. Episodes end on termination or truncation (time limit); the
    objective is the truncated return, so nothing is bootstrapped.
    """
    n_env = len(envs)
    finished: list[tuple[list, list, list]] = []
    running: dict[int, tuple[list, list, list]] = {}
    current_obs: dict[int, np.ndarray] = {}
    started = 0
    steps_committed = 0

    def may_start() -> bool:
        if n_episodes is not None:
            return started < n_episodes
        return steps_committed < min_steps

    for i in range(n_env):
        if may_start():
            current_obs[i], _ = envs[i].reset()
            running[i] = ([], [], [])
            started += 1
    module = policy.load(theta)
    while running:
        ids = sorted(running)
        obs_t = torch.as_tensor(np.stack([current_obs[i] for i in ids]), dtype=torch.get_default_dtype(),
                                device=device)
        with torch.no_grad():
            dist = module(obs_t)
            act_t = greedy_action(dist) if deterministic else dist.sample()
        act_np = act_t.cpu().numpy()
        for j, i in enumerate(ids):
            nxt, r, term, trunc, _ = envs[i].step(act_np[j])
            o, a, rr = running[i]
            o.append(current_obs[i]); a.append(act_np[j]); rr.append(float(r))
            steps_committed += 1
            current_obs[i] = nxt
            if term or trunc:
                finished.append(running.pop(i))
                if may_start():
                    current_obs[i], _ = envs[i].reset()
                    running[i] = ([], [], [])
                    started += 1
    T = max(len(e[2]) for e in finished)
    N = len(finished)
    obs_dim = np.asarray(finished[0][0][0]).shape
    act_shape = np.asarray(finished[0][1][0]).shape
    obs = np.zeros((N, T, *obs_dim), np.float32)
    act = np.zeros((N, T, *act_shape), finished[0][1][0].dtype)
    rew = np.zeros((N, T), np.float32)
    mask = np.zeros((N, T), np.float32)
    for k, (o, a, rr) in enumerate(finished):
        n = len(rr)
        obs[k, :n], act[k, :n], rew[k, :n], mask[k, :n] = np.stack(o), np.stack(a), rr, 1.0
    if counter is not None and not deterministic:
        counter.add(int(mask.sum()), N)
    dt = torch.get_default_dtype()
    return TrajBatch(torch.as_tensor(obs, dtype=dt, device=device), torch.as_tensor(act, device=device),
                     torch.as_tensor(rew, dtype=dt, device=device), torch.as_tensor(mask, dtype=dt, device=device))


# ----------------------------------------------------------------------------- returns, baseline, surrogate


def discounted_reward_to_go(rew: torch.Tensor, mask: torch.Tensor, discount: float) -> torch.Tensor:
    """G[:, h] = sum_{t>=h} discount^(t-h) r_t over valid steps, as one [T, T] matrix product (no time loop)."""
    T = rew.shape[1]
    idx = torch.arange(T, device=rew.device)
    lag = (idx[:, None] - idx[None, :]).to(rew.dtype)  # lag[t, h] = t - h
    kernel = torch.where(lag >= 0, discount ** lag.clamp(min=0), torch.zeros_like(lag))
    return (rew * mask) @ kernel


def baseline_features(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """garage LinearFeatureBaseline features: obs, obs^2, t/100, (t/100)^2, (t/100)^3, 1 (per step)."""
    N, T = mask.shape
    flat = obs.reshape(N, T, -1)
    t = (torch.arange(T, device=obs.device, dtype=flat.dtype) / 100.0).expand(N, T).unsqueeze(-1)
    return torch.cat([flat, flat ** 2, t, t ** 2, t ** 3, torch.ones_like(t)], -1)


class LinearFeatureBaseline:
    """Ridge regression of the reward-to-go on `baseline_features` (refit after each update, like garage)."""

    def __init__(self, reg: float = 1e-5):
        self.reg = reg
        self.coef: torch.Tensor | None = None

    def predict(self, batch: TrajBatch) -> torch.Tensor:
        if self.coef is None:
            return torch.zeros_like(batch.rew)
        return (baseline_features(batch.obs, batch.mask) @ self.coef) * batch.mask

    def fit(self, batch: TrajBatch, returns: torch.Tensor) -> None:
        X = baseline_features(batch.obs, batch.mask)[batch.mask > 0].double()
        y = returns[batch.mask > 0].double()
        reg = self.reg
        for _ in range(5):  # garage retries with a 10x larger ridge when the solve is ill-conditioned
            A = X.T @ X + reg * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
            coef = torch.linalg.solve(A, X.T @ y)
            if torch.isfinite(coef).all():
                self.coef = coef.to(batch.rew.dtype)
                return
            reg *= 10


def gpomdp_weights(batch: TrajBatch, discount: float, baseline: torch.Tensor | None) -> torch.Tensor:
    """Per-step constants w_h = gamma^h (G_h - b_h) of the paper's GPOMDP surrogate (masked, detached)."""
    G = discounted_reward_to_go(batch.rew, batch.mask, discount)
    adv = G - baseline if baseline is not None else G
    T = batch.rew.shape[1]
    disc = discount ** torch.arange(T, device=batch.rew.device, dtype=batch.rew.dtype)
    return (disc * adv * batch.mask).detach()


def per_traj_surrogate(policy: FlatPolicy, theta: torch.Tensor, batch: TrajBatch,
                       weights: torch.Tensor) -> torch.Tensor:
    """Phi_i(theta) = sum_h w_h log pi_theta(a_h|s_h) for each trajectory i -> [N]; grad Phi_i = g(tau_i)."""
    logp = policy.log_prob(theta, batch.obs, batch.act) * batch.mask
    return (weights * logp).sum(1)


def per_traj_logp(policy: FlatPolicy, theta: torch.Tensor, batch: TrajBatch) -> torch.Tensor:
    """log p(tau_i | theta) = sum_h log pi_theta(a_h|s_h) (policy part only) -> [N]."""
    return (policy.log_prob(theta, batch.obs, batch.act) * batch.mask).sum(1)


def gpomdp_gradient(policy: FlatPolicy, theta: torch.Tensor, batch: TrajBatch, weights: torch.Tensor) -> torch.Tensor:
    """Mean over trajectories of the GPOMDP estimate g(tau_i, theta) (ascent direction of J)."""
    th = theta.detach().requires_grad_(True)
    phi = per_traj_surrogate(policy, th, batch, weights).mean()
    (grad,) = torch.autograd.grad(phi, th)
    return grad


def hvp_correction(policy: FlatPolicy, q: torch.Tensor, batch: TrajBatch, weights: torch.Tensor,
                   delta: torch.Tensor, code_faithful: bool = False) -> torch.Tensor:
    """HARPG's Hessian estimate B(tau, q) applied to delta, averaged over the batch (sampled at q).

    Unbiased (default): mean_i [ Hess(Phi_i) delta + grad(Phi_i) <grad log p_i, delta> ], log p_i summed over
    trajectory i's steps; the scalars <grad log p_i, delta> come from one forward-mode JVP.
    code_faithful=True reproduces the authors' estimator (spec pitfall 5): Hess(mean Phi) delta +
    grad(mean Phi) * <grad(mean over ALL steps of log pi), delta> -- a product of averages with log p averaged
    per step, which is biased. Only this estimator changes; the surrogate is the same.
    """
    q = q.detach()
    delta = delta.detach()
    if code_faithful:
        def mean_step_logp(th):
            logp = policy.log_prob(th, batch.obs, batch.act) * batch.mask
            return logp.sum() / batch.mask.sum()
        _, score_dir = jvp(mean_step_logp, (q,), (delta,))
        score_dir = score_dir.expand(batch.n_traj)
    else:
        _, score_dir = jvp(lambda th: per_traj_logp(policy, th, batch), (q,), (delta,))
    th = q.requires_grad_(True)
    phi = per_traj_surrogate(policy, th, batch, weights)
    (grad_mean,) = torch.autograd.grad(phi.mean(), th, create_graph=True)
    (hess_delta,) = torch.autograd.grad(grad_mean @ delta, th, retain_graph=True)
    (score_term,) = torch.autograd.grad((score_dir.detach() * phi).mean(), th)
    return hess_delta + score_term


# ----------------------------------------------------------------------------- config and run scaffold

LQR_NAMES = ("LQR", "LQR-v0")


class DivergedError(UserError):
    """Training produced non-finite parameters; the run directory (eval.csv so far, summary.json with
    status 'diverged') is kept so analyses can count the run as censored."""

    def __init__(self, message: str, run_dir: str):
        super().__init__(message)
        self.run_dir = run_dir


@dataclasses.dataclass
class PGConfig(RunConfig):
    """Stochastic policy gradient on a gymnasium env or the exact LQR testbed (--env LQR)."""

    env: str = "CartPole"
    """environment: LQR (batched exact testbed), a short name (CartPole, Acrobot, Hopper, ...) or a gymnasium id"""
    total_steps: int = 500_000
    """sample budget in env steps, counting every batch the method draws (IGT's extrapolated-point batch and
    HARPG's HVP batch included); training stops at the first iteration that reaches it"""
    n_envs: int = 8
    """gymnasium env copies stepped in lockstep (one batched policy forward per step); ignored on LQR"""
    eval_every: int = 10_000
    """deterministic evaluation every this many counted env steps (also at start and end; 0 = start and end)"""
    eval_log_points: int = 0
    """also evaluate at this many log-spaced env-step counts (dense early points for log-log rate fits)"""
    eval_episodes: int = 20
    """episodes per evaluation (the authors' code uses 20 deterministic episodes)"""
    gamma0: float = 0.1
    """initial step size gamma_0 of the method's step-size schedule"""
    eta0: float = 1.0
    """initial momentum weight eta_0 (eta_0 = 1 makes d_0 the first gradient)"""
    batch_size: int = 5000
    """env steps per gradient batch, collected as whole episodes until at least this many (LQR: rounded up to
    whole fixed-length trajectories, so --batch-size 80 = one trajectory)"""
    discount: float = 0.99
    """discount gamma of the objective; GPOMDP weights step h by gamma^h (the paper's convention)"""
    max_episode_steps: int = 0
    """episode time limit (0 = the env's default); the authors cap CartPole at 200"""
    hidden: list[int] = dataclasses.field(default_factory=lambda: [32, 32])
    """hidden layer sizes of the tanh MLP policy (authors: [32, 32] discrete, [64, 64] MuJoCo)"""
    init_std: float = 1.0
    """initial std of the Gaussian MLP policy (continuous actions)"""
    min_std: float = 1e-6
    """floor on the learned std (keeps the Fisher matrix non-degenerate, spec pitfall 10)"""
    baseline: bool = True
    """subtract a linear-feature baseline fitted on the previous batch (keeps the estimator unbiased)"""
    lqr_sigma: float = 0.5
    """LQR: fixed exploration std of the linear Gaussian policy u = -Kx + sigma*eps"""
    lqr_horizon: int = 80
    """LQR: simulator episode length H (truncation bias is O(discount^H))"""
    torch_threads: int = 1
    """torch CPU threads (0 = torch's default); 1 is fastest for these small per-step tensors"""

    def validate(self) -> None:
        super().validate()
        require(self.resume is None, "--resume is not supported by the policy-gradient family yet")
        require(self.checkpoint_every == 0, "--checkpoint-every is not supported by the policy-gradient family yet "
                                            "(the final parameters are saved to checkpoints/final.pt)")
        require(self.gamma0 > 0, f"--gamma0 must be positive, got {self.gamma0}")
        require(0 < self.eta0 <= 1, f"--eta0 must be in (0, 1], got {self.eta0}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(0 < self.discount <= 1, f"--discount must be in (0, 1], got {self.discount}")
        require(self.max_episode_steps >= 0, f"--max-episode-steps must be >= 0, got {self.max_episode_steps}")
        require(all(h > 0 for h in self.hidden), f"--hidden sizes must be positive, got {self.hidden}")
        require(self.min_std > 0 and self.init_std > 0, "--init-std and --min-std must be positive")
        require(self.lqr_sigma > 0, f"--lqr-sigma must be positive, got {self.lqr_sigma}")
        require(self.lqr_horizon > 0, f"--lqr-horizon must be positive, got {self.lqr_horizon}")
        require(self.eval_log_points >= 0, f"--eval-log-points must be >= 0, got {self.eval_log_points}")
        if self.env in LQR_NAMES:
            require(self.discount < 1, "--discount must be < 1 on LQR (the exact cost is the discounted one)")


def is_lqr(env: str) -> bool:
    return env in LQR_NAMES


def resolve_gym_id(name: str) -> str:
    from envs.registry import resolve_env_id
    return resolve_env_id(name)


def peek_flag(argv: list[str], flag: str, default: str) -> str:
    """The value of `flag` in argv (either '--flag v' or '--flag=v') before full parsing, for presets."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def common_presets(env: str, algo_overrides: dict[str, dict]) -> dict:
    """Per-env defaults shared by the PG family, then the algorithm's own per-env overrides.

    CartPole / Acrobot / MuJoCo follow the authors' code (spec 1(d)); the LQR values are ours (tuned on the
    default system so every method converges within the 'small' budget, see paper_figs/npg_sample_complexity).
    """
    if is_lqr(env):
        base = dict(discount=0.9, batch_size=80, total_steps=80 * 2000, eval_every=0, eval_log_points=40,
                    eval_episodes=16, n_envs=1)
        key = "LQR"
    else:
        gid = resolve_gym_id(env)
        from envs.registry import env_family
        if env_family(gid) == "mujoco":
            base = dict(hidden=[64, 64], batch_size=10_000, total_steps=2_000_000, eval_every=20_000)
            key = "mujoco"
        else:
            base = dict(hidden=[32, 32], batch_size=5000, total_steps=500_000, eval_every=10_000)
            if gid == "CartPole-v1":
                base["max_episode_steps"] = 200
            key = gid.split("-")[0]
    base.update(algo_overrides.get(key, {}))
    return base


class PGRun:
    """Env, policy, sampler, counters, baseline, evaluation and run directory for one PG training run."""

    def __init__(self, cfg: PGConfig, algo: str):
        set_torch_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        self.cfg = cfg
        self.algo = algo
        self.device = resolve_device(cfg.device)
        self.counter = SampleCounter()
        self.baseline = LinearFeatureBaseline() if cfg.baseline else None
        self.lqr = is_lqr(cfg.env)
        if self.lqr:
            self._make_lqr()
        else:
            self._make_gym()
        self.theta0 = self.policy.initial_theta().to(self.device)
        self.logger = RunLogger.create(cfg.run_dir, algo, self.env_name, cfg.seed, to_dict(cfg), str(self.device),
                                       tensorboard=cfg.track == "tensorboard")
        self.progress = Progress(cfg.total_steps, enabled=cfg.progress, desc=f"{algo} {self.env_name}")
        self.eval_points = self._eval_points()
        self.next_eval = 0
        self.last_eval_return = float("nan")
        self.start = time.time()

    # -- construction
    def _make_lqr(self) -> None:
        from envs import lqr
        cfg = self.cfg
        self.env_name = "LQR"
        self.system = lqr.default_system(discount=cfg.discount, horizon=cfg.lqr_horizon, sigma=cfg.lqr_sigma)
        self.env = lqr.BatchedLQR(self.system, self.device)
        # evaluation rollouts draw their initial states from their own generator, so how often we evaluate
        # does not change the training samples (same seed + different --eval-every = same learning curve)
        self.eval_env = lqr.BatchedLQR(self.system, self.device,
                                       generator=torch.Generator(device=self.device).manual_seed(cfg.seed + 7919))
        module = LinearGaussianPolicy(self.system.n, self.system.m, cfg.lqr_sigma, self.system.K0).to(self.device)
        self.policy = FlatPolicy(module)
        self.cost_opt = lqr.optimal_cost(self.system)
        self.gain_opt = lqr.optimal_gain(self.system)
        self.traj_per_batch = max(1, math.ceil(cfg.batch_size / self.system.horizon))

    def _make_gym(self) -> None:
        import gymnasium as gym
        cfg = self.cfg
        gid = resolve_gym_id(cfg.env)
        self.env_name = gid
        kwargs = {"max_episode_steps": cfg.max_episode_steps} if cfg.max_episode_steps else {}

        def make(seed: int):
            env = gym.make(gid, **kwargs)
            env.reset(seed=seed)
            env.action_space.seed(seed)
            return env

        self.envs = [make(cfg.seed * 1000 + i) for i in range(cfg.n_envs)]
        self.eval_envs = [make(cfg.seed * 1000 + 500 + i) for i in range(min(cfg.n_envs, max(cfg.eval_episodes, 1)))]
        space = self.envs[0].observation_space
        act_space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise UserError(f"{gid}: the PG family needs a flat Box observation space, got {space}")
        obs_dim = space.shape[0]
        if isinstance(act_space, gym.spaces.Discrete):
            module = CategoricalMLPPolicy(obs_dim, int(act_space.n), list(cfg.hidden))
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            module = GaussianMLPPolicy(obs_dim, act_space.shape[0], list(cfg.hidden), cfg.init_std, cfg.min_std)
        else:
            raise UserError(f"{gid}: unsupported action space {act_space} (need Discrete or a flat Box)")
        self.policy = FlatPolicy(module.to(self.device))

    def _eval_points(self) -> list[int]:
        cfg = self.cfg
        pts = {0, cfg.total_steps}
        if cfg.eval_every > 0:
            pts.update(range(cfg.eval_every, cfg.total_steps, cfg.eval_every))
        if cfg.eval_log_points > 0:
            pts.update(int(x) for x in np.geomspace(1, cfg.total_steps, cfg.eval_log_points))
        return sorted(pts)

    # -- sampling and estimation
    def sample(self, theta: torch.Tensor, min_steps: int | None = None) -> TrajBatch:
        """Training batch at theta (every step counted). min_steps defaults to --batch-size."""
        steps = self.cfg.batch_size if min_steps is None else min_steps
        if self.lqr:
            n = max(1, math.ceil(steps / self.system.horizon))
            return sample_batched(self.env, self.policy, theta, n, self.counter)
        return sample_gym(self.envs, self.policy, theta, steps, self.counter, self.device)

    def weights(self, batch: TrajBatch) -> torch.Tensor:
        b = self.baseline.predict(batch) if self.baseline is not None else None
        return gpomdp_weights(batch, self.cfg.discount, b)

    def gradient(self, theta: torch.Tensor, batch: TrajBatch) -> torch.Tensor:
        return gpomdp_gradient(self.policy, theta, batch, self.weights(batch))

    def refit_baseline(self, batch: TrajBatch) -> None:
        """Called after the update (garage's order), so the next batch's baseline does not see its own actions."""
        if self.baseline is not None:
            self.baseline.fit(batch, discounted_reward_to_go(batch.rew, batch.mask, self.cfg.discount))

    def budget_left(self) -> bool:
        return self.counter.env_steps < self.cfg.total_steps

    def check_finite(self, theta: torch.Tensor, what: str, iteration: int) -> None:
        if not torch.isfinite(theta).all():
            self.logger.write_summary({"status": "diverged", "iteration": iteration,
                                       "env_steps": self.counter.env_steps, "what": what})
            self.progress.close()
            raise DivergedError(f"{self.algo}: {what} became non-finite at iteration {iteration} "
                                f"(env step {self.counter.env_steps}); lower --gamma0", str(self.logger.path))

    # -- evaluation and logging
    def evaluate(self, theta: torch.Tensor, iteration: int) -> dict:
        cfg = self.cfg
        extra = {"iteration": iteration, "trajectories": self.counter.trajectories}
        if self.lqr:
            from envs import lqr
            K = theta.detach().view(self.system.m, self.system.n).cpu().numpy()
            cost = lqr.exact_cost(self.system, K)
            extra.update(cost_exact=cost, cost_opt=self.cost_opt, suboptimality=cost - self.cost_opt,
                         gain_error=float(np.linalg.norm(K - self.gain_opt)))
            n = max(cfg.eval_episodes, 1)
            lengths = [self.system.horizon] * n
            if math.isfinite(cost):
                batch = sample_batched(self.eval_env, self.policy, theta, n, self.counter, deterministic=True)
                disc = cfg.discount ** torch.arange(batch.rew.shape[1], dtype=batch.rew.dtype,
                                                    device=batch.rew.device)
                # deterministic (sigma = 0 actions) discounted return, for the common return_mean column
                returns = (batch.rew * disc).sum(1).cpu().tolist()
            else:  # not stabilising: states blow up, the exact return is -inf
                returns = [-math.inf] * n
        else:
            if cfg.eval_episodes == 0:
                returns, lengths = [], []
            else:
                batch = sample_gym(self.eval_envs, self.policy, theta, 0, None, self.device, deterministic=True,
                                   n_episodes=cfg.eval_episodes)
                returns = batch.undiscounted_returns().cpu().tolist()
                lengths = batch.mask.sum(1).long().cpu().tolist()
        out = self.logger.log_eval(self.counter.env_steps, returns, lengths, **extra)
        out.update(extra)
        self.last_eval_return = out.get("suboptimality", out["return_mean"])
        return out

    def maybe_evaluate(self, theta: torch.Tensor, iteration: int) -> None:
        """Evaluate (before the update, as the authors do) when the counter has passed the next eval point."""
        fired = False
        while self.next_eval < len(self.eval_points) and self.counter.env_steps >= self.eval_points[self.next_eval]:
            self.next_eval += 1
            fired = True
        if fired:
            self.evaluate(theta, iteration)

    def log_iteration(self, steps_before: int, iteration: int, **metrics) -> None:
        self.progress.update(self.counter.env_steps - steps_before, it=iteration,
                             **{("subopt" if self.lqr else "eval"): self.last_eval_return})
        if iteration % 10 == 0:
            self.logger.log(self.counter.env_steps, iteration=iteration, trajectories=self.counter.trajectories,
                            **{k: float(v) for k, v in metrics.items()})

    def finish(self, theta: torch.Tensor, iteration: int) -> dict:
        final = self.evaluate(theta, iteration)
        summary = {"status": "done", "iterations": iteration, "env_steps": self.counter.env_steps,
                   "trajectories": self.counter.trajectories, "wall_time": time.time() - self.start,
                   "final_return_mean": final["return_mean"]}
        if self.lqr:
            summary.update(final_cost=final["cost_exact"], cost_opt=self.cost_opt,
                           final_suboptimality=final["suboptimality"])
        self.logger.write_summary(summary)
        save_checkpoint(self.logger.path / "checkpoints" / "final.pt",
                        {"theta": theta.detach().cpu(), "iteration": iteration, "env_steps": self.counter.env_steps})
        self.progress.close()
        self.logger.close()
        for env in getattr(self, "envs", []) + getattr(self, "eval_envs", []):
            env.close()
        summary["run_dir"] = str(self.logger.path)
        return summary
