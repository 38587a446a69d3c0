"""Slippery FrozenLake 8x8 with a post-decision state: the cell the agent *intended* to reach.

The move is split like the lot-sizing step: the deterministic half is the intended move (clipped at the
walls), the random half is the slip (gymnasium's rule: with `is_slippery` the executed direction is the
intended one or either perpendicular one, 1/3 each). The PDPPO authors also run PDPPO on a modified
slippery FrozenLake, but their modified env was not available to us, so this reading of "post-decision
state" is ours (unverified against theirs).
Map: gymnasium's `generate_random_map(size=8, seed=map_seed)`, seeded so runs are comparable (the
authors draw an unseeded random map).

`FrozenLakePD` wraps gymnasium's FrozenLakeEnv (so the dynamics are gymnasium's) and adds to info
`post_decision_obs` (intended cell), `reward_decision` (0) and `reward_exogenous` (the reward).
`BatchedFrozenLake` steps many lakes with torch on a device; observations are one-hot cells; its
`state_dict()`/`load_state_dict()` capture the lakes and their random stream, for exact resume.

Importing this module registers the gymnasium id `FrozenLakePD-8x8` (200 steps per episode).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv, generate_random_map

MOVES = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]])  # LEFT, DOWN, RIGHT, UP as (row, col) steps


def lake_map(map_seed: int = 0, size: int = 8) -> list[str]:
    return generate_random_map(size=size, seed=map_seed)


def intended_cell(cell: np.ndarray | int, action: np.ndarray | int, size: int):
    """The deterministic half: where `action` leads from `cell` without slipping (walls clip)."""
    row, col = np.divmod(np.asarray(cell), size)
    step = MOVES[np.asarray(action)]
    row = np.clip(row + step[..., 0], 0, size - 1)
    col = np.clip(col + step[..., 1], 0, size - 1)
    return row * size + col


class FrozenLakePD(gym.Wrapper):
    def __init__(self, map_seed: int = 0, is_slippery: bool = True):
        self.desc = lake_map(map_seed)
        super().__init__(FrozenLakeEnv(desc=self.desc, is_slippery=is_slippery))
        self.size = len(self.desc)

    def step(self, action):
        cell = int(self.env.unwrapped.s)
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, post_decision_obs=int(intended_cell(cell, int(action), self.size)),
                    reward_decision=0.0, reward_exogenous=float(reward))
        return obs, reward, terminated, truncated, info


class BatchedFrozenLake:
    """Many slippery lakes on one device; one-hot observations, one action head of 4 classes."""

    def __init__(self, n_envs: int, device: str | torch.device = "cpu", seed: int = 0, map_seed: int = 0,
                 max_steps: int = 200, is_slippery: bool = True):
        self.desc = lake_map(map_seed)
        self.size = len(self.desc)
        self.n_envs, self.device, self.max_steps, self.is_slippery = n_envs, torch.device(device), max_steps, is_slippery
        flat = "".join(self.desc)
        dev = self.device
        self.hole = torch.tensor([c == "H" for c in flat], device=dev)
        self.goal = torch.tensor([c == "G" for c in flat], device=dev)
        self.start = flat.index("S")
        n_cells = self.size ** 2
        # next_cell[s, d]: the cell reached from s moving in direction d (walls clip).
        cells, dirs = np.meshgrid(np.arange(n_cells), np.arange(4), indexing="ij")
        self.next_cell = torch.as_tensor(intended_cell(cells, dirs, self.size), device=dev)
        self.obs_dim, self.action_nvec = n_cells, [4]
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(seed)
        self.cell = torch.full((n_envs,), self.start, dtype=torch.int64, device=dev)
        self.elapsed = torch.zeros(n_envs, dtype=torch.int64, device=dev)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "cell": self.cell.clone(), "elapsed": self.elapsed.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.cell = state["cell"].to(self.device).clone()
        self.elapsed = state["elapsed"].to(self.device).clone()

    def config(self) -> dict:
        return {"map": self.desc, "is_slippery": self.is_slippery, "max_steps": self.max_steps}

    def observation(self, cell: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(cell, self.size ** 2).float()

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.cell.fill_(self.start)
        self.elapsed.zero_()
        return self.observation(self.cell)

    def post_decision_obs(self, action: torch.Tensor) -> torch.Tensor:
        return self.observation(self.next_cell[self.cell, action[:, 0]])

    def step(self, action: torch.Tensor):
        intended = action[:, 0]
        slip = torch.randint(-1, 2, (self.n_envs,), generator=self.generator, device=self.device)
        direction = (intended + slip) % 4 if self.is_slippery else intended
        post_obs = self.observation(self.next_cell[self.cell, intended])
        self.cell = self.next_cell[self.cell, direction]
        self.elapsed += 1
        reward = self.goal[self.cell].float()
        terminated = self.hole[self.cell] | self.goal[self.cell]
        truncated = ~terminated & (self.elapsed >= self.max_steps)
        done = terminated | truncated
        info = {"post_decision_obs": post_obs, "reward_decision": torch.zeros_like(reward),
                "reward_exogenous": reward, "final_obs": self.observation(self.cell)}
        self.cell = torch.where(done, self.start, self.cell)
        self.elapsed = torch.where(done, 0, self.elapsed)
        return self.observation(self.cell), reward, terminated, truncated, info


if "FrozenLakePD-8x8" not in gym.registry:
    gym.register(id="FrozenLakePD-8x8", entry_point="envs.frozen_lake:FrozenLakePD", max_episode_steps=200)
