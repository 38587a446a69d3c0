"""Many lot-sizing plants stepped at once with torch, entirely on one device.

Same dynamics as `plant.LotSizingEnv` (tests/test_lotsizing.py checks them step by step on the same
states and demand paths). All plants share the instance and the horizon, so their episodes end together;
`step` then returns the final observation in `info["final_obs"]` and the first observation of fresh
episodes as `obs` (same-step autoreset). Random draws use one torch.Generator on the device, so the same
seed on the same device gives the same numbers (CPU and CUDA streams differ). `state_dict()` /
`load_state_dict()` capture the plants (stock, setups, demand paths, period) and that generator, so a
training run checkpointed mid-episode resumes exactly.
"""
from __future__ import annotations

import torch

from classic_rl import UserError
from envs.lotsizing.instances import Instance, load_instance
from envs.lotsizing.plant import effective_lost_sales


class BatchedLotSizing:
    def __init__(self, instance: str | Instance, n_plants: int, device: str | torch.device = "cpu",
                 seed: int = 0, observe_setups: bool = False, negative_production: bool = True,
                 stored_lost_sales: bool = True, random_start: bool = True):
        if n_plants <= 0:
            raise UserError(f"n_plants must be positive, got {n_plants}")
        self.inst = instance if isinstance(instance, Instance) else load_instance(instance)
        self.n_plants, self.device = n_plants, torch.device(device)
        self.observe_setups, self.negative_production = observe_setups, negative_production
        self.stored_lost_sales, self.random_start = stored_lost_sales, random_start
        inst, dev = self.inst, self.device
        self.n_items, self.n_machines, self.horizon = inst.n_items, inst.n_machines, inst.horizon
        self.obs_dim = self.n_items + (self.n_machines if observe_setups else 0)
        self.action_nvec = [self.n_items + 1] * self.n_machines
        # Column 0 of these padded [M, N+1] tables is the idle action, so gathers need no masking.
        pad = lambda x, dt: torch.cat([torch.zeros(x.shape[0], 1), torch.as_tensor(x, dtype=torch.float64)], 1
                                      ).to(dev, dt)
        self.production = pad(inst.production, torch.int64)
        self.setup_loss = pad(inst.setup_loss, torch.int64)
        self.setup_costs = pad(inst.setup_costs, torch.float32)
        self.holding = torch.as_tensor(inst.holding_costs, dtype=torch.float32, device=dev)
        self.lost_sales = torch.as_tensor(effective_lost_sales(inst, stored_lost_sales), dtype=torch.float32,
                                          device=dev)
        self.max_inventory = torch.as_tensor(inst.max_inventory, dtype=torch.int64, device=dev)
        self.feasible = torch.as_tensor(inst.production > 0, device=dev).float()  # [M, N]
        self.machine_index = torch.arange(self.n_machines, device=dev)
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(seed)
        self.inventory = torch.zeros(n_plants, self.n_items, dtype=torch.int64, device=dev)
        self.setups = torch.zeros(n_plants, self.n_machines, dtype=torch.int64, device=dev)
        self.demand = torch.zeros(n_plants, self.horizon + 1, self.n_items, dtype=torch.int64, device=dev)
        self.t = 0

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "inventory": self.inventory.clone(),
                "setups": self.setups.clone(), "demand": self.demand.clone(), "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.set_state(state["inventory"], state["setups"], state["demand"], int(state["t"]))

    def config(self) -> dict:
        return {"instance": self.inst.name, "observe_setups": self.observe_setups,
                "negative_production": self.negative_production, "stored_lost_sales": self.stored_lost_sales,
                "random_start": self.random_start}

    def observation(self, inventory: torch.Tensor, setups: torch.Tensor) -> torch.Tensor:
        parts = [inventory, setups] if self.observe_setups else [inventory]
        return torch.cat(parts, dim=1).float()

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        b, g, dev = self.n_plants, self.generator, self.device
        if self.random_start:
            u = torch.rand(b, self.n_items, generator=g, device=dev)
            self.inventory = (u * self.max_inventory).long()           # uniform on 0..I^max-1
            probs = self.feasible.expand(b, -1, -1).reshape(b * self.n_machines, self.n_items)
            self.setups = torch.multinomial(probs, 1, generator=g).view(b, self.n_machines) + 1
        else:
            self.inventory = torch.as_tensor(self.inst.initial_inventory, device=dev).expand(b, -1).clone()
            self.setups = torch.as_tensor(self.inst.initial_setup, device=dev).expand(b, -1).clone()
        count = torch.full((b, self.horizon + 1, self.n_items), float(self.inst.demand_n), device=dev)
        self.demand = torch.binomial(count, torch.full_like(count, self.inst.demand_p), generator=g).long()
        self.t = 0
        return self.observation(self.inventory, self.setups)

    def set_state(self, inventory, setups, demand, t: int = 0) -> torch.Tensor:
        """Load explicit states [B, N], setups [B, M] and demand paths [B, T+1, N]."""
        self.inventory = torch.as_tensor(inventory, dtype=torch.int64, device=self.device).clone()
        self.setups = torch.as_tensor(setups, dtype=torch.int64, device=self.device).clone()
        self.demand = torch.as_tensor(demand, dtype=torch.int64, device=self.device).clone()
        self.t = t
        return self.observation(self.inventory, self.setups)

    def post_decision(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The deterministic half for every plant: a [B, M] -> (I^x [B, N], sigma^x [B, M], C^x [B])."""
        m = self.machine_index
        rate = self.production[m, action]                       # [B, M]; column 0 (idle) is 0
        active = action > 0
        if not self.negative_production:
            active = active & (rate > 0)
        switched = active & (action != self.setups)
        quantity = torch.where(active, rate - self.setup_loss[m, action] * switched, 0)
        added = torch.zeros(self.n_plants, self.n_items + 1, dtype=torch.int64, device=self.device)
        added.scatter_add_(1, action, quantity)                  # several machines may make one item
        inventory_x = self.inventory + added[:, 1:]
        setups_x = torch.where(active, action, 0)
        setup_cost = (self.setup_costs[m, action] * switched).sum(1)
        return inventory_x, setups_x, setup_cost

    def post_decision_obs(self, action: torch.Tensor) -> torch.Tensor:
        inventory_x, setups_x, _ = self.post_decision(action)
        return self.observation(inventory_x, setups_x)

    def step(self, action: torch.Tensor):
        """a [B, M] long -> obs [B, D], reward [B], terminated [B], truncated [B], info (tensors)."""
        inventory_x, setups_x, setup_cost = self.post_decision(action)
        net = inventory_x - self.demand[:, self.t]
        lost_cost = (self.lost_sales * (-net).clamp(min=0)).sum(1)
        self.inventory = torch.minimum(net.clamp(min=0), self.max_inventory)
        holding_cost = (self.holding * self.inventory).sum(1)
        self.setups = setups_x
        self.t += 1
        reward = -(setup_cost + lost_cost + holding_cost)
        info = {"post_decision_obs": self.observation(inventory_x, setups_x), "setup_cost": setup_cost,
                "lost_sales_cost": lost_cost, "holding_cost": holding_cost,
                "reward_decision": -setup_cost, "reward_exogenous": -(lost_cost + holding_cost)}
        done = self.t >= self.horizon
        obs = self.observation(self.inventory, self.setups)
        if done:
            info["final_obs"] = obs
            obs = self.reset()
        flags = torch.full((self.n_plants,), done, device=self.device)
        return obs, reward, torch.zeros_like(flags), flags, info
