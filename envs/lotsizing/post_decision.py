"""The envs with post-decision states that algos.pdppo trains on, behind one factory.

Training uses the batched torch versions (many plants or lakes stepped at once on the device, with
`post_decision_obs(action)`, `reward_decision`/`reward_exogenous` in info, and `state_dict()` for exact
resume); evaluation uses the registered single gymnasium envs in a same-step-autoreset vector env, as the
toolkit's evaluator does for every algorithm.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from envs.lotsizing.instances import INSTANCES

LOT_SIZING = [f"LotSizing-{name}" for name in INSTANCES]
FROZEN_LAKE = ["FrozenLakePD-8x8"]
POST_DECISION_ENVS = LOT_SIZING + FROZEN_LAKE


def env_kwargs(env: str, observe_setups: bool = False, negative_production: bool = True,
               stored_lost_sales: bool = True, map_seed: int = 0) -> dict[str, Any]:
    """The keyword arguments that matter for `env` (lot-sizing quirks, or the lake's map seed)."""
    if env in FROZEN_LAKE:
        return {"map_seed": map_seed}
    return {"observe_setups": observe_setups, "negative_production": negative_production,
            "stored_lost_sales": stored_lost_sales}


def make_batched_env(env: str, n: int, device: torch.device, seed: int, **kwargs: Any):
    """`n` plants (BatchedLotSizing) or lakes (BatchedFrozenLake) on `device`, seeded."""
    if env in FROZEN_LAKE:
        from envs.frozen_lake import BatchedFrozenLake
        return BatchedFrozenLake(n, device, seed=seed, **kwargs)
    from envs.lotsizing.batched import BatchedLotSizing
    return BatchedLotSizing(env.split("-", 1)[1], n, device, seed=seed, **kwargs)


def make_eval_envs(env: str, k: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """`k` registered single envs (numpy) in a same-step-autoreset vector env with episode statistics."""
    import envs.frozen_lake  # noqa: F401 - registers FrozenLakePD-8x8
    import envs.lotsizing  # noqa: F401 - registers LotSizing-*
    from envs.wrappers import EpisodeStats

    fns = [lambda: EpisodeStats(gym.make(env, **kwargs)) for _ in range(k)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
