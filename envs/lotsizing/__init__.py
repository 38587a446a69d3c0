"""Stochastic discrete lot-sizing (PDPPO paper) and slippery FrozenLake with post-decision states.

Importing this package registers the gymnasium ids:
* `LotSizing-15x5` (the authors' instance), `LotSizing-20x10`, `LotSizing-25x10`, `LotSizing-25x15`
  (regenerated with the authors' generator structure, seeded; see instances.py);
* `FrozenLakePD-8x8`: slippery FrozenLake 8x8 whose info carries the post-decision state (intended cell).
Keyword arguments of gymnasium.make go to the env (e.g. observe_setups=True, negative_production=False).
"""
import gymnasium as gym

from envs.lotsizing.instances import INSTANCES

for _name in INSTANCES:
    _id = f"LotSizing-{_name}"
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="envs.lotsizing.plant:LotSizingEnv", kwargs={"instance": _name})
if "FrozenLakePD-8x8" not in gym.registry:
    gym.register(id="FrozenLakePD-8x8", entry_point="envs.lotsizing.frozen_lake:FrozenLakePD",
                 max_episode_steps=200)
