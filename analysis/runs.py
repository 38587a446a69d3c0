"""Load run directories (config.json + eval.csv + metrics.csv) into numpy columns."""
from __future__ import annotations

import csv
import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from classic_rl import UserError


@dataclass
class Run:
    path: Path
    algo: str
    env: str
    seed: int
    config: dict
    eval: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """Numeric columns as float arrays (blank -> nan); non-numeric columns as object arrays."""
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    cols: dict[str, np.ndarray] = {}
    for key in rows[0].keys():
        raw = [r.get(key, "") for r in rows]
        try:
            cols[key] = np.array([float(v) if v not in ("", None) else np.nan for v in raw])
        except ValueError:
            cols[key] = np.array(raw, dtype=object)
    return cols


def find_run_dirs(patterns: Sequence[str]) -> list[Path]:
    """Run directories named by the patterns: each pattern is a dir or a glob; dirs are searched recursively."""
    found: list[Path] = []
    for pattern in patterns:
        matches = glob.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise UserError(f"no run directory matches {pattern!r}")
        for m in matches:
            p = Path(m)
            if not p.exists():
                raise UserError(f"{p} does not exist")
            if (p / "config.json").is_file():
                found.append(p)
            elif p.is_dir():
                found.extend(sorted(c.parent for c in p.rglob("config.json")))
    unique = sorted(set(found))
    if not unique:
        raise UserError(f"no run directories (folders with config.json) under {list(patterns)}")
    return unique


def load_run(path: Path) -> Run:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}/config.json is unreadable: {err}") from err
    summary = {}
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except json.JSONDecodeError:
            summary = {}
    return Run(path=path, algo=cfg.get("algo", path.parent.parent.name), env=cfg.get("env", path.parent.name),
               seed=int(cfg.get("seed", 0)), config=cfg.get("config", {}),
               eval=read_csv_columns(path / "eval.csv"), metrics=read_csv_columns(path / "metrics.csv"),
               summary=summary)


def load_runs(patterns: Sequence[str]) -> list[Run]:
    return [load_run(p) for p in find_run_dirs(patterns)]


def group_runs(runs: Sequence[Run], key: str = "algo") -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for r in runs:
        name = getattr(r, key) if key in ("algo", "env") else str(r.config.get(key))
        groups.setdefault(name, []).append(r)
    return groups
