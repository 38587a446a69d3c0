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
