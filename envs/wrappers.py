"""Small wrappers the shared core needs: raw episode statistics and exact state snapshots for resume."""
from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np


class EpisodeStats(gym.Wrapper):
    """Tracks the raw (unnormalized, unclipped) return and length of the real episode.

    Sits innermost, so for Atari the reported return is the full-game score even though the outer
    episodic-life wrapper ends training episodes at every life loss. On the real end of an episode the
    step's info gets `episode = {"r": return, "l": length}`.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episode_return = 0.0
        self.episode_length = 0

    def reset(self, **kwargs):
        self.episode_return, self.episode_length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        self.episode_length += 1
        if terminated or truncated:
            info = dict(info)
            info["episode"] = {"r": self.episode_return, "l": self.episode_length}
        return obs, reward, terminated, truncated, info


def _find(env: gym.Env, cls: type) -> Any:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, cls):
            return env
        env = env.env
    return env if isinstance(env, cls) else None


# scalar episode flags of the classic-control envs besides their `state` array (CartPole, Pendulum)
CLASSIC_EXTRAS = ("steps_beyond_terminated", "last_u")


class Snapshot(gym.Wrapper):
    """Outermost wrapper with get_state()/set_state() so a vector env can be checkpointed exactly.

    Supported: MuJoCo envs (qpos, qvel, act, time) and any env whose unwrapped class defines
    `get_sim_state()` / `set_sim_state(state)` returning plain lists and numbers (the project's simulators),
    and gymnasium's classic-control envs (their `state` array);
    on top of that the env's np_random, the time-limit counter and the episode statistics. Other envs
    (Atari) return None, and the trainer restarts their episodes on resume (documented).
    """

    def get_state(self) -> dict[str, Any] | None:
        base = self.env.unwrapped
        state: dict[str, Any] = {}
        data = getattr(base, "data", None)
        if data is not None and hasattr(data, "qpos"):
            state["mujoco"] = {"qpos": np.array(data.qpos).tolist(), "qvel": np.array(data.qvel).tolist(),
                               "act": np.array(data.act).tolist(), "time": float(data.time),
                               # the constraint solver warm-starts from qacc_warmstart: without it a resumed
                               # contact-rich env (Walker2d) drifts from the uninterrupted one at ~1e-15
                               "qacc_warmstart": np.array(data.qacc_warmstart).tolist()}
        elif hasattr(base, "get_sim_state"):
            state["sim"] = base.get_sim_state()
        elif isinstance(getattr(base, "state", None), np.ndarray):  # gymnasium classic control
            state["classic"] = {"state": base.state.tolist(), "dtype": str(base.state.dtype),
                                **{k: getattr(base, k) for k in CLASSIC_EXTRAS if hasattr(base, k)}}
        else:
            return None
        state["np_random"] = json.dumps(base.np_random.bit_generator.state)
        limit = _find(self.env, gym.wrappers.TimeLimit)
        state["elapsed"] = int(limit._elapsed_steps) if limit is not None and limit._elapsed_steps is not None else 0
        stats = _find(self.env, EpisodeStats)
        if stats is not None:
            state["episode_return"], state["episode_length"] = stats.episode_return, stats.episode_length
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        base = self.env.unwrapped
        if "mujoco" in state:
            import mujoco

            sim = state["mujoco"]
            base.data.qpos[:] = sim["qpos"]
            base.data.qvel[:] = sim["qvel"]
            if len(sim["act"]):
                base.data.act[:] = sim["act"]
            base.data.time = sim["time"]
            mujoco.mj_forward(base.model, base.data)
            if "qacc_warmstart" in sim:
                base.data.qacc_warmstart[:] = sim["qacc_warmstart"]
        elif "classic" in state:
            classic = dict(state["classic"])
            base.state = np.array(classic.pop("state"), dtype=classic.pop("dtype"))
            for key, value in classic.items():
                setattr(base, key, value)
        else:
            base.set_sim_state(state["sim"])
        base.np_random.bit_generator.state = json.loads(state["np_random"])
        limit = _find(self.env, gym.wrappers.TimeLimit)
        if limit is not None:
            limit._elapsed_steps = state["elapsed"]
        stats = _find(self.env, EpisodeStats)
        if stats is not None:
            stats.episode_return, stats.episode_length = state["episode_return"], state["episode_length"]
