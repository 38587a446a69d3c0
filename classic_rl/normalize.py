"""Running observation / return normalization on the training device (saved with checkpoints)."""
from __future__ import annotations

import torch


class RunningMeanStd:
    """Streaming mean and variance (Chan et al. parallel update), float64 for stability."""

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str = "cpu"):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = torch.tensor(1e-4, dtype=torch.float64, device=device)

    def update(self, batch: torch.Tensor) -> None:
        batch = batch.to(torch.float64)
        b_mean = batch.mean(0)
        b_var = batch.var(0, unbiased=False)
        b_count = batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta.pow(2) * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        dev = self.mean.device
        self.mean, self.var, self.count = (state[k].to(dev) for k in ("mean", "var", "count"))


class ObsNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped; a no-op when disabled."""

    def __init__(self, shape: tuple[int, ...], enabled: bool, device, clip: float = 10.0, eps: float = 1e-8):
        self.enabled, self.clip, self.eps = enabled, clip, eps
        self.rms = RunningMeanStd(shape, device)
        self._refresh()

    def _refresh(self) -> None:
        self._mean = self.rms.mean.float()
        self._inv_std = (self.rms.var + self.eps).rsqrt().float()

    def __call__(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        if not self.enabled:
            return obs
        if update:
            self.rms.update(obs)
            self._refresh()
        return ((obs - self._mean) * self._inv_std).clamp_(-self.clip, self.clip)

    def state_dict(self):
        return self.rms.state_dict()

    def load_state_dict(self, state) -> None:
        self.rms.load_state_dict(state)
        self._refresh()


class RewardScaler:
    """VecNormalize-style reward scaling: divide by the std of the running discounted return."""

    def __init__(self, n_envs: int, gamma: float, enabled: bool, device, clip: float = 10.0, eps: float = 1e-8):
        self.enabled, self.gamma, self.clip, self.eps = enabled, gamma, clip, eps
        self.rms = RunningMeanStd((), device)
        self.discounted_return = torch.zeros(n_envs, dtype=torch.float64, device=device)

    def __call__(self, reward: torch.Tensor, episode_end: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return reward
        self.discounted_return = self.discounted_return * self.gamma + reward
        self.rms.update(self.discounted_return)
        self.discounted_return = self.discounted_return * (~episode_end)
        return (reward / (self.rms.var + self.eps).sqrt()).clamp(-self.clip, self.clip).to(reward.dtype)

    def scale_rollout(self, rewards: torch.Tensor, episode_end: torch.Tensor) -> torch.Tensor:
        """Scale a [T, N] rollout step by step (the statistics evolve exactly as with per-step calls)."""
        if not self.enabled:
            return rewards.float()
        return torch.stack([self(rewards[t], episode_end[t]) for t in range(rewards.shape[0])]).float()

    def state_dict(self):
        return {**self.rms.state_dict(), "discounted_return": self.discounted_return}

    def load_state_dict(self, state) -> None:
        self.rms.load_state_dict(state)
        self.discounted_return = state["discounted_return"].to(self.rms.mean.device)
