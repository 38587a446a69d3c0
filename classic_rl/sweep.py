"""Sweeps: algorithms x environments x seeds (x overrides) as ordinary training processes, locally or on Ray.

    python -m classic_rl.sweep --algos bpo,ppo --envs Hopper,Walker2d,HalfCheetah --seeds 0-4 \\
        --total-steps 300000 --workers 2 --root runs/sweeps/mujoco
    python -m classic_rl.sweep --file sweep.toml            # the same in a TOML file (flags override it)
    python -m classic_rl.sweep ... --backend ray --address auto    # tasks on a running Ray cluster

Every run is a plain `python -m algos.<algo> --env E --seed S --total-steps N --run-dir SLOT [--key value]...`
process (printed as it starts, so any run can be repeated by hand). SLOT is a deterministic folder
`ROOT/<algo>/<env>/<overrides hash>/seed<S>`; the run session creates the run directory inside it. Running the
same sweep again (after an interruption, a crash or a failed run) looks into every slot first:

  * finished (summary.json status done, env_steps >= --total-steps, or stopped_early: a run that ended before
    its budget on purpose, e.g. algos.hdpo's --patience / --time-limit, and cannot be resumed): skipped;
  * diverged (status diverged): counted as finished, not re-run;
  * interrupted (checkpoints/latest.pt, or done at fewer steps): resumed with --resume RUN_DIR --total-steps N;
  * started but no checkpoint yet: moved aside to ROOT/_aside/ and started again;
  * empty: started.

A failed run (any exit status but 0 and 3) is reported with its command and the tail of its stderr and does
not stop the others; the sweep exits with status 1 if any run failed. One progress line per finished run,
and a final table: done / resumed / skipped / diverged / failed.

Ray backend: each run is one plain Ray task that executes the same launcher function (`launch`) on a worker
(num_cpus per run, num_gpus for GPU runs). A worker that dies mid-run is retried by Ray; the retry finds the
run's checkpoint and resumes it. This module only builds command lines: it imports nothing from envs/,
algos/ or analysis/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from classic_rl import UserError

ROOT = Path(__file__).resolve().parents[1]
EXIT_DIVERGED = 3
OUTCOMES = ("done", "resumed", "skipped", "diverged", "failed")
STDERR_TAIL_LINES = 20


# ---------------------------------------------------------------------------------------------- the runs
@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep. `overrides`: (flag name, value) pairs, sorted; `extra_args`: raw
    arguments passed as they are (both enter the hash of the slot path)."""

    algo: str
    env: str
    seed: int
    total_steps: int
    overrides: tuple[tuple[str, str], ...] = ()
    extra_args: tuple[str, ...] = ()
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @property
    def config_hash(self) -> str:
        """Short hash of the overrides (not of seed, env or steps): runs with the same settings share it."""
        blob = json.dumps({"set": [list(kv) for kv in self.overrides], "args": list(self.extra_args)},
                          sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:8]

    def slot(self, root: str | os.PathLike) -> Path:
        """The deterministic folder passed as --run-dir (the session creates the run directory inside)."""
        return Path(root) / _safe(self.algo) / _safe(self.env) / self.config_hash / f"seed{self.seed}"

    @property
    def label(self) -> str:
        sets = " ".join(f"{k}={v}" for k, v in self.overrides)
        return f"{self.algo} {self.env} seed={self.seed}" + (f" [{sets}]" if sets else "") + \
            (f" [{' '.join(self.extra_args)}]" if self.extra_args else "")

    def override_args(self) -> list[str]:
        out: list[str] = []
        for key, value in self.overrides:
            flag = "--" + key.replace("_", "-")
            low = str(value).lower()
            if low in ("true", "yes", "on"):
                out.append(flag)
            elif low in ("false", "no", "off"):
                out.append("--no-" + key.replace("_", "-"))
            else:
                out += [flag, *str(value).split()]  # "256 256" -> two values of a list flag
        return out

    def fresh_command(self, root: str | os.PathLike, python: str | None = None) -> list[str]:
        return [python or sys.executable, "-m", f"algos.{self.algo}", "--env", self.env, "--seed", str(self.seed),
                "--total-steps", str(self.total_steps), "--run-dir", str(self.slot(root)), "--no-progress",
                *self.override_args(), *self.extra_args]

    def resume_command(self, run_dir: Path, python: str | None = None) -> list[str]:
        return [python or sys.executable, "-m", f"algos.{self.algo}", "--resume", str(run_dir),
                "--total-steps", str(self.total_steps), "--no-progress"]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in str(name))


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """'0-4' -> [0..4]; '1,3,7' -> [1, 3, 7]; '0-2,9' -> [0, 1, 2, 9]."""
    if isinstance(text, int):
        return [text]
    if not isinstance(text, str):
        return [int(s) for s in text]
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"--seeds: cannot read {part!r}; use e.g. 0-4 or 1,3,7") from None
    if not seeds:
        raise UserError("--seeds: no seeds given")
    return list(dict.fromkeys(seeds))


def parse_overrides(items: Iterable[str] | dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """['lr=1e-4', 'n_envs=8'] (or a dict) -> sorted (name, value) pairs; names use underscores."""
    if not items:
        return ()
    pairs: dict[str, str] = {}
    if isinstance(items, dict):
        iterable = [(k, v) for k, v in items.items()]
    else:
        iterable = []
        for item in items:
            if "=" not in item:
                raise UserError(f"--set expects key=value, got {item!r}")
            k, v = item.split("=", 1)
            iterable.append((k, v))
    for key, value in iterable:
        key = key.strip().lstrip("-").replace("-", "_")
        if not key:
            raise UserError("--set: empty key")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        pairs[key] = str(value).strip()
    return tuple(sorted(pairs.items()))


def expand(algos: Sequence[str], envs: Sequence[str], seeds: Sequence[int], total_steps: int,
           overrides: tuple[tuple[str, str], ...] = (), extra_args: Sequence[str] = (), num_cpus: float = 1.0,
           num_gpus: float | None = None) -> list[RunSpec]:
    """The grid, in a fixed order (algo, env, seed). GPU runs (device=cuda) request one GPU unless told."""
    if total_steps <= 0:
        raise UserError(f"--total-steps must be positive, got {total_steps}")
    if not algos or not envs or not seeds:
        raise UserError("a sweep needs at least one algorithm, environment and seed")
    for algo in algos:
        if not algo.replace("_", "").isalnum():
            raise UserError(f"--algos: {algo!r} is not a module name under algos/")
    gpus = num_gpus if num_gpus is not None else (1.0 if dict(overrides).get("device") == "cuda" else 0.0)
    return [RunSpec(algo, env, int(seed), int(total_steps), tuple(overrides), tuple(extra_args), num_cpus, gpus)
            for algo in algos for env in envs for seed in seeds]


# ---------------------------------------------------------------------------------------------- a slot
def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def find_run_dirs(slot: Path) -> list[Path]:
    """Run directories (folders with config.json) inside a slot, oldest first."""
    if not slot.is_dir():
        return []
    return sorted((p.parent for p in slot.rglob("config.json")), key=lambda p: (p.stat().st_mtime, str(p)))


def plan(spec: RunSpec, root: str | os.PathLike) -> tuple[str, Path | None]:
    """What a slot needs: ('skip'|'diverged', run_dir), ('resume', run_dir), ('restart', run_dir) or
    ('start', None)."""
    dirs = find_run_dirs(spec.slot(root))
    best: tuple[str, Path | None] = ("start", None)
    rank = {"start": 0, "restart": 1, "resume": 2, "diverged": 3, "skip": 4}
    for d in dirs:
        summary = _read_summary(d)
        has_ckpt = (d / "checkpoints" / "latest.pt").is_file()
        if summary and summary.get("status") == "diverged":
            state = "diverged"
        elif summary and summary.get("status") == "done" and (
                summary.get("stopped_early") or int(summary.get("env_steps", 0)) >= spec.total_steps):
            state = "skip"
        elif has_ckpt:
            state = "resume"
        else:
            state = "restart"
        if rank[state] >= rank[best[0]]:
            best = (state, d)
    return best


def finished_summary(spec: RunSpec, root: str | os.PathLike) -> dict[str, Any] | None:
    """summary.json (plus run_dir) of the finished run in the spec's slot, the newest one; None where there is
    none (plan's 'skip'; diverged runs are not finished here)."""
    state, run_dir = plan(spec, root)
    summary = _read_summary(run_dir) if state == "skip" and run_dir is not None else None
    return None if summary is None else {**summary, "run_dir": str(run_dir)}


def move_aside(run_dir: Path, root: str | os.PathLike) -> Path:
    """Move an unusable run directory (started, no checkpoint) out of its slot, keeping it for inspection."""
    rel = run_dir.resolve().relative_to(Path(root).resolve())
    dest = Path(root) / "_aside" / f"{rel.as_posix().replace('/', '__')}-{time.strftime('%Y%m%d-%H%M%S')}"
    k = 0
    while dest.exists():
        k += 1
        dest = dest.with_name(dest.name.split("~")[0] + f"~{k}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(dest))
    return dest


def _parse_run_dir(stdout: str) -> Path | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("run directory: "):
            return Path(line.split(": ", 1)[1].strip())
    return None


def _tail(path: Path, n: int = STDERR_TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    # progress bars and warnings of the attempt before the last one are noise: keep the last attempt only
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("=== attempt"):
            lines = lines[i + 1:]
            break
    return "\n".join(lines[-n:])


def launch(spec: RunSpec, root: str, env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Bring one slot to its target: skip, resume, or (re)start the training process, and wait for it.

    Never raises for a failed run: returns a dict with outcome (done|resumed|skipped|diverged|failed),
    command, returncode, run_dir, stderr_tail, wall_s. Used as is by the local backend and as the body of
    the Ray task (so a retried Ray task re-plans the slot and resumes from the checkpoint)."""
    start = time.time()
    root_p = Path(root)
    slot = spec.slot(root_p)
    result: dict[str, Any] = {"spec": asdict(spec), "slot": str(slot), "outcome": "failed", "command": None,
                              "returncode": None, "run_dir": None, "stderr_tail": "", "wall_s": 0.0, "note": ""}
    try:
        state, run_dir = plan(spec, root_p)
        if state in ("skip", "diverged"):
            result.update(outcome="skipped" if state == "skip" else "diverged", run_dir=str(run_dir),
                          note="already finished" if state == "skip" else "diverged earlier")
            return result
        if state == "restart":
            aside = move_aside(run_dir, root_p)
            result["note"] = f"started before without a checkpoint; moved aside to {aside}"
            run_dir = None
        cmd = spec.resume_command(run_dir) if state == "resume" else spec.fresh_command(root_p)
        result["command"] = cmd
        slot.mkdir(parents=True, exist_ok=True)
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = str(ROOT) + (os.pathsep + child_env["PYTHONPATH"]
                                               if child_env.get("PYTHONPATH") else "")
        child_env.setdefault("MPLBACKEND", "Agg")
        err_path = slot / "stderr.log"
        header = f"=== attempt {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {' '.join(cmd)}\n"
        with open(slot / "stdout.log", "a") as out_fh, open(err_path, "a") as err_fh:
            out_fh.write(header)
            err_fh.write(header)
            out_fh.flush()
            err_fh.flush()
            # same process group as the launcher (no new session): a Ray worker that dies takes its child along
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_fh, cwd=cwd or str(ROOT),
                                    env=child_env, text=True)
            captured = []
            assert proc.stdout is not None
            for line in proc.stdout:
                captured.append(line)
                out_fh.write(line)
                out_fh.flush()
            rc = proc.wait()
        stdout = "".join(captured)
        found = _parse_run_dir(stdout)
        if found is None:
            dirs = find_run_dirs(slot)
            found = dirs[-1] if dirs else run_dir
        if found is not None and not found.is_absolute():
            found = Path(cwd or ROOT) / found
        result.update(returncode=rc, run_dir=str(found) if found else None)
        summary = _read_summary(found) if found else None
        if rc == 0 and summary and summary.get("status") == "done":
            result["outcome"] = "resumed" if state == "resume" else "done"
        elif rc == EXIT_DIVERGED or (summary and summary.get("status") == "diverged"):
            result["outcome"] = "diverged"
            result["note"] = str((summary or {}).get("diverged", "")) or result["note"]
        else:
            result["outcome"] = "failed"
            if rc == 0:
                result["note"] = "exit 0 but no finished summary.json in the run directory"
        if result["outcome"] != "done" and result["outcome"] != "resumed":
            result["stderr_tail"] = _tail(err_path)
    except Exception as err:  # noqa: BLE001 - a launcher problem is one failed run, never a stopped sweep
        result.update(outcome="failed", stderr_tail=f"launcher error: {type(err).__name__}: {err}")
    finally:
        result["wall_s"] = round(time.time() - start, 2)
    return result


# ---------------------------------------------------------------------------------------------- backends
def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _run_local(specs: Sequence[RunSpec], root: str, workers: int,
               on_result: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    env = child_environment()
    results: list[dict[str, Any] | None] = [None] * len(specs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(launch, spec, root, env): i for i, spec in enumerate(specs)}
        for fut in as_completed(futures):
            res = fut.result()
            results[futures[fut]] = res
            on_result(res)
    return [r for r in results if r is not None]


def ray_runtime_env() -> dict[str, Any]:
    """Environment of the Ray workers' launcher: the driver's variables are not forwarded to an existing
    cluster, so the toolkit's path and the Ray settings of this process are passed explicitly."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith(("RAY_ENABLE_WINDOWS", "RAY_USAGE_STATS", "MUJOCO_GL", "CLASSIC_RL_"))}
    keep["PYTHONPATH"] = str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    keep.setdefault("MPLBACKEND", "Agg")
    return {"env_vars": keep}


def _run_ray(specs: Sequence[RunSpec], root: str, workers: int, address: str | None,
             on_result: Callable[[dict[str, Any]], None], max_retries: int = 3) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError as err:
        raise UserError("--backend ray needs Ray: pip install -e '.[ray]' (or pip install ray)") from err
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, runtime_env=ray_runtime_env(), log_to_driver=False)
        else:  # a fresh single-machine cluster for this sweep (never silently attach to another one)
            ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False,
                     runtime_env=ray_runtime_env(), log_to_driver=False)
        started_here = True
    try:
        task = ray.remote(launch)
        refs = {}
        for i, spec in enumerate(specs):
            opts = {"num_cpus": spec.num_cpus, "max_retries": max_retries, "retry_exceptions": False}
            if spec.num_gpus:
                opts["num_gpus"] = spec.num_gpus
            refs[task.options(**opts).remote(spec, root, None)] = i
        results: list[dict[str, Any] | None] = [None] * len(specs)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                i = refs[ref]
                try:
                    res = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - e.g. retries exhausted: one failed run
                    res = {"spec": asdict(specs[i]), "slot": str(specs[i].slot(root)), "outcome": "failed",
                           "command": None, "returncode": None, "run_dir": None, "wall_s": 0.0, "note": "",
                           "stderr_tail": f"ray task failed: {type(err).__name__}: {str(err)[-1500:]}"}
                results[i] = res
                on_result(res)
        return [r for r in results if r is not None]
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------- the sweep
@dataclass
class SweepReport:
    results: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(r["outcome"] == outcome for r in self.results)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["outcome"] == "failed"]

    def run_dirs(self, include_diverged: bool = True) -> list[Path]:
        ok = {"done", "resumed", "skipped"} | ({"diverged"} if include_diverged else set())
        return [Path(r["run_dir"]) for r in self.results if r["outcome"] in ok and r.get("run_dir")]

    def table(self) -> str:
        counts = {o: self.count(o) for o in OUTCOMES}
        head = "| " + " | ".join(OUTCOMES) + " | total | wall time |"
        return "\n".join([head, "|" + "---|" * (len(OUTCOMES) + 2),
                          "| " + " | ".join(str(counts[o]) for o in OUTCOMES)
                          + f" | {len(self.results)} | {self.wall_s:.0f} s |"])


def _describe(res: dict[str, Any], k: int, n: int) -> str:
    s = res["spec"]
    label = RunSpec(**{**s, "overrides": tuple(tuple(kv) for kv in s["overrides"]),
                       "extra_args": tuple(s["extra_args"])}).label
    where = f" -> {res['run_dir']}" if res.get("run_dir") else ""
    extra = f" ({res['note']})" if res.get("note") and res["outcome"] != "failed" else ""
    return f"[{k}/{n}] {res['outcome']:<8} {label}  {res['wall_s']:.0f}s{where}{extra}"


def run_sweep(specs: Sequence[RunSpec], root: str | os.PathLike, workers: int = 1, backend: str = "local",
              address: str | None = None, verbose: bool = True, max_retries: int = 3) -> SweepReport:
    """Run (or skip/resume) every spec; returns the report. Failed runs are reported, never raised."""
    root_abs = str(Path(root).resolve())
    start = time.time()
    n = len(specs)
    lock = threading.Lock()
    counter = [0]

    def on_result(res: dict[str, Any]) -> None:
        with lock:
            counter[0] += 1
            if verbose:
                print(_describe(res, counter[0], n), flush=True)
                if res["outcome"] == "failed":
                    cmd = " ".join(res["command"]) if res.get("command") else "(not started)"
                    print(f"    failed: exit {res.get('returncode')}: {cmd}\n"
                          + "\n".join("    | " + line for line in res.get("stderr_tail", "").splitlines()),
                          file=sys.stderr, flush=True)

    if verbose:
        print(f"sweep: {n} runs under {root_abs} ({backend}, {workers} worker(s))", flush=True)
    if backend == "local":
        results = _run_local(specs, root_abs, workers, on_result)
    elif backend == "ray":
        results = _run_ray(specs, root_abs, workers, address, on_result, max_retries)
    else:
        raise UserError(f"unknown sweep backend {backend!r}: use local or ray")
    order = {json.dumps(asdict(s), sort_keys=True): i for i, s in enumerate(specs)}
    results.sort(key=lambda r: order.get(json.dumps(r["spec"], sort_keys=True), 0))
    report = SweepReport(results, time.time() - start)
    _write_manifest(root_abs, report)
    if verbose:
        print(report.table(), flush=True)
        for res in report.failed:
            cmd = " ".join(res["command"]) if res.get("command") else "(not started)"
            print(f"FAILED: {cmd}", file=sys.stderr)
    return report


def _write_manifest(root: str, report: SweepReport) -> None:
    """ROOT/sweep.json: the last invocation's outcome of every run (commands, run dirs, failures)."""
    path = Path(root) / "sweep.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"wall_s": round(report.wall_s, 1), "runs": report.results}, indent=1))
        os.replace(tmp, path)
    except OSError as err:
        print(f"warning: could not write {path}: {err}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- CLI
def _load_file(path: str) -> dict[str, Any]:
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as err:
            raise UserError("sweep files need Python 3.11+ (tomllib) or `pip install tomli`") from err
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as err:
        raise UserError(f"--file: cannot read {path}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"--file: {path} is not valid TOML: {err}") from err
    allowed = {"algos", "envs", "seeds", "total_steps", "set", "args", "workers", "backend", "address", "root",
               "cpus_per_run", "gpus_per_run"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UserError(f"--file: {path} has unknown keys {unknown}; allowed: {sorted(allowed)}")
    return data


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m classic_rl.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", default=None, help="TOML sweep file with the keys below (algos, envs, seeds, "
                   "total_steps, root, workers, backend, address, [set] table, args list); flags override it")
    p.add_argument("--algos", default=None, help="comma-separated modules under algos/: bpo,ppo")
    p.add_argument("--envs", default=None, help="comma-separated env names: Hopper,Walker2d,HalfCheetah")
    p.add_argument("--seeds", default=None, help="0-4, or 1,3,7 (default 0-4)")
    p.add_argument("--total-steps", type=int, default=None, help="env steps per run")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="a training flag for every run, repeatable: --set lr=1e-4 --set hidden_sizes='256 256' "
                        "--set normalize_obs=false (enters the slot hash)")
    p.add_argument("--workers", type=int, default=None, help="runs at a time (local); CPUs of a fresh local "
                   "Ray cluster (ray without --address) (default 1)")
    p.add_argument("--backend", choices=["local", "ray"], default=None, help="default local")
    p.add_argument("--address", default=None, help="Ray cluster to use (HOST:PORT or auto); without it the ray "
                   "backend starts a fresh local cluster")
    p.add_argument("--root", default=None, help="sweep folder (default runs/sweeps/<algos>_<envs>)")
    p.add_argument("--cpus-per-run", type=float, default=None, help="Ray num_cpus per run (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="Ray num_gpus per run (default 1 with --set device=cuda, else 0)")
    p.add_argument("--dry-run", action="store_true", help="print each run's plan and command; start nothing")
    p.add_argument("--quiet", action="store_true", help="only the final table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg: dict[str, Any] = _load_file(args.file) if args.file else {}
    algos = _as_list(args.algos if args.algos is not None else cfg.get("algos"))
    envs = _as_list(args.envs if args.envs is not None else cfg.get("envs"))
    seeds = parse_seeds(args.seeds if args.seeds is not None else cfg.get("seeds", "0-4"))
    total = args.total_steps if args.total_steps is not None else cfg.get("total_steps")
    if not algos or not envs or total is None:
        raise UserError("a sweep needs --algos, --envs and --total-steps (or a --file with them)")
    overrides = dict(parse_overrides(cfg.get("set")))
    overrides.update(dict(parse_overrides(args.set)))
    extra = [str(a) for a in cfg.get("args", [])]
    workers = args.workers if args.workers is not None else int(cfg.get("workers", 1))
    backend = args.backend or cfg.get("backend", "local")
    address = args.address or cfg.get("address")
    root = args.root or cfg.get("root") or f"runs/sweeps/{'-'.join(algos)}_{'-'.join(envs)}"
    cpus = args.cpus_per_run if args.cpus_per_run is not None else float(cfg.get("cpus_per_run", 1.0))
    gpus = args.gpus_per_run if args.gpus_per_run is not None else cfg.get("gpus_per_run")
    specs = expand(algos, envs, seeds, int(total), tuple(sorted(overrides.items())), extra, cpus,
                   None if gpus is None else float(gpus))
    if args.dry_run:
        for spec in specs:
            state, run_dir = plan(spec, root)
            cmd = spec.resume_command(run_dir) if state == "resume" else spec.fresh_command(Path(root).resolve())
            print(f"{state:<8} {spec.label}: {' '.join(cmd[1:]) if state not in ('skip', 'diverged') else run_dir}")
        return 0
    report = run_sweep(specs, root, workers=workers, backend=backend, address=address, verbose=not args.quiet)
    if args.quiet:
        print(report.table())
    return 1 if report.failed else 0


def cli(argv: Sequence[str] | None = None) -> int:
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # run through the importable module, so Ray pickles `launch` and RunSpec by reference, not from __main__
    from classic_rl import sweep as _sweep

    sys.exit(_sweep.cli())
