"""Single-scenario gymnasium wrapper of the inventory simulator, for model-free baselines (PPO, REINFORCE).

It steps the same `simulator.step` as HDPO with a batch of one path, draws demand online from the
setting's distribution (numpy Generator seeded by `reset(seed=...)`), and returns reward = -cost.
Supported settings: stores without upstream locations (backlog S1, lost_sales S2, n_stores_lost S9), where
any non-negative order vector is feasible. Actions are orders clipped to [0, max_order].
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from envs.inventory import settings as st
from envs.inventory.simulator import routing, step


class InventoryEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, setting: str = "lost_sales", lead_time: int = 4, underage_cost: float = 9.0,
                 stores: int = 1, periods: int = 100, max_order: float | None = None):
        if setting not in ("backlog", "lost_sales", "n_stores_lost"):
            raise ValueError(f"the gym wrapper supports backlog, lost_sales and n_stores_lost, not {setting!r}")
        self.net = st.make_network(setting, lead_time, underage_cost, stores)
        self.route = routing(self.net)
        self.periods = periods
        n_obs = self.net.n_locations * self.net.slots
        mean = self.net.demand_mean.numpy().astype(np.float64)
        self.max_order = float(max_order if max_order is not None else 4 * mean.max())
        # on-hand can go negative under backlog; a loose bound keeps the Box honest
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self.action_space = gym.spaces.Box(0.0, self.max_order, (self.net.n_edges,), np.float32)
        self._mean, self._std = mean, self.net.demand_std.numpy().astype(np.float64)
        self._x = None
        self._t = 0

    def _demand(self) -> np.ndarray:
        if self.net.demand["kind"] == "poisson":
            return self.np_random.poisson(self.net.demand["mean"], self.net.n_stores).astype(np.float64)
        d = self.np_random.normal(self._mean, self._std)
        return np.clip(d, 0, None) if self.net.demand.get("clip") else d

    # Exact resume (envs.wrappers.Snapshot): the simulator state besides np_random, as plain lists.
    def get_sim_state(self) -> dict:
        return {"x": self._x.tolist(), "t": self._t}

    def set_sim_state(self, state: dict) -> None:
        self._x = torch.tensor(state["x"], dtype=torch.float32)
        self._t = int(state["t"])

    def _obs(self) -> np.ndarray:
        return self._x.reshape(-1).numpy().astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        init = self.np_random.uniform(0, 1, (1, self.net.n_locations, self.net.slots)) * self._mean[None, :, None]
        self._x = torch.as_tensor(init, dtype=torch.float32)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        q = torch.as_tensor(np.clip(np.asarray(action, dtype=np.float64), 0, self.max_order),
                            dtype=torch.float32).reshape(1, -1)
        demand = torch.as_tensor(self._demand(), dtype=torch.float32).reshape(1, -1)
        with torch.no_grad():
            self._x, cost, _ = step(self.net, self.route, self._x, q, demand)
        self._t += 1
        per_store = float(cost.item()) / self.net.n_stores
        info = {"cost": per_store, "demand": demand[0].numpy().copy()}
        return self._obs(), -per_store, False, self._t >= self.periods, info
