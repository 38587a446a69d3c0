"""Run many training commands (algorithms x environments x seeds) as separate processes.

Local processes by default; `backend="ray"` sends the same commands to a Ray cluster (`ray.init()` reads
RAY_ADDRESS) for sweeps that outgrow one machine. Every job is a plain `python -m <module> <args>`, so a
sweep is reproducible by hand, and each writes its own run directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from classic_rl import UserError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    module: str
    args: list[str]

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]


@dataclass
class JobResult:
    job: Job
    returncode: int
    run_dir: Path | None
    output: str


def _parse_run_dir(stdout: str) -> Path | None:
    for line in stdout.splitlines():
        if line.startswith("run directory: "):
            return Path(line.split(": ", 1)[1].strip())
    return None


def _run_local(job: Job, env: dict[str, str]) -> JobResult:
    out = subprocess.run(job.command(), capture_output=True, text=True, cwd=ROOT, env=env)
    return JobResult(job, out.returncode, _parse_run_dir(out.stdout), out.stdout + out.stderr)


def run_sweep(jobs: Sequence[Job], workers: int = 1, backend: str = "local", verbose: bool = True) -> list[JobResult]:
    """Run the jobs, `workers` at a time; returns results in job order. Failed jobs are reported, not hidden."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if backend == "ray":
        try:
            import ray
        except ImportError as err:
            raise UserError("backend 'ray' needs Ray: pip install ray") from err
        ray.init(ignore_reinit_error=True)
        remote = ray.remote(_run_local)
        results = ray.get([remote.remote(job, env) for job in jobs])
    elif backend == "local":
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(_run_local, job, env) for job in jobs]
            results = []
            for i, fut in enumerate(futures):
                res = fut.result()
                results.append(res)
                if verbose:
                    status = "ok" if res.returncode == 0 else f"FAILED (exit {res.returncode})"
                    print(f"[{i + 1}/{len(jobs)}] {' '.join(res.job.args[:6])} ... {status}", flush=True)
    else:
        raise UserError(f"unknown sweep backend {backend!r}: use local or ray")
    for res in results:
        if res.returncode != 0:
            tail = "\n".join(res.output.strip().splitlines()[-5:])
            print(f"job failed: python -m {res.job.module} {' '.join(res.job.args)}\n{tail}", file=sys.stderr)
    return list(results)
