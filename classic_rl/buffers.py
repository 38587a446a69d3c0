"""Rollout storage with GAE(lambda), and a circular replay buffer; both live on the training device."""
from __future__ import annotations

from typing import Iterator

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        episode_end: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimates for [T, N] rollouts.

    next_values[t] is V(s_{t+1}) of the *true* next state (the final observation when the episode ended at
    t), so a time-limit truncation bootstraps from the state it stopped in; `terminated` zeroes that
    bootstrap, and `episode_end` (terminated or truncated) stops the lambda-recursion from leaking across
    episodes. Returns advantages; the value targets are advantages + values.
    """
    not_terminal = 1.0 - terminated.to(values.dtype)
    not_end = 1.0 - episode_end.to(values.dtype)
    deltas = rewards + gamma * next_values * not_terminal - values
    advantages = torch.empty_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):  # a loop over time only; batched over envs
        running = deltas[t] + gamma * lam * not_end[t] * running
        advantages[t] = running
    return advantages


class RolloutBuffer:
    """Pre-allocated [n_steps, n_envs, ...] tensors filled step by step during collection."""

    def __init__(self, n_steps: int, n_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype,
                 action_shape: tuple[int, ...], action_dtype: torch.dtype, device: torch.device):
        T, N = n_steps, n_envs
        self.n_steps, self.n_envs, self.device = T, N, device
        self.obs = torch.zeros((T, N, *obs_shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros((T, N, *action_shape), dtype=action_dtype, device=device)
        self.log_probs = torch.zeros((T, N), device=device)
        self.rewards = torch.zeros((T, N), device=device)
        self.values = torch.zeros((T, N), device=device)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.episode_end = torch.zeros((T, N), dtype=torch.bool, device=device)
        # V(final_obs) for envs truncated at step t (only read where truncated and not terminated).
        self.truncation_values = torch.zeros((T, N), device=device)
        self.advantages = torch.zeros((T, N), device=device)
        self.returns = torch.zeros((T, N), device=device)

    def compute_returns(self, last_values: torch.Tensor, gamma: float, lam: float) -> None:
        next_values = torch.cat([self.values[1:], last_values.unsqueeze(0)], 0)
        truncated = self.episode_end & ~self.terminated
        next_values = torch.where(truncated, self.truncation_values, next_values)
        self.advantages = gae(self.rewards, self.values, next_values, self.terminated, self.episode_end, gamma, lam)
        self.returns = self.advantages + self.values

    def flat(self) -> dict[str, torch.Tensor]:
        T, N = self.n_steps, self.n_envs
        return {
            "obs": self.obs.reshape(T * N, *self.obs.shape[2:]),
            "actions": self.actions.reshape(T * N, *self.actions.shape[2:]),
            "log_probs": self.log_probs.reshape(-1), "values": self.values.reshape(-1),
            "advantages": self.advantages.reshape(-1), "returns": self.returns.reshape(-1),
        }


def minibatches(data: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of shuffled minibatches (the last one may be smaller)."""
    n = next(iter(data.values())).shape[0]
    perm = torch.randperm(n, generator=generator).to(next(iter(data.values())).device)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        yield {k: v[idx] for k, v in data.items()}


class ReplayBuffer:
    """Circular buffer of transitions in device tensors (off-policy and offline algorithms)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 device: torch.device, obs_dtype: torch.dtype = torch.float32,
                 action_dtype: torch.dtype = torch.float32):
        self.capacity, self.device = capacity, device
        self.obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype, device=device)
        self.next_obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros((capacity, *action_shape), dtype=action_dtype, device=device)
        self.rewards = torch.zeros(capacity, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.pos = 0
        self.size = 0

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        """Add a batch of transitions (leading dim = batch), wrapping around when full."""
        n = obs.shape[0]
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        self.obs[idx] = obs.to(self.device, self.obs.dtype)
        self.next_obs[idx] = next_obs.to(self.device, self.obs.dtype)
        self.actions[idx] = actions.to(self.device, self.actions.dtype)
        self.rewards[idx] = rewards.to(self.device, torch.float32)
        self.terminated[idx] = terminated.to(self.device, torch.bool)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        # drawn on the generator's device: a generator on the training device means no host->device copy
        gen_device = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randint(0, self.size, (batch_size,), generator=generator, device=gen_device).to(self.device)
        return {"obs": self.obs[idx], "actions": self.actions[idx], "rewards": self.rewards[idx],
                "next_obs": self.next_obs[idx], "terminated": self.terminated[idx]}

    def state_dict(self) -> dict:
        """The filled rows (not the whole capacity), the write position and the size, for exact resume."""
        n = self.size
        return {"obs": self.obs[:n].clone(), "next_obs": self.next_obs[:n].clone(),
                "actions": self.actions[:n].clone(), "rewards": self.rewards[:n].clone(),
                "terminated": self.terminated[:n].clone(), "pos": self.pos, "size": self.size,
                "capacity": self.capacity}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict. A buffer of another capacity accepts it when the saved rows are still in
        insertion order (never wrapped, or wrapped exactly to position 0) and fit (a run extended on resume)."""
        n, pos = int(state["size"]), int(state["pos"])
        in_order = pos == 0 or n < int(state["capacity"])
        fits = int(state["capacity"]) == self.capacity or (in_order and n <= self.capacity)
        if not fits or tuple(state["obs"].shape[1:]) != tuple(self.obs.shape[1:]) \
                or tuple(state["actions"].shape[1:]) != tuple(self.actions.shape[1:]):
            raise ValueError(f"replay buffer state (capacity {state['capacity']}, size {n}, obs "
                             f"{tuple(state['obs'].shape[1:])}, actions {tuple(state['actions'].shape[1:])}) does not "
                             f"fit this buffer (capacity {self.capacity}, obs {tuple(self.obs.shape[1:])}, actions "
                             f"{tuple(self.actions.shape[1:])})")
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = state[name].to(self.device)
        self.size = n
        self.pos = pos if int(state["capacity"]) == self.capacity else n % self.capacity

    @classmethod
    def from_arrays(cls, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
                    terminated: torch.Tensor, device: torch.device | str | None = None) -> "ReplayBuffer":
        """A full buffer holding exactly these transitions (offline datasets), on `device` (default: where
        `obs` is). Tensors already on the device with the buffer's dtypes are used as they are, not copied."""
        n = obs.shape[0]
        for name, t in (("actions", actions), ("rewards", rewards), ("next_obs", next_obs),
                        ("terminated", terminated)):
            if t.shape[0] != n:
                raise ValueError(f"from_arrays: {name} has {t.shape[0]} rows, obs has {n}")
        device = torch.device(device) if device is not None else obs.device
        buf = cls.__new__(cls)
        buf.capacity, buf.device = n, device
        buf.obs = obs.to(device)
        buf.next_obs = next_obs.to(device, obs.dtype)
        buf.actions = actions.to(device)
        buf.rewards = rewards.to(device, torch.float32)
        buf.terminated = terminated.to(device, torch.bool)
        buf.pos, buf.size = 0, n
        return buf
