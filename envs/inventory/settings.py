"""Inventory networks (topology + cost primitives) and their seeded demand scenarios.

A network is a list of locations ordered [echelons (upstream -> downstream), warehouses, stores] and a
list of directed order edges ordered [supplier edges, internal edges]. A supplier edge (src = -1) brings
stock from the unlimited outside supplier; an internal edge ships from one location to another. Every
edge has a lead time. The simulator only sees these tensors, so one code path serves all settings S1-S9.

Scenario generation follows the authors' numpy legacy-RNG recipe (spec 1(b).1): re-seed before every
primitive draw (means 33, coefficients of variation 92, lead times 41, holding 73, underage 28, demand
57 train/dev and 65 test, initial inventory 4839), so store primitives match the authors' instances.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from classic_rl import UserError

SETTINGS = ["backlog", "lost_sales", "serial", "one_warehouse", "transshipment", "many_warehouses",
            "n_stores_lost"]


@dataclass
class Network:
    """Static structure and costs of one inventory network (tensors live on `device`)."""

    name: str
    n_echelons: int
    n_warehouses: int
    n_stores: int
    slots: int
    """K: length of every location's inventory vector (on hand, then arrivals in 1..K-1 periods)"""
    edge_src: torch.Tensor
    """(n_edges,) source location of each order edge, -1 = outside supplier"""
    edge_dst: torch.Tensor
    """(n_edges,) receiving location"""
    edge_lead: torch.Tensor
    """(n_edges,) lead time in periods (0 = arrives before this period's demand)"""
    holding: torch.Tensor
    """(n_loc,) holding cost per unit of end-of-period on-hand stock"""
    underage: torch.Tensor
    """(n_stores,) shortage / lost-sale cost per unit (unit margin in profit settings)"""
    edge_cost: torch.Tensor
    """(n_edges,) cost per unit shipped on the edge (S6: warehouse -> store, Lee-fork semantics)"""
    demand_mean: torch.Tensor
    """(n_stores,) demand mean per store (policy feature and upper bounds)"""
    demand_std: torch.Tensor
    """(n_stores,) demand standard deviation per store"""
    lost_sales: bool
    profit: bool = False
    ship_all: bool = False
    """transshipment centre: the warehouse must ship all its on-hand stock every period"""
    demand: dict = field(default_factory=dict)
    """how to generate demand: kind (normal|poisson), clip, correlation, seed_shift"""

    @property
    def n_locations(self) -> int:
        return self.n_echelons + self.n_warehouses + self.n_stores

    @property
    def first_store(self) -> int:
        return self.n_echelons + self.n_warehouses

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.numel())

    @property
    def device(self) -> torch.device:
        return self.holding.device

    def to(self, device, dtype=None) -> "Network":
        moved = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() and dtype else None)
            moved[f.name] = value
        return Network(**moved)


@dataclass
class Scenarios:
    """A batch of sample paths: demands (N, S, T) and initial inventory vectors (N, n_loc, K)."""

    demand: torch.Tensor
    initial: torch.Tensor
    ignore_periods: int

    @property
    def n(self) -> int:
        return int(self.demand.shape[0])

    @property
    def periods(self) -> int:
        return int(self.demand.shape[2])

    def subset(self, index) -> "Scenarios":
        return Scenarios(self.demand[index], self.initial[index], self.ignore_periods)

    def to(self, device, dtype=None) -> "Scenarios":
        return Scenarios(self.demand.to(device=device, dtype=dtype), self.initial.to(device=device, dtype=dtype),
                         self.ignore_periods)


def _seeded(seed: int, draw):
    np.random.seed(seed)
    return draw()


def store_primitives(n_stores: int, lead_range=(2, 4), cv_range=(0.25, 0.5), holding_range=(0.7, 1.3),
                     underage_range=(6.3, 11.7)) -> dict[str, np.ndarray]:
    """Per-store parameters of the synthetic multi-store settings, drawn with the authors' seeds."""
    mean = _seeded(33, lambda: np.random.uniform(2.5, 7.5, n_stores).round(3))
    cv = _seeded(92, lambda: np.random.uniform(cv_range[0], cv_range[1], n_stores))
    return {
        "mean": mean, "std": (mean * cv).round(3),
        "lead": _seeded(41, lambda: np.random.randint(lead_range[0], lead_range[1], n_stores)),
        "holding": _seeded(73, lambda: np.random.uniform(holding_range[0], holding_range[1], n_stores)),
        "underage": _seeded(28, lambda: np.random.uniform(underage_range[0], underage_range[1], n_stores)),
    }


def build_network(name: str, n_echelons: int, n_warehouses: int, n_stores: int, slots: int,
                  edges: list[tuple[int, int, int]], holding, underage, mean, std, lost_sales: bool,
                  demand: dict, edge_cost=None, profit: bool = False, ship_all: bool = False) -> Network:
    """Assemble a Network from python lists; `edges` = [(src, dst, lead)], supplier edges must come first."""
    src = [e[0] for e in edges]
    if any(s >= 0 for s in src[:src.count(-1)]) or -1 in src[src.count(-1):]:
        raise ValueError("supplier edges (src=-1) must come before internal edges")
    max_lead = max(e[2] for e in edges)
    t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=torch.float32)  # noqa: E731
    return Network(
        name=name, n_echelons=n_echelons, n_warehouses=n_warehouses, n_stores=n_stores,
        slots=max(slots, max_lead, 1),
        edge_src=torch.tensor(src, dtype=torch.long), edge_dst=torch.tensor([e[1] for e in edges]),
        edge_lead=torch.tensor([e[2] for e in edges]), holding=t(holding), underage=t(underage),
        edge_cost=t(edge_cost if edge_cost is not None else np.zeros(len(edges))),
        demand_mean=t(mean), demand_std=t(std), lost_sales=lost_sales, profit=profit, ship_all=ship_all,
        demand=demand)


# ----------------------------------------------------------------------------------------------------
# The benchmark settings (spec 1(b).2). Each returns a Network; demand generation reads net.demand.
# ----------------------------------------------------------------------------------------------------

def one_store(lead_time: int = 4, underage_cost: float = 9.0, lost_sales: bool = False,
              holding_cost: float = 1.0) -> Network:
    """S1 (backlog, Normal(5, 1.6^2) clipped) or S2 (lost sales, Poisson(5)); K = max(4, L)."""
    if lost_sales:
        demand = {"kind": "poisson", "mean": 5.0, "seed_shift": lead_time + 10 * underage_cost}
        mean, std = 5.0, 5.0 ** 0.5
    else:
        demand = {"kind": "normal", "clip": True, "correlation": 0.0,
                  "seed_shift": lead_time + 10 * underage_cost}
        mean, std = 5.0, 1.6
    return build_network("lost_sales" if lost_sales else "backlog", 0, 0, 1, 4, [(-1, 0, lead_time)],
                         [holding_cost], [underage_cost], [mean], [std], lost_sales, demand)


def serial(n_locations: int = 4, lead_time: int = 4, underage_cost: float = 9.0) -> Network:
    """S3: supplier -> echelon 1..E -> warehouse -> store, backlog, Normal(5, 2^2) clipped."""
    n_echelons = n_locations - 2
    if not 0 <= n_echelons <= 5:
        raise UserError(f"serial system needs 2..7 locations, got {n_locations}")
    echelon_lead, echelon_h = [2, 4, 1, 3, 2][:n_echelons], [0.1, 0.2, 0.25, 0.3, 0.4][:n_echelons]
    leads = echelon_lead + [3, lead_time]  # into echelon 1.., into the warehouse, into the store
    edges = [(-1, 0, leads[0])] + [(k - 1, k, leads[k]) for k in range(1, n_locations)]
    demand = {"kind": "normal", "clip": True, "correlation": 0.0, "seed_shift": 0}
    return build_network("serial", n_echelons, 1, 1, 4, edges, echelon_h + [0.5, 1.0], [underage_cost],
                         [5.0], [2.0], False, demand)


def one_warehouse(n_stores: int = 5, lead_range=(2, 4), correlation: float = 0.5,
                  transshipment: bool = False, store_lead_time: int = 2, underage_cost: float = 9.0,
                  warehouse_lead_time: int = 3) -> Network:
    """S4 (lost sales, per-store h, p, L) or S5 (transshipment: backlog, common h=1, p, L_s, unclipped)."""
    prim = store_primitives(n_stores, lead_range=lead_range)
    if transshipment:
        lead = np.full(n_stores, store_lead_time)
        holding, underage, h_w = np.ones(n_stores), np.full(n_stores, underage_cost), 0.5
    else:
        lead, holding, underage, h_w = prim["lead"], prim["holding"], prim["underage"], 0.3
    edges = [(-1, 0, warehouse_lead_time)] + [(0, 1 + i, int(lead[i])) for i in range(n_stores)]
    demand = {"kind": "normal", "clip": not transshipment, "correlation": correlation, "seed_shift": 0}
    return build_network("transshipment" if transshipment else "one_warehouse", 0, 1, n_stores,
                         2 if transshipment else 3, edges, np.concatenate([[h_w], holding]), underage,
                         prim["mean"], prim["std"], lost_sales=not transshipment, demand=demand,
                         ship_all=transshipment)


# S6 default instance (W = 2, S = 10), spec 1(b).2: adjacency and edge lead times per warehouse row.
MANY_WAREHOUSE_LEADS = [[0, 0, 6, 6, 6, 0, 6, 5, 6, 0], [2, 1, 2, 2, 1, 2, 0, 2, 2, 2]]


def many_warehouses() -> Network:
    """S6 default (2 warehouses, 10 stores, lost sales); edge cost charged per unit shipped w -> store."""
    n_w, n_s = 2, 10
    prim = store_primitives(n_s)
    edges, edge_cost = [(-1, w, 3) for w in range(n_w)], [0.0] * n_w
    for w, row in enumerate(MANY_WAREHOUSE_LEADS):
        for i, lead in enumerate(row):
            if lead:
                edges.append((w, n_w + i, lead))
                edge_cost.append([0.5, 1.5][w])
    demand = {"kind": "normal", "clip": True, "correlation": 0.5, "seed_shift": 0}
    return build_network("many_warehouses", 0, n_w, n_s, 6, edges, np.concatenate([[0.3, 0.4], prim["holding"]]),
                         prim["underage"], prim["mean"], prim["std"], True, demand, edge_cost=edge_cost)


def n_stores_lost(n_stores: int = 3, lead_time: int = 3, underage_cost: float = 9.0) -> Network:
    """S9: independent Poisson(5) lost-sales stores, no warehouse (per-store optimum = S2 optimum)."""
    demand = {"kind": "poisson", "mean": 5.0, "seed_shift": 0}
    return build_network("n_stores_lost", 0, 0, n_stores, 4, [(-1, i, lead_time) for i in range(n_stores)],
                         np.ones(n_stores), np.full(n_stores, underage_cost), np.full(n_stores, 5.0),
                         np.full(n_stores, 5.0 ** 0.5), True, demand)


def make_network(setting: str, lead_time: int = 4, underage_cost: float = 9.0, stores: int = 5,
                 locations: int = 4, correlation: float = 0.5, store_lead_time: int = 2) -> Network:
    """Network for a setting name; irrelevant arguments are ignored (documented in the CLI help)."""
    if setting == "backlog":
        return one_store(lead_time, underage_cost, lost_sales=False)
    if setting == "lost_sales":
        return one_store(lead_time, underage_cost, lost_sales=True)
    if setting == "serial":
        return serial(locations, lead_time, underage_cost)
    if setting == "one_warehouse":
        return one_warehouse(stores, correlation=correlation)
    if setting == "transshipment":
        return one_warehouse(stores, correlation=correlation, transshipment=True,
                             store_lead_time=store_lead_time, underage_cost=underage_cost)
    if setting == "many_warehouses":
        return many_warehouses()
    if setting == "n_stores_lost":
        return n_stores_lost(stores, lead_time, underage_cost)
    raise UserError(f"unknown inventory setting {setting!r}; valid: {', '.join(SETTINGS)}")


# ----------------------------------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------------------------------

# scenarios per multivariate-normal call: the draw is made in chunks of paths written into one (n, S, T)
# array, so the generator's temporaries (standard normals, their product with the covariance root, the
# transposed and clipped copies) are a chunk's size, not the whole set's (S4: 16384 x 50 x 100 float64 is
# 655 MB per copy). The numbers are the one-call numbers bit for bit: the legacy RNG stream is sequential
# and each row of the product only depends on its own normals (tests/test_inventory_sim.py checks it).
DEMAND_CHUNK = 1024


def sample_demand(net: Network, n: int, periods: int, seed: int, chunk: int = DEMAND_CHUNK) -> np.ndarray:
    """Demand array (n, S, T) drawn with numpy's legacy global RNG seeded with `seed` (+ the setting's shift)."""
    spec = net.demand
    np.random.seed(int(seed + spec.get("seed_shift", 0)))
    n_stores = net.n_stores
    if spec["kind"] == "poisson":
        return np.random.poisson(spec["mean"], (n, n_stores, periods)).astype(np.float64)
    mean, std = net.demand_mean.cpu().double().numpy(), net.demand_std.cpu().double().numpy()
    if n_stores == 1:
        out = np.random.normal(mean[0], std[0], (n, 1, periods))
    else:
        rho = spec.get("correlation", 0.0)
        cov = rho * np.outer(std, std) + (1 - rho) * np.diag(std ** 2)
        out = np.empty((n, n_stores, periods))
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            out[start:stop] = np.random.multivariate_normal(mean, cov, size=(stop - start, periods)).transpose(0, 2, 1)
    return np.clip(out, 0, None, out=out) if spec.get("clip", False) else out


def sample_initial(net: Network, demand: np.ndarray, sample: bool = True) -> np.ndarray:
    """Initial inventory (n, n_loc, K): store slots U(0,1) x empirical mean demand (seed 4839), others 0."""
    n = demand.shape[0]
    init = np.zeros((n, net.n_locations, net.slots))
    if sample:
        store_mean = demand.mean(axis=(0, 2))
        np.random.seed(4839)
        init[:, net.first_store:, :] = np.random.uniform(0, 1, (n, net.n_stores, net.slots)) \
            * store_mean[None, :, None]
    return init


def _scenarios(net, demand, periods, ignore, device, dtype, sample_init):
    demand = demand[:, :, :periods]
    if not 0 <= ignore < periods:
        raise UserError(f"ignored warm-up periods ({ignore}) must be fewer than the periods ({periods})")
    init = sample_initial(net, demand, sample_init)
    return Scenarios(torch.as_tensor(demand, dtype=dtype, device=device),
                     torch.as_tensor(init, dtype=dtype, device=device), ignore)


def make_train_dev(net: Network, n_train: int, n_dev: int, train_periods: int, train_ignore: int,
                   dev_periods: int, dev_ignore: int, device="cpu", dtype=torch.float32,
                   sample_initial_inventory: bool = True) -> tuple[Scenarios, Scenarios]:
    """Train and dev come from one draw (seed 57) of n_dev + n_train paths, the first n_dev being dev
    (the authors' split); the draw is as long as the longer horizon and each split keeps its prefix."""
    if n_train <= 0 or n_dev <= 0:
        raise UserError(f"need positive numbers of train and dev scenarios, got {n_train} and {n_dev}")
    demand = sample_demand(net, n_dev + n_train, max(train_periods, dev_periods), seed=57)
    dev = _scenarios(net, demand[:n_dev], dev_periods, dev_ignore, device, dtype, sample_initial_inventory)
    train = _scenarios(net, demand[n_dev:], train_periods, train_ignore, device, dtype,
                       sample_initial_inventory)
    return train, dev


def make_test(net: Network, n: int, periods: int, ignore: int, device="cpu", dtype=torch.float32,
              sample_initial_inventory: bool = True) -> Scenarios:
    """Test scenarios: a separate draw with the test seed 65."""
    if n <= 0:
        raise UserError(f"need a positive number of test scenarios, got {n}")
    return _scenarios(net, sample_demand(net, n, periods, seed=65), periods, ignore, device, dtype,
                      sample_initial_inventory)
