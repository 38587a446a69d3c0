"""Environment names -> vectorized gymnasium envs.

Short names are conveniences (Humanoid -> Humanoid-v5, Pong -> PongNoFrameskip-v4 with the standard
Atari preprocessing); any registered gymnasium id works too. Truncation is bootstrapped and termination is
not: the vector envs use gymnasium's same-step autoreset, so `info["final_obs"]` holds the true last
observation of an episode that just ended.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from classic_rl import UserError
from envs.vector import LeanSyncVectorEnv
from envs.wrappers import EpisodeStats, Snapshot

MUJOCO = ["Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "InvertedDoublePendulum",
          "InvertedPendulum", "Pusher", "Reacher", "Swimmer", "Walker2d"]
ATARI = ["Pong", "Breakout", "Asterix", "Boxing", "BeamRider", "Enduro", "MsPacman", "Qbert", "Seaquest",
         "SpaceInvaders"]
CLASSIC = {"CartPole": "CartPole-v1", "Acrobot": "Acrobot-v1", "MountainCar": "MountainCar-v0",
           "MountainCarContinuous": "MountainCarContinuous-v0", "Pendulum": "Pendulum-v1"}

# The project's own exact environments (registered by the packages in PROJECT_ENV_MODULES).
PROJECT = {"LQR": "LQR-v0", "CliffWalk": "CliffWalk-v0", "TwoStepCVaR": "TwoStepCVaR-v0", "LinearMDP": "LinearMDP-v0",
           "AmericanPut": "AmericanPut-v0"}

SHORT_NAMES: dict[str, str] = {**{n: f"{n}-v5" for n in MUJOCO}, **{n: f"{n}NoFrameskip-v4" for n in ATARI},
                               **CLASSIC, **PROJECT}

# Packages of this project that register their own gymnasium ids when imported.
PROJECT_ENV_MODULES = ["envs.lqr", "envs.inventory", "envs.lotsizing", "envs.frozen_lake", "envs.tabular", "envs.linear_mdp"]
_registered = False


def register_project_envs() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    import ale_py

    gym.register_envs(ale_py)
    for name in PROJECT_ENV_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # the package exists but something it imports is missing
                raise


def resolve_env_id(name: str) -> str:
    """Short name or gymnasium id -> registered gymnasium id; unknown names list the closest valid ones."""
    register_project_envs()
    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    if name in gym.registry:
        return name
    candidates = list(SHORT_NAMES) + [k for k in gym.registry if "/" not in k or k.startswith("ALE/")]
    close = difflib.get_close_matches(name, candidates, n=6, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}?" if close else f"short names: {', '.join(SHORT_NAMES)}"
    raise UserError(f"unknown environment {name!r}; {hint} (any registered gymnasium id also works)")


def env_family(env_id: str) -> str:
    """'atari', 'mujoco' or 'generic' (decides preprocessing and hyperparameter presets)."""
    spec = gym.spec(env_id)
    entry = str(spec.entry_point)
    if "ale_py" in entry or env_id.startswith("ALE/"):
        return "atari"
    if "mujoco" in entry:
        return "mujoco"
    return "generic"


def short_name(env_id: str) -> str:
    for short, full in SHORT_NAMES.items():
        if full == env_id:
            return short
    return env_id


def make_env_fn(env_id: str, training: bool = True, max_episode_steps: int | None = None) -> Callable[[], gym.Env]:
    family = env_family(env_id)
    kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}

    def thunk() -> gym.Env:
        if family == "atari":
            from envs.atari import make_atari

            env = make_atari(env_id, training=training, **kwargs)
        else:
            env = EpisodeStats(gym.make(env_id, **kwargs))
        return Snapshot(env)

    return thunk


def make_vec_env(env_id: str, n_envs: int, training: bool = True, async_envs: bool = False,
                 max_episode_steps: int | None = None):
    """n copies of the env with same-step autoreset: in this process (LeanSyncVectorEnv, the default) or in
    subprocesses (gymnasium's AsyncVectorEnv). `env_id` may be a short name."""
    env_id = resolve_env_id(env_id)
    fns = [make_env_fn(env_id, training, max_episode_steps) for _ in range(n_envs)]
    if async_envs:
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return LeanSyncVectorEnv(fns)
