"""Inventory networks: batched differentiable simulator (HDPO core), benchmark settings S1-S9, known
optima, and a single-scenario gymnasium wrapper registered below for model-free baselines (PPO)."""
import gymnasium as gym

# One id per single-location benchmark (S1 backlog, S2 lost sales; defaults L=4, p=9). Other instances:
# gymnasium.make("InventoryLostSales-v0", lead_time=2, underage_cost=19).
GYM_IDS = {"InventoryBacklog-v0": "backlog", "InventoryLostSales-v0": "lost_sales"}
for _id, _setting in GYM_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="envs.inventory.gym_env:InventoryEnv",
                     kwargs={"setting": _setting}, max_episode_steps=None)

# The S2 (lost sales) instances of the HDPO paper's grid under ids of their own, so that a separate training
# process (`python -m algos.ppo --env InventoryLostSales-L2-p19-v0`, e.g. launched by classic_rl.sweep) finds
# them: L = 1..8, p in 4, 9, 19, 39. (L=4, p=9 is also InventoryLostSales-v0.)
LOST_SALES_GRID = {"lead_time": tuple(range(1, 9)), "underage_cost": (4.0, 9.0, 19.0, 39.0)}


def lost_sales_id(lead_time: int, underage_cost: float) -> str:
    return f"InventoryLostSales-L{lead_time}-p{underage_cost:g}-v0"


for _lead in LOST_SALES_GRID["lead_time"]:
    for _p in LOST_SALES_GRID["underage_cost"]:
        if lost_sales_id(_lead, _p) not in gym.registry:
            gym.register(id=lost_sales_id(_lead, _p), entry_point="envs.inventory.gym_env:InventoryEnv",
                         kwargs={"setting": "lost_sales", "lead_time": _lead, "underage_cost": _p},
                         max_episode_steps=None)
