"""The stochastic discrete lot-sizing plant (the authors' "SimplePlant") as one gymnasium env.

Each period splits into two halves, exposed separately so that post-decision methods can use them:
1. deterministic (`post_decision`): setups and production give the post-decision state (I^x, sigma^x) and
   the setup cost C^x;
2. random (`exogenous`): demand d ~ Binomial(n, p) per item; unmet demand is lost (cost b per unit),
   stock is capped at I^max (the excess vanishes at no cost), holding cost h per unit of what remains.
The reward is -(C^x + lost-sales cost + holding cost); `info` carries the post-decision observation and
both halves of the reward (`reward_decision = -C^x`, `reward_exogenous = reward - reward_decision`).

Quirks of the authors' env, kept by default so results compare with theirs:
* `negative_production=True`: a machine assigned an item it cannot make (P = 0) still switches its
  setup, pays K and loses l units, so that item's stock *decreases*. With False such an assignment
  idles the machine (no cost, no production, setup lost).
* `stored_lost_sales=True`: use the lost-sales costs as stored, b in {0.1, 1.1} (a generator bug: the
  authors meant 0.1..0.3). With False each stored b is mapped linearly 0.1 -> 0.1, 1.1 -> 0.3.
* The setups are part of the state but the latest authors' observation shows inventories only:
  `observe_setups=False` (their choice) or True (observation = inventories then setups).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from classic_rl import UserError
from envs.lotsizing.instances import Instance, load_instance


def effective_lost_sales(inst: Instance, stored_lost_sales: bool) -> np.ndarray:
    """The b actually used: as stored (quirk) or mapped to the intended 0.1..0.3 range."""
    if stored_lost_sales:
        return inst.lost_sales_costs
    return 0.1 + (inst.lost_sales_costs - 0.1) * 0.2


def post_decision(inst: Instance, inventory: np.ndarray, setups: np.ndarray, action: np.ndarray,
                  negative_production: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """The deterministic half: (I, sigma, a) -> (I^x, sigma^x, setup cost). Item ids are 1-based."""
    action = np.asarray(action, dtype=np.int64)
    machines = np.arange(inst.n_machines)
    column = np.maximum(action - 1, 0)                 # matrix column of the chosen item
    rate = inst.production[machines, column]
    active = action > 0
    if not negative_production:
        active &= rate > 0                             # an impossible assignment idles the machine
    switched = active & (action != setups)
    quantity = np.where(active, rate - inst.setup_loss[machines, column] * switched, 0)
    inventory_x = inventory.astype(np.int64).copy()
    np.add.at(inventory_x, column[active], quantity[active])  # several machines may make one item
    setups_x = np.where(active, action, 0)             # an idle machine loses its setup
    setup_cost = float((inst.setup_costs[machines, column] * switched).sum())
    return inventory_x, setups_x, setup_cost


def exogenous(inst: Instance, inventory_x: np.ndarray, demand: np.ndarray, lost_sales_costs: np.ndarray
              ) -> tuple[np.ndarray, float, float]:
    """The random half: (I^x, d) -> (I', lost-sales cost, holding cost)."""
    net = inventory_x - demand
    lost_cost = float((lost_sales_costs * np.maximum(-net, 0)).sum())
    inventory = np.minimum(np.maximum(net, 0), inst.max_inventory)
    holding_cost = float((inst.holding_costs * inventory).sum())
    return inventory, lost_cost, holding_cost


def observation(inventory: np.ndarray, setups: np.ndarray, observe_setups: bool) -> np.ndarray:
    parts = [inventory, setups] if observe_setups else [inventory]
    return np.concatenate(parts).astype(np.float32)


class LotSizingEnv(gym.Env):
    """One plant, T periods per episode (truncated at T), MultiDiscrete actions: one head per machine."""

    metadata = {"render_modes": []}

    def __init__(self, instance: str | Instance = "15x5", observe_setups: bool = False,
                 negative_production: bool = True, stored_lost_sales: bool = True,
                 random_start: bool = True):
        self.inst = instance if isinstance(instance, Instance) else load_instance(instance)
        self.observe_setups = observe_setups
        self.negative_production = negative_production
        self.stored_lost_sales = stored_lost_sales
        self.random_start = random_start
        self.lost_sales_costs = effective_lost_sales(self.inst, stored_lost_sales)
        n, m = self.inst.n_items, self.inst.n_machines
        high = float(max(self.inst.max_inventory.max(), n))
        self.observation_space = gym.spaces.Box(0.0, high, shape=(n + (m if observe_setups else 0),),
                                                dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(m, n + 1))
        self.inventory = np.zeros(n, dtype=np.int64)
        self.setups = np.zeros(m, dtype=np.int64)
        self.demand = np.zeros((self.inst.horizon + 1, n), dtype=np.int64)
        self.t = 0

    def config(self) -> dict[str, Any]:
        """The flags that change the dynamics, for config.json."""
        return {"instance": self.inst.name, "observe_setups": self.observe_setups,
                "negative_production": self.negative_production, "stored_lost_sales": self.stored_lost_sales,
                "random_start": self.random_start}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        inst, rng = self.inst, self.np_random
        if self.random_start:  # the authors' training reset: random stock, random feasible setups
            self.inventory = rng.integers(0, inst.max_inventory).astype(np.int64)
            self.setups = np.array([rng.choice(np.flatnonzero(row > 0)) + 1 for row in inst.production])
        else:
            self.inventory = inst.initial_inventory.copy()
            self.setups = inst.initial_setup.copy()
        self.demand = rng.binomial(inst.demand_n, inst.demand_p, size=(inst.horizon + 1, inst.n_items))
        self.t = 0
        return self._obs(), {"inventory": self.inventory.copy(), "setups": self.setups.copy()}

    # Exact resume (envs.wrappers.Snapshot): the plant's state besides np_random, as plain lists.
    def get_sim_state(self) -> dict:
        return {"inventory": self.inventory.tolist(), "setups": self.setups.tolist(),
                "demand": self.demand.tolist(), "t": self.t}

    def set_sim_state(self, state: dict) -> None:
        self.set_state(state["inventory"], state["setups"], state["demand"], state["t"])

    def set_state(self, inventory, setups, demand, t: int = 0) -> None:
        """Load an explicit state and demand path (tests and the batched-env cross-check)."""
        self.inventory = np.asarray(inventory, dtype=np.int64).copy()
        self.setups = np.asarray(setups, dtype=np.int64).copy()
        self.demand = np.asarray(demand, dtype=np.int64).copy()
        self.t = t

    def _obs(self) -> np.ndarray:
        return observation(self.inventory, self.setups, self.observe_setups)

    def post_decision_obs(self, action) -> np.ndarray:
        """s^x = f(s, a) from the live state, without stepping."""
        inv_x, set_x, _ = post_decision(self.inst, self.inventory, self.setups, self._check(action),
                                        self.negative_production)
        return observation(inv_x, set_x, self.observe_setups)

    def _check(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.int64).reshape(-1)
        if action.shape != (self.inst.n_machines,) or (action < 0).any() or (action > self.inst.n_items).any():
            raise UserError(f"lot-sizing action must be {self.inst.n_machines} ints in 0..{self.inst.n_items}, "
                            f"got {action.tolist()}")
        return action

    def step(self, action):
        action = self._check(action)
        if self.t >= self.inst.horizon:
            raise UserError("step() called after the episode ended; call reset()")
        inv_x, set_x, setup_cost = post_decision(self.inst, self.inventory, self.setups, action,
                                                 self.negative_production)
        demand = self.demand[self.t]
        inventory, lost_cost, holding_cost = exogenous(self.inst, inv_x, demand, self.lost_sales_costs)
        reward = -(setup_cost + lost_cost + holding_cost)
        info = {"post_decision_obs": observation(inv_x, set_x, self.observe_setups),
                "post_decision_inventory": inv_x, "post_decision_setups": set_x, "demand": demand.copy(),
                "setup_cost": setup_cost, "lost_sales_cost": lost_cost, "holding_cost": holding_cost,
                "reward_decision": -setup_cost, "reward_exogenous": reward + setup_cost}
        self.inventory, self.setups = inventory, set_x
        self.t += 1
        return self._obs(), reward, False, self.t >= self.inst.horizon, info
