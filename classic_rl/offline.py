"""What every offline (dataset-only) algorithm shares: its config flags, the dataset as device tensors, the
TD3-style target and the evaluation of a deterministic actor with the dataset's observation normalization.

In offline training a "step" is one gradient step (no env is stepped to learn); evaluation runs
deterministic episodes in the dataset's env and reports the return and the normalized score
100 (R - R_min) / (R_max - R_min) with the dataset's reference returns.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from classic_rl.buffers import ReplayBuffer
from classic_rl.config import RunConfig, require
from classic_rl.ensemble import EnsembleMLP
from classic_rl.evaluation import Evaluator


@dataclass
class OfflineConfig(RunConfig):
    """Flags of offline training from a fixed dataset."""

    dataset: str = "hopper-medium"
    """dataset id: the toolkit's own (hopper-medium, walker2d-medium-replay, ...; generated on first use) or
    an official Minari id (mujoco/hopper/medium-v0) already in the local Minari datasets root"""
    env: typing.Optional[str] = None
    """environment the policy is evaluated in (default: the dataset's env)"""
    total_steps: int = 1_000_000
    """gradient steps (offline training steps no environment)"""
    n_envs: int = 5
    """parallel environments for the evaluation episodes (offline training steps no environment)"""
    eval_every: int = 5000
    """evaluate every this many gradient steps (0 = only at the end)"""
    eval_episodes: int = 10
    """deterministic evaluation episodes, with the dataset's observation normalization"""
    eval_max_steps: int = 0
    """cut evaluation episodes after this many steps (0 = the env's own time limit)"""
    batch_size: int = 256
    """transitions per gradient step, drawn uniformly from the dataset"""
    gamma: float = 0.99
    """discount factor"""
    log_every: int = 1000
    """write a metrics row (losses, Q statistics) every this many gradient steps"""
    normalize_obs: bool = True
    """z-score observations with the dataset's mean and std (std + 1e-3), in training and evaluation"""

    def validate(self) -> None:
        super().validate()
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(0 <= self.gamma <= 1, f"--gamma must be in [0, 1], got {self.gamma}")
        require(self.log_every > 0, f"--log-every must be positive, got {self.log_every}")
        require(self.eval_max_steps >= 0, f"--eval-max-steps must be >= 0, got {self.eval_max_steps}")


@dataclass
class OfflineData:
    """A dataset on the training device: transitions in a replay buffer (observations already normalized
    when `obs_mean`/`obs_std` are applied) plus what evaluation needs."""

    buffer: ReplayBuffer
    env_id: str
    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    ref_min: float
    ref_max: float
    action_high: float = 1.0

    def q_bound(self, gamma: float) -> float:
        """The largest |Q| any policy can have on this data: max |r| / (1 - gamma) (inf for gamma = 1)."""
        r_max = float(self.buffer.rewards[:self.buffer.size].abs().max())
        return r_max / (1 - gamma) if gamma < 1 else math.inf

    def normalized_score(self, ret: float) -> float:
        return 100.0 * (ret - self.ref_min) / (self.ref_max - self.ref_min)


class DeterministicActor(nn.Module):
    """s -> hidden (ReLU) -> a_max tanh(.)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int], high: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden_sizes:
            layers += [nn.Linear(obs_dim, width), nn.ReLU()]
            obs_dim = width
        self.net = nn.Sequential(*layers, nn.Linear(obs_dim, act_dim), nn.Tanh())
        self.high = high

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.high * self.net(obs)


@dataclass
class TD3Networks:
    """TD3's actor and twin critics (one batched ensemble), their target copies and Adam optimizers."""

    actor: DeterministicActor
    actor_target: DeterministicActor
    critic: EnsembleMLP
    critic_target: EnsembleMLP
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer

    @classmethod
    def build(cls, obs_dim: int, act_dim: int, actor_hidden: Sequence[int], critic_hidden: Sequence[int],
              high: float, lr: float, device: torch.device) -> "TD3Networks":
        actor = DeterministicActor(obs_dim, act_dim, actor_hidden, high).to(device)
        actor_target = DeterministicActor(obs_dim, act_dim, actor_hidden, high).to(device)
        critic = EnsembleMLP(2, obs_dim + act_dim, critic_hidden).to(device)
        critic_target = EnsembleMLP(2, obs_dim + act_dim, critic_hidden).to(device)
        actor_target.load_state_dict(actor.state_dict())
        critic_target.load_state_dict(critic.state_dict())
        return cls(actor, actor_target, critic, critic_target,
                   torch.optim.Adam(actor.parameters(), lr=lr, fused=True),
                   torch.optim.Adam(critic.parameters(), lr=lr, fused=True))

    def tracked(self) -> dict[str, Any]:
        """Everything a checkpoint holds, by name (for RunSession.track)."""
        return dict(vars(self))


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over ensemble members of the mean squared TD error; q: [members, B, 1], target: [B]."""
    return F.mse_loss(q.squeeze(-1), target.expand(q.shape[0], -1), reduction="none").mean(1).sum()


def td3_target(rewards: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma (1 - d) min_j Q'_j(s', a'); `next_q` is [members, B, 1] -> y is [B]."""
    return rewards + gamma * (~terminated).float() * next_q.min(dim=0).values.squeeze(-1)


def smoothed_target_action(actor_target: Callable[[torch.Tensor], torch.Tensor], next_obs: torch.Tensor,
                           noise_std: float, noise_clip: float, high: float) -> torch.Tensor:
    """TD3's target policy smoothing: clip(pi'(s') + clip(eps, -c, c), -a_max, a_max), eps ~ N(0, sigma^2)."""
    action = actor_target(next_obs)
    noise = (torch.randn_like(action) * noise_std).clamp(-noise_clip, noise_clip)
    return (action + noise).clamp(-high, high)


def warn_if_q_diverges(run: Any, q_mean: torch.Tensor, bound: float) -> None:
    """On logging iterations, warn (summary.json too) when the mean Q estimate leaves the range any policy
    could reach on the data: the critic is extrapolating out of distribution and diverging."""
    if run.iteration % run.log_every or any("the critic is diverging" in w for w in run.warnings):
        return  # checked on logging iterations only (one device sync), and reported once
    if float(q_mean) > bound:
        run.warn(f"mean Q estimate {float(q_mean):.4g} exceeds max|r| / (1 - gamma) = {bound:.4g} at gradient step "
                 f"{run.step}: the critic is diverging (extrapolation out of the data)")


def make_evaluator(cfg: OfflineConfig, data: OfflineData, make_envs: Callable[..., Any],
                   actor: Callable[[torch.Tensor], torch.Tensor], device: torch.device) -> tuple[Evaluator, Callable]:
    """An Evaluator on the dataset's env and the session's evaluate() for a deterministic actor."""
    env_name = cfg.env or data.env_id
    evaluator = Evaluator(lambda k: make_envs(env_name, k, training=False,
                                              max_episode_steps=cfg.eval_max_steps or None),
                          cfg.eval_episodes, cfg.n_envs, cfg.seed + 100, device)

    def act(obs: torch.Tensor) -> torch.Tensor:
        obs = obs.to(torch.float32)
        if cfg.normalize_obs:
            obs = (obs - data.obs_mean) / data.obs_std
        return actor(obs)

    def evaluate() -> dict[str, Any]:
        returns, lengths = evaluator.run(act)
        mean = sum(returns) / max(len(returns), 1)
        return {"returns": returns, "lengths": lengths,
                "normalized_score": data.normalized_score(mean) if returns else math.nan}

    return evaluator, evaluate
