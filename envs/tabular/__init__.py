"""Tabular MDPs with exact solutions; importing this package registers their gymnasium ids."""
import gymnasium

from envs.tabular.finite_mdp import FiniteMDP, achievable_return_laws, brute_force_best  # noqa: F401
from envs.tabular.gridworlds import TABULAR_MDPS, cliff_walk, make_mdp, random_mdp, two_step_cvar  # noqa: F401

for _name in TABULAR_MDPS:
    if f"{_name}-v0" not in gymnasium.registry:
        gymnasium.register(id=f"{_name}-v0", entry_point="envs.tabular.gym_adapter:TabularEnv",
                           kwargs={"mdp": _name})
