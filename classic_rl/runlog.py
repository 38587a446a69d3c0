"""Run directories, CSV/TensorBoard logging and the progress bar.

Contract: runs/<algo>/<env>/<seed>-<timestamp>/ with config.json, metrics.csv, eval.csv,
summary.json and checkpoints/. Every file is written to a temporary name and renamed into place, so a
crash never leaves a half-written file, and an existing run directory is never overwritten.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

import classic_rl
from classic_rl import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def safe_name(text: str) -> str:
    """A file-system-safe version of an env or algorithm name ('ALE/Pong-v5' -> 'ALE-Pong-v5')."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def new_run_dir(root: str | os.PathLike, algo: str, env: str, seed: int) -> Path:
    """Create and return a fresh run directory; never reuses an existing one."""
    parent = Path(root) / safe_name(algo) / safe_name(env)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the run directory under {root}: {err.strerror or err}") from err
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = parent / (f"{seed}-{stamp}" + (f"-{k}" if k else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as err:
            raise UserError(f"cannot create the run directory {path}: {err.strerror or err}") from err
    raise UserError(f"could not create a fresh run directory under {parent}")


class CsvTable:
    """An in-memory table mirrored to a CSV file (columns may grow over time).

    A row with the known columns is appended with one write() of the whole line (a killed process leaves
    whole lines only); a row with a new column, or a truncation on resume, rewrites the file atomically.
    Appending keeps logging O(1) per row: a rewrite per row made long runs quadratic in their row count."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []

    def load(self) -> None:
        if self.path.exists():
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or [])
                self.rows = [dict(r) for r in reader]

    def append(self, row: dict[str, Any]) -> None:
        new = [key for key in row if key not in self.columns]
        self.rows.append(row)
        if new or not self.path.exists():
            self.columns += new
            self.flush()
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writerow({k: _fmt(row.get(k, "")) for k in self.columns})
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, buf.getvalue().encode())
        finally:
            os.close(fd)

    def truncate_after(self, env_steps: int) -> None:
        """Drop rows logged after `env_steps` (used on resume: those steps will be run again)."""
        self.rows = [r for r in self.rows if float(r.get("env_steps", 0) or 0) <= env_steps]
        self.flush()

    def flush(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(r.get(k, "")) for k in self.columns})
        atomic_write_text(self.path, buf.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    elif isinstance(value, np.generic):  # numpy 2 would write np.float64(1.5) via repr
        value = value.item()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


class RunLogger:
    """Writes one run directory. Create with `RunLogger.create(...)` or `RunLogger.reopen(path, step)`."""

    def __init__(self, path: Path, tensorboard: bool = False):
        self.path = Path(path)
        self.metrics = CsvTable(self.path / "metrics.csv")
        self.evals = CsvTable(self.path / "eval.csv")
        self.start_time = time.time()
        self.wall_offset = 0.0
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:  # pragma: no cover - depends on optional package
                raise UserError("--track tensorboard needs the tensorboard package: "
                                "pip install 'classic-rl[tb]'") from err
            self._tb = SummaryWriter(str(self.path / "tb"))

    @classmethod
    def create(cls, root: str, algo: str, env: str, seed: int, config: dict[str, Any],
               device: str, tensorboard: bool = False, module: str | None = None) -> "RunLogger":
        """`module`: the entry point that runs this algorithm (`python -m <module> --resume <dir>`)."""
        path = new_run_dir(root, algo, env, seed)
        logger = cls(path, tensorboard=tensorboard)
        atomic_write_json(path / "config.json", {
            "algo": algo, **({"module": module} if module else {}), "env": env, "seed": seed, "config": config,
            "version": classic_rl.__version__, "git_commit": git_commit(), "device": device,
            "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": sys.argv,
        })
        return logger

    @classmethod
    def reopen(cls, path: str | os.PathLike, env_steps: int, wall_time: float,
               tensorboard: bool = False) -> "RunLogger":
        """Reopen a run for resuming at `env_steps`; rows logged after it are dropped (they are re-run)."""
        logger = cls(Path(path), tensorboard=tensorboard)
        logger.metrics.load()
        logger.evals.load()
        logger.metrics.truncate_after(env_steps)
        logger.evals.truncate_after(env_steps)
        logger.wall_offset = wall_time
        return logger

    def wall_time(self) -> float:
        return self.wall_offset + time.time() - self.start_time

    def log(self, env_steps: int, **values: Any) -> None:
        row = {"env_steps": int(env_steps), "wall_time": round(self.wall_time(), 3)}
        row.update({k: _fmt(v) for k, v in values.items()})
        self.metrics.append(row)
        if self._tb is not None:
            for k, v in row.items():
                if k != "env_steps" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, env_steps)

    def log_eval(self, env_steps: int, returns: Iterable[float], lengths: Iterable[int] | None = None,
                 **extra: Any) -> dict[str, float]:
        returns = [float(r) for r in returns]
        lengths = [int(n) for n in lengths] if lengths is not None else []
        mean = sum(returns) / max(len(returns), 1)
        std = math.sqrt(sum((r - mean) ** 2 for r in returns) / max(len(returns), 1))
        row = {"env_steps": int(env_steps), "wall_time": round(self.wall_time(), 3),
               "return_mean": mean, "return_std": std, "episodes": len(returns),
               "length_mean": sum(lengths) / max(len(lengths), 1) if lengths else "",
               "returns": " ".join(f"{r:.6g}" for r in returns)}
        row.update({k: _fmt(v) for k, v in extra.items()})
        self.evals.append(row)
        if self._tb is not None:
            self._tb.add_scalar("eval/return_mean", mean, env_steps)
        return {"return_mean": mean, "return_std": std}

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class Progress:
    """A tqdm bar over env steps with fps and the latest evaluation return in its postfix."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = ""):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                            file=sys.stderr, smoothing=0.1)
        self.postfix: dict[str, str] = {}

    def update(self, n: int, **postfix: Any) -> None:
        if self.bar is None:
            return
        if postfix:
            for k, v in postfix.items():
                self.postfix[k] = f"{v:.4g}" if isinstance(v, float) else str(v)
            self.bar.set_postfix(self.postfix, refresh=False)
        if n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
