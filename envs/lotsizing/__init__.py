"""Stochastic discrete lot-sizing (the PDPPO paper's "SimplePlant"): one gymnasium env, a batched torch version,
instances, a heuristic, and the env factories algos.pdppo trains on (`envs.lotsizing.post_decision`).

Importing this package registers the gymnasium ids `LotSizing-15x5` (the authors' instance), `LotSizing-20x10`,
`LotSizing-25x10`, `LotSizing-25x15` (regenerated with the authors' generator structure, seeded; see
instances.py). Keyword arguments of gymnasium.make go to the env (e.g. observe_setups=True,
negative_production=False).
"""
import gymnasium as gym

from envs.lotsizing.instances import INSTANCES

for _name in INSTANCES:
    _id = f"LotSizing-{_name}"
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="envs.lotsizing.plant:LotSizingEnv", kwargs={"instance": _name})
