"""A lean synchronous vector env with gymnasium's same-step autoreset semantics.

gymnasium's SyncVectorEnv merges every info key of every env on every step; at one MuJoCo env that
bookkeeping costs about a third of the simulator step. The training loop needs only the observations,
rewards, termination flags, the final observation of an episode that just ended (to bootstrap a
truncation) and the episode statistics, so this class returns exactly those, in the same layout
(`info["final_obs"]`, `info["final_info"]["episode"]`, masks with a leading underscore).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np


class LeanSyncVectorEnv:
    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]):
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape),
                             dtype=self.single_observation_space.dtype)
        self._rewards = np.zeros(self.num_envs)
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._truncated = np.zeros(self.num_envs, dtype=bool)

    def reset(self, seed: int | Sequence[int] | None = None, options: dict | None = None):
        seeds = [None] * self.num_envs if seed is None else (
            [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed))
        for i, env in enumerate(self.envs):
            self._obs[i], _ = env.reset(seed=seeds[i], options=options)
        return self._obs.copy(), {}

    def step(self, actions: np.ndarray):
        info: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, env_info = env.step(actions[i])
            self._rewards[i], self._terminated[i], self._truncated[i] = reward, terminated, truncated
            if terminated or truncated:
                if not info:
                    info = {"final_obs": np.full(self.num_envs, None, dtype=object),
                            "_final_obs": np.zeros(self.num_envs, bool),
                            "final_info": {"episode": {"r": np.zeros(self.num_envs), "l": np.zeros(self.num_envs, int)},
                                           "_episode": np.zeros(self.num_envs, bool)},
                            "_final_info": np.zeros(self.num_envs, bool)}
                info["final_obs"][i], info["_final_obs"][i], info["_final_info"][i] = obs, True, True
                if "episode" in env_info:
                    final = info["final_info"]
                    final["episode"]["r"][i] = env_info["episode"]["r"]
                    final["episode"]["l"][i] = env_info["episode"]["l"]
                    final["_episode"][i] = True
                obs, _ = env.reset()
            self._obs[i] = obs
        return self._obs.copy(), self._rewards.copy(), self._terminated.copy(), self._truncated.copy(), info

    def call(self, name: str, *args, **kwargs) -> tuple:
        out = []
        for env in self.envs:
            attr = env.get_wrapper_attr(name)
            out.append(attr(*args, **kwargs) if callable(attr) else attr)
        return tuple(out)

    def close(self) -> None:
        for env in self.envs:
            env.close()
