"""One results table from many run directories (SQLite, Python's standard library: no extra dependency).

    python -m analysis.collect runs/sweeps/mujoco -o results.sqlite
    python -m analysis.collect runs/sweeps/mujoco runs/ppo/Hopper -o results.sqlite   # adds only new runs

Tables (query them with sqlite3, pandas.read_sql, polars or DuckDB's sqlite scanner):

  runs    one row per run: run_id, path, algo, env, seed, status, env_steps, iterations, wall_time, fps,
          headline, headline_value, higher_is_better, final_eval_return, final_train_return, n_warnings,
          config_hash (hash of the config without seed/run/resume bookkeeping: runs of one setting share it),
          summary_mtime, and one `cfg_<name>` column per config field (lists as JSON text)
  evals   the evaluation curves in long form: run_id, algo, env, seed, env_steps, metric, value
          (metric = every numeric column of eval.csv: return_mean, return_std, length_mean, suboptimality ...)
  train   the training curves in long form, same columns, from metrics.csv (train_return_mean, losses, fps ...)

Incremental: a run already in the table whose summary.json has not changed is left alone; a new run is
added; a run whose summary changed (resumed, extended) is replaced. Run directories without summary.json
(still running, or abandoned before their first checkpoint) are skipped and counted.

`load_results(path)` reads the table back as `analysis.runs.Run` objects (what analysis.sample_complexity
and analysis.compare take).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.runs import Run, find_run_dirs, load_run
from classic_rl import UserError
from classic_rl.config import run_cli

SUFFIXES = (".sqlite", ".sqlite3", ".db")
#: config fields that do not change what a run computes (left out of config_hash)
BOOKKEEPING = {"seed", "run_dir", "resume", "progress", "total_steps", "device", "torch_threads", "track",
               "checkpoint_every", "eval_every", "eval_episodes", "eval_envs"}
SUMMARY_COLUMNS = {"status": "TEXT", "env_steps": "INTEGER", "iterations": "INTEGER", "wall_time": "REAL",
                   "fps": "REAL", "headline": "TEXT", "headline_value": "REAL", "higher_is_better": "INTEGER",
                   "final_eval_return": "REAL"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, algo TEXT, env TEXT, seed INTEGER,
    status TEXT, env_steps INTEGER, iterations INTEGER, wall_time REAL, fps REAL, headline TEXT,
    headline_value REAL, higher_is_better INTEGER, final_eval_return REAL, final_train_return REAL,
    n_warnings INTEGER, config_hash TEXT, summary_mtime REAL, summary_json TEXT, config_json TEXT);
CREATE TABLE IF NOT EXISTS evals (run_id INTEGER, algo TEXT, env TEXT, seed INTEGER, env_steps REAL,
    metric TEXT, value REAL);
CREATE TABLE IF NOT EXISTS train (run_id INTEGER, algo TEXT, env TEXT, seed INTEGER, env_steps REAL,
    metric TEXT, value REAL);
CREATE INDEX IF NOT EXISTS evals_run ON evals(run_id, metric);
CREATE INDEX IF NOT EXISTS train_run ON train(run_id, metric);
"""


def _check_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix == ".parquet":
        raise UserError(f"{p}: this toolkit writes SQLite (standard library, no pyarrow); use -o results.sqlite "
                        "and read it with pandas.read_sql / polars / DuckDB (sqlite_scan)")
    if p.suffix not in SUFFIXES:
        raise UserError(f"{p}: the results table is SQLite; name it *.sqlite (or .db)")
    return p


def config_hash(config: dict[str, Any]) -> str:
    kept = {k: v for k, v in config.items() if k not in BOOKKEEPING}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _sql_value(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, str)) or v is None:
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else v
        return v
    return json.dumps(v, default=str)


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f"PRAGMA table_info({table})")}


def _long_rows(run_id: int, run: Run, cols: dict[str, np.ndarray]) -> list[tuple]:
    if "env_steps" not in cols:
        return []
    steps = np.asarray(cols["env_steps"], dtype=float)
    rows = []
    for name, values in cols.items():
        if name in ("env_steps", "returns", "lengths") or values.dtype == object:
            continue
        for s, v in zip(steps, values):
            if np.isfinite(s) and not np.isnan(v):
                rows.append((run_id, run.algo, run.env, run.seed, float(s), name, float(v)))
    return rows


def collect(patterns: Sequence[str], out: str | Path, verbose: bool = True) -> dict[str, int]:
    """Add the run directories named by `patterns` to the SQLite table `out`; returns the counts."""
    out = _check_path(out)
    dirs = find_run_dirs(patterns)
    out.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(out)
    counts = {"added": 0, "updated": 0, "unchanged": 0, "incomplete": 0}
    try:
        con.executescript(SCHEMA)
        known = {row[0]: (row[1], row[2]) for row in con.execute("SELECT path, run_id, summary_mtime FROM runs")}
        cfg_cols = _columns(con, "runs")
        for d in dirs:
            summary_path = d / "summary.json"
            if not summary_path.is_file() or "_aside" in d.parts:
                counts["incomplete"] += 1
                continue
            key = str(d.resolve())
            mtime = summary_path.stat().st_mtime
            if key in known and known[key][1] == mtime:
                counts["unchanged"] += 1
                continue
            run = load_run(d)
            if key in known:
                old = known[key][0]
                for table in ("evals", "train"):
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", (old,))
                con.execute("DELETE FROM runs WHERE run_id = ?", (old,))
                counts["updated"] += 1
            else:
                counts["added"] += 1
            s = run.summary
            train_col = run.metrics.get("train_return_mean")
            final_train = None
            if train_col is not None and train_col.dtype != object and np.isfinite(train_col).any():
                final_train = float(train_col[np.isfinite(train_col)][-1])
            row: dict[str, Any] = {"path": key, "algo": run.algo, "env": run.env, "seed": run.seed,
                                   "final_train_return": final_train, "n_warnings": len(s.get("warnings") or []),
                                   "config_hash": config_hash(run.config), "summary_mtime": mtime,
                                   "summary_json": json.dumps(s, default=str),
                                   "config_json": json.dumps(run.config, default=str)}
            row.update({k: _sql_value(s.get(k)) for k in SUMMARY_COLUMNS})
            for name, value in run.config.items():
                col = "cfg_" + "".join(c if c.isalnum() else "_" for c in name)
                if col not in cfg_cols:
                    con.execute(f'ALTER TABLE runs ADD COLUMN "{col}"')
                    cfg_cols.add(col)
                row[col] = _sql_value(value)
            names = list(row)
            cur = con.execute(f"INSERT INTO runs ({', '.join(chr(34) + n + chr(34) for n in names)}) "
                              f"VALUES ({', '.join('?' * len(names))})", [row[n] for n in names])
            run_id = int(cur.lastrowid)
            con.executemany("INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?, ?)", _long_rows(run_id, run, run.eval))
            con.executemany("INSERT INTO train VALUES (?, ?, ?, ?, ?, ?, ?)", _long_rows(run_id, run, run.metrics))
        con.commit()
        counts["total"] = int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        con.close()
    if verbose:
        print(f"{out}: added {counts['added']}, updated {counts['updated']}, unchanged {counts['unchanged']}, "
              f"skipped {counts['incomplete']} without summary.json; {counts['total']} runs in the table")
    return counts


def load_results(path: str | Path, where: str | None = None) -> list[Run]:
    """The table's runs as Run objects (eval/metrics columns rebuilt from the long tables)."""
    path = _check_path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist (build it with python -m analysis.collect RUNS -o {path})")
    con = sqlite3.connect(path)
    try:
        query = "SELECT run_id, path, algo, env, seed, summary_json, config_json FROM runs"
        rows = con.execute(query + (f" WHERE {where}" if where else "") + " ORDER BY algo, env, seed").fetchall()
        runs = []
        for run_id, p, algo, env, seed, summary, config in rows:
            curves = {}
            for table in ("evals", "train"):
                data: dict[str, dict[float, float]] = {}
                for step, metric, value in con.execute(
                        f"SELECT env_steps, metric, value FROM {table} WHERE run_id = ? ORDER BY rowid", (run_id,)):
                    data.setdefault(metric, {})[step] = value
                steps = sorted({s for m in data.values() for s in m})
                cols = {"env_steps": np.array(steps, float)} if steps else {}
                for metric, by_step in data.items():
                    cols[metric] = np.array([by_step.get(s, np.nan) for s in steps], float)
                curves[table] = cols
            runs.append(Run(path=Path(p), algo=algo, env=env, seed=int(seed), config=json.loads(config),
                            eval=curves["evals"], metrics=curves["train"], summary=json.loads(summary)))
    except sqlite3.DatabaseError as err:
        raise UserError(f"{path} is not a results table ({err})") from err
    finally:
        con.close()
    if not runs:
        raise UserError(f"{path} holds no runs" + (f" matching {where!r}" if where else ""))
    return runs


def is_results_table(arg: str) -> bool:
    return Path(arg).suffix in SUFFIXES and Path(arg).is_file()


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(prog="python -m analysis.collect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories, folders holding them (searched recursively), "
                                                "or globs")
    parser.add_argument("-o", "--out", required=True, help="results table, *.sqlite")
    args = parser.parse_args(argv)
    return collect(args.runs, args.out)


if __name__ == "__main__":
    sys.exit(run_cli(main))
