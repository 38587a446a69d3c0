"""Deterministic evaluation on separate envs, N episodes split evenly across them."""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
import torch


def episode_infos(info: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From a same-step-autoreset vector info: (mask of envs whose real episode ended, returns, lengths)."""
    final = info.get("final_info")
    if not final or "episode" not in final:
        return np.zeros(0, bool), np.zeros(0), np.zeros(0)
    mask = final.get("_episode", np.ones(len(final["episode"]["r"]), bool))
    return np.asarray(mask, bool), np.asarray(final["episode"]["r"], float), np.asarray(final["episode"]["l"])


class Evaluator:
    """Runs `n_episodes` with a deterministic policy; the k envs each run an equal share (+1 for the first
    n_episodes % k), reset with fixed seeds so every evaluation sees the same start states."""

    def __init__(self, make_envs: Callable[[int], gym.vector.VectorEnv], n_episodes: int, max_envs: int,
                 seed: int, device: torch.device):
        self.n_episodes = n_episodes
        self.n_envs = max(1, min(n_episodes, max_envs))
        self.envs = make_envs(self.n_envs) if n_episodes > 0 else None
        self.seed, self.device = seed, device

    def run(self, act: Callable[[torch.Tensor], torch.Tensor]) -> tuple[list[float], list[int]]:
        """`act(obs_tensor) -> action tensor` (already deterministic, already normalizing)."""
        if self.envs is None:
            return [], []
        k = self.n_envs
        targets = np.array([self.n_episodes // k + (i < self.n_episodes % k) for i in range(k)])
        counts = np.zeros(k, int)
        returns: list[float] = []
        lengths: list[int] = []
        obs, _ = self.envs.reset(seed=[self.seed + i for i in range(k)])
        low = high = None
        space = self.envs.single_action_space
        if isinstance(space, gym.spaces.Box):
            low, high = space.low, space.high
        while (counts < targets).any():
            with torch.no_grad():
                action = act(torch.as_tensor(obs, device=self.device)).cpu().numpy()
            if low is not None:
                action = np.clip(action, low, high)
            obs, _, _, _, info = self.envs.step(action)
            ended, rets, lens = episode_infos(info)
            for i in np.flatnonzero(ended):
                if counts[i] < targets[i]:
                    returns.append(float(rets[i]))
                    lengths.append(int(lens[i]))
                    counts[i] += 1
        return returns, lengths

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
