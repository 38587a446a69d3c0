"""Gymnasium adapter: any FiniteMDP as a `gymnasium.Env` (observation = state index).

Entering a terminal state sets `terminated`; reaching the MDP's horizon sets `truncated` (for the
finite-horizon problems here the horizon is part of the task, so agents that bootstrap on truncation
should add the time step to their input, as the stock-augmented agents do).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from envs.tabular.finite_mdp import FiniteMDP
from envs.tabular.gridworlds import make_mdp


class TabularEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, mdp: FiniteMDP | str = "CliffWalk", **mdp_kwargs: Any):
        self.mdp = make_mdp(mdp, **mdp_kwargs) if isinstance(mdp, str) else mdp
        self.observation_space = gym.spaces.Discrete(self.mdp.n_states)
        self.action_space = gym.spaces.Discrete(self.mdp.n_actions)
        self._gen = torch.Generator()
        self.state, self.t = 0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._gen.manual_seed(seed)
        self.state = int(self.mdp.sample_initial(1, self._gen)[0])
        self.t = 0
        return self.state, {"t": 0}

    def step(self, action):
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} outside {self.action_space}")
        s2, r, term = self.mdp.sample_step(torch.tensor([self.state]), torch.tensor([int(action)]), self._gen)
        self.state, self.t = int(s2[0]), self.t + 1
        truncated = self.mdp.horizon is not None and self.t >= self.mdp.horizon and not bool(term[0])
        return self.state, float(r[0]), bool(term[0]), truncated, {"t": self.t}
