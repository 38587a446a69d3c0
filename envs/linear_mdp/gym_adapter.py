"""Gymnasium adapter for the linear MDPs: observation = (step, state index); info["phi"] = features [A, d]."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from envs.linear_mdp import make_linear_mdp


class LinearMDPEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, name: str = "LinearMDP", shift: float | None = None):
        self.mdp = make_linear_mdp(name)
        self.kern = self.mdp.kernel(shift)
        self.observation_space = gym.spaces.MultiDiscrete([self.mdp.horizon + 1, self.mdp.n_states])
        self.action_space = gym.spaces.Discrete(self.mdp.n_actions)
        self._gen = torch.Generator()
        self.h, self.s = 0, 0

    def _obs(self):
        return np.array([self.h, self.s]), {"phi": self.mdp.phi[min(self.h, self.mdp.horizon - 1), self.s].numpy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._gen.manual_seed(seed)
        self.h, self.s = 0, int(torch.multinomial(self.mdp.mu0, 1, generator=self._gen))
        return self._obs()

    def step(self, action):
        a = int(action)
        r = float(self.mdp.reward[self.h, self.s, a])
        self.s = int(torch.multinomial(self.kern[self.h, self.s, a], 1, generator=self._gen))
        self.h += 1
        obs, info = self._obs()
        return obs, r, False, self.h >= self.mdp.horizon, info
