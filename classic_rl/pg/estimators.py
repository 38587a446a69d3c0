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
tests). The authors' code drops gamma^h and averages the surrogate over all steps of the batch, which differs
from the paper's estimator by a state-dependent scaling (and makes their unnormalised step ~1/(episode
length) of ours); we follow the paper.
The baseline is fitted on the PREVIOUS batch (as garage does: refit after the update), so at the time it is
used it does not depend on the actions of the current batch and the estimator stays unbiased.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call, jvp

# ----------------------------------------------------------------------------- schedules (authors' code)
# step_size is the paper's gamma_0 (--step-size), eta0 its eta_0 (--eta0); gamma_t is the step of iteration t.


def igt_schedule(t: int, eta0: float, step_size: float) -> tuple[float, float]:
    """N-PG-IGT [code: NIGT_optimizer.py]: eta_t = eta0 (2/(t+2))^(4/5), gamma_t = step_size * 2/(t+2)."""
    return eta0 * (2.0 / (t + 2)) ** 0.8, step_size * 2.0 / (t + 2)


def harpg_schedule(t: int, eta0: float, step_size: float, normalized: bool) -> tuple[float, float]:
    """(N)-HARPG [code: STORMHess_optimizer.py]: eta_t = eta0 2/(t+2); gamma_t = step_size 2/(t+2) (normalised)
    or step_size (2/(t+2))^(1/2) (unnormalised)."""
    eta = eta0 * 2.0 / (t + 2)
    gamma = step_size * 2.0 / (t + 2) if normalized else step_size * (2.0 / (t + 2)) ** 0.5
    return eta, gamma


def sgd_schedule(t: int, step_size: float) -> float:
    """Vanilla PG [code: SGDM_optimizer.py, moving_avg=False]: gamma_t = step_size (2/(t+2))^(2/3)."""
    return step_size * (2.0 / (t + 2)) ** (2.0 / 3.0)


def nsgdm_schedule(t: int, eta0: float, step_size: float) -> tuple[float, float]:
    """Normalised momentum PG [code: SGDM_optimizer.py, moving_avg=True, normalized=True]:
    eta_t = eta0 (2/(t+2))^(2/3), gamma_t = step_size * 2/(t+2)."""
    return eta0 * (2.0 / (t + 2)) ** (2.0 / 3.0), step_size * 2.0 / (t + 2)


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
            layers.append(nn.Tanh())  # tanh, not ReLU: with ReLU the Hessian in HARPG's HVP is ~0 almost everywhere
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

    def state_dict(self) -> dict[str, int]:
        return {"env_steps": self.env_steps, "trajectories": self.trajectories}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.env_steps, self.trajectories = int(state["env_steps"]), int(state["trajectories"])


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
        return (baseline_features(batch.obs, batch.mask) @ self.coef.to(batch.rew.device)) * batch.mask

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        """The fitted weights (None before the first fit), so a resumed run uses the same baseline."""
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.coef = state["coef"]

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
    code_faithful=True reproduces the authors' estimator: Hess(mean Phi) delta +
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
