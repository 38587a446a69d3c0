"""Lot-sizing instances: the JSON format, a validating loader, and a seeded generator.

The JSON files in `data/` use the field names of the authors' `cfg_env/setting_*.json` files
(machine_production, setup_costs, setup_loss, holding_costs, lost_sales_costs, max_inventory_level,
initial_inventory, initial_setup, demand_distribution, time_horizon), so their files load unchanged.

`15x5.json` holds the authors' `15items_5machines_t100_i100` instance (leokan92/pdppo, cfg_env/).
The larger instances are NOT the authors' files: they are regenerated here by `generate_instance` with a
fixed seed, following the authors' generate_setting.py (same distributions, same b in {0.1, 1.1} quirk),
so they reproduce the structure (sizes, sparsity, cost ranges) but not the exact numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classic_rl import UserError

DATA_DIR = Path(__file__).resolve().parent / "data"
# name -> (n_items, n_machines, generator seed or None for the authors' data)
INSTANCES = {"15x5": (15, 5, None), "20x10": (20, 10, 2010), "25x10": (25, 10, 2510), "25x15": (25, 15, 2515)}


@dataclass(frozen=True)
class Instance:
    """One plant. Matrices are [machines, items]; item ids in actions/setups are 1-based (0 = idle)."""

    name: str
    horizon: int
    production: np.ndarray      # int [M, N]: units per period when machine m makes item i (0 = cannot)
    setup_costs: np.ndarray     # float [M, N]: paid when machine m switches to item i
    setup_loss: np.ndarray      # int [M, N]: units lost on that switch
    holding_costs: np.ndarray   # float [N]: per unit of end-of-period stock
    lost_sales_costs: np.ndarray  # float [N]: per unit of unmet demand
    max_inventory: np.ndarray   # int [N]: stock above this is discarded at no cost
    initial_inventory: np.ndarray  # int [N] (only for a fixed-start reset)
    initial_setup: np.ndarray   # int [M] (only for a fixed-start reset)
    demand_n: int               # demand of each item each period ~ Binomial(demand_n, demand_p)
    demand_p: float

    @property
    def n_items(self) -> int:
        return self.production.shape[1]

    @property
    def n_machines(self) -> int:
        return self.production.shape[0]


def instance_from_dict(name: str, raw: dict) -> Instance:
    """Build and validate an Instance from the authors' JSON layout; bad data -> UserError naming the field."""
    try:
        prod = np.asarray(raw["machine_production"], dtype=np.int64)
        m, n = prod.shape
        dist = raw["demand_distribution"]
        inst = Instance(
            name=name, horizon=int(raw["time_horizon"]), production=prod,
            setup_costs=np.asarray(raw["setup_costs"], dtype=np.float64),
            setup_loss=np.asarray(raw["setup_loss"], dtype=np.int64),
            holding_costs=np.asarray(raw["holding_costs"], dtype=np.float64),
            lost_sales_costs=np.asarray(raw["lost_sales_costs"], dtype=np.float64),
            max_inventory=np.asarray(raw["max_inventory_level"], dtype=np.int64),
            initial_inventory=np.asarray(raw["initial_inventory"], dtype=np.int64),
            initial_setup=np.asarray(raw["initial_setup"], dtype=np.int64),
            demand_n=int(dist["n"]), demand_p=float(dist["p"]))
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"lot-sizing instance {name!r} is malformed: {type(err).__name__}: {err}") from err
    if dist.get("name", "binomial") != "binomial":
        raise UserError(f"instance {name!r}: only binomial demand is supported, got {dist.get('name')!r}")
    shapes = {"setup_costs": (m, n), "setup_loss": (m, n), "holding_costs": (n,), "lost_sales_costs": (n,),
              "max_inventory_level": (n,), "initial_inventory": (n,), "initial_setup": (m,)}
    for field, shape in shapes.items():
        key = {"max_inventory_level": "max_inventory"}.get(field, field)
        got = getattr(inst, key).shape
        if got != shape:
            raise UserError(f"instance {name!r}: {field} has shape {got}, expected {shape} "
                            f"({m} machines x {n} items)")
    if (prod < 0).any() or (inst.setup_loss < 0).any() or (inst.max_inventory <= 0).any():
        raise UserError(f"instance {name!r}: production, setup_loss must be >= 0 and max inventory > 0")
    if not (prod > 0).any(axis=1).all():
        raise UserError(f"instance {name!r}: every machine must be able to make at least one item")
    if inst.horizon <= 0 or not 0 <= inst.demand_p <= 1 or inst.demand_n < 0:
        raise UserError(f"instance {name!r}: bad horizon or demand parameters")
    return inst


def load_instance(name_or_path: str) -> Instance:
    """A shipped instance name ('15x5', '25x15', ...) or a path to a JSON file in the authors' layout."""
    path = Path(name_or_path)
    if name_or_path in INSTANCES:
        path = DATA_DIR / f"{name_or_path}.json"
    elif not path.is_file():
        raise UserError(f"unknown lot-sizing instance {name_or_path!r}: use one of {', '.join(INSTANCES)} "
                        "or a path to a JSON file")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read lot-sizing instance {path}: {err}") from err
    return instance_from_dict(path.stem, raw)


def _min_biased(rng: np.random.Generator, low: int, high: int, p_min: float, size) -> np.ndarray:
    """`low` with probability p_min, otherwise uniform over low+1..high (the authors' generator)."""
    uniform = rng.integers(low + 1, high + 1, size=size)
    return np.where(rng.random(size) < p_min, low, uniform)


def generate_instance(n_items: int, n_machines: int, seed: int, horizon: int = 100) -> dict:
    """A random instance dict with the authors' generator structure (seeded, unlike the authors').

    P in 0..40 (p0 0.4), K in 15..30 (p0 0.2), loss in 1..3 (p0 0.7), initial inventory 0..50 (p0 0.05),
    initial setup 0..N (p0 0.4), I^max 100, h 0.01, and b in {0.1, 1.1} with probability 1/2 each: the
    authors ask for 0.1..0.3 but np.arange(0.1, 0.3 + 1) only yields those two values (kept on purpose).
    One deviation: a machine row with no producible item is redrawn, so every machine can be set up.
    """
    rng = np.random.default_rng(seed)
    prod = _min_biased(rng, 0, 40, 0.4, (n_machines, n_items))
    for m in range(n_machines):
        while not (prod[m] > 0).any():
            prod[m] = _min_biased(rng, 0, 40, 0.4, n_items)
    return {
        "time_horizon": horizon, "n_items": n_items, "n_machines": n_machines,
        "initial_setup": _min_biased(rng, 0, n_items, 0.4, n_machines).tolist(),
        "machine_production": prod.tolist(),
        "max_inventory_level": [100] * n_items,
        "initial_inventory": _min_biased(rng, 0, 50, 0.05, n_items).tolist(),
        "holding_costs": [0.01] * n_items,
        "lost_sales_costs": rng.choice([0.1, 1.1], size=n_items).tolist(),
        "demand_distribution": {"name": "binomial", "n": 20, "p": 0.4},
        "setup_costs": _min_biased(rng, 15, 30, 0.2, (n_machines, n_items)).tolist(),
        "setup_loss": _min_biased(rng, 1, 3, 0.7, (n_machines, n_items)).tolist(),
        "source": f"regenerated by envs/lotsizing/instances.py generate_instance(seed={seed}); "
                  "structure of the authors' generator, not their numbers",
    }


if __name__ == "__main__":  # regenerate the shipped synthetic instances
    for key, (n, m, s) in INSTANCES.items():
        if s is not None:
            (DATA_DIR / f"{key}.json").write_text(json.dumps(generate_instance(n, m, s), indent=1) + "\n")
