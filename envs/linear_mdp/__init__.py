"""d-rectangular linear MDPs for distributionally robust RL; importing registers their gymnasium ids."""
import gymnasium

from classic_rl import UserError
from envs.linear_mdp.american_put import american_put, optimal_stopping_value  # noqa: F401
from envs.linear_mdp.model import LinearMDP  # noqa: F401
from envs.linear_mdp.simulated import analytic_lines, simulated_linear_mdp  # noqa: F401

LINEAR_MDPS = {"LinearMDP": simulated_linear_mdp, "AmericanPut": american_put}


def make_linear_mdp(name: str, **kwargs) -> LinearMDP:
    base = name.split("-v")[0]
    if base not in LINEAR_MDPS:
        raise UserError(f"unknown linear MDP {name!r}; available: {', '.join(sorted(LINEAR_MDPS))}")
    return LINEAR_MDPS[base](**kwargs)


for _name in LINEAR_MDPS:
    if f"{_name}-v0" not in gymnasium.registry:
        gymnasium.register(id=f"{_name}-v0", entry_point="envs.linear_mdp.gym_adapter:LinearMDPEnv",
                           kwargs={"name": _name})
