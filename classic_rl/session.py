"""The run session: the bookkeeping every training run needs, written once.

Each algorithm keeps its own loop, readable top to bottom; the session owns everything around it:

    run = RunSession(cfg, algo="hdpo", argv=argv)   # resolves --resume (stored config + allowed overrides),
    cfg, device = run.cfg, run.device               # seeds, threads and device; nothing is written yet
    ...build envs, networks, optimizers...          # a UserError here leaves no run directory behind
    with run:
        run.track(policy=policy, opt=opt, loop=loop, evaluate=evaluate)  # new run dir, or restore everything
        while run.step < cfg.total_steps:
            ...the algorithm's update...
            run.advance(n_new_env_steps, loss=loss)   # log, NaN/inf stop, eval and checkpoint when due
        run.finish(headline=("test_cost", cost), higher_is_better=False, gap_pct=gap)

What a checkpoint holds: every tracked object (anything with `state_dict()`/`load_state_dict()` -- models,
optimizers, normalizers, `LoopState` counters, env adapters -- and `torch.Generator`s), the global RNG
states, the step/iteration counters, the evaluation schedule and the wall time. Resuming restores all of
it and drops metric rows logged after the checkpoint (they are re-run), so a run killed at any moment and
resumed leaves no duplicated or missing rows, and, where every piece of state is tracked, ends with the same
numbers as an uninterrupted run.

Resume rules: a resumed run keeps its stored config; only the flags in `RESUME_OVERRIDES` may change (a
different `--env`/`--seed`/... is refused, not ignored); a finished run is never touched unless
`--total-steps` extends it; another algorithm's run directory is refused with the module to use.

Summary schema (`summary.json`, every algorithm): algo, env, seed, status ("done" | "diverged"),
env_steps, iterations, wall_time, fps, headline (name of the algorithm's headline metric),
headline_value, higher_is_better, final_eval_return, warnings, then the algorithm's own extras.
"""
from __future__ import annotations

import bisect
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from classic_rl import TrainingDiverged, UserError
from classic_rl.config import explicit_fields
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import (load_checkpoint, resolve_device, rng_state, save_checkpoint, seed_everything,
                              set_rng_state, set_torch_threads)

#: flags a resumed run may change; everything else is the stored run's.
RESUME_OVERRIDES = ("total_steps", "progress", "checkpoint_every", "eval_every", "device", "torch_threads",
                    "track")
CHECKPOINT_FORMAT = 2


@dataclasses.dataclass
class LoopState:
    """Base for an algorithm's loop variables (iterate, momentum, counters): subclass it as a dataclass,
    keep the variables on it, and track it, so checkpoints hold them. Tensors, numbers, lists and dicts of
    those are allowed (everything loads with weights_only=True)."""

    def state_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            if f.name not in state:
                raise KeyError(f"loop state has no field {f.name!r}")
            value = state[f.name]
            current = getattr(self, f.name)
            if isinstance(current, torch.Tensor) and isinstance(value, torch.Tensor):
                value = value.to(current.device)
            setattr(self, f.name, value)


class _GeneratorState:
    def __init__(self, gen: torch.Generator):
        self.gen = gen

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["state"])


def _as_stateful(name: str, obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return _GeneratorState(obj)
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        return obj
    raise TypeError(f"RunSession.track({name}=...): {type(obj).__name__} has no state_dict()/load_state_dict()")


class VecEnvState:
    """Checkpoint adapter for a vector env and the observation the loop acts on next (`obs`).

    Where every env can snapshot itself (`get_state`/`set_state`: MuJoCo and the project's simulators) the
    exact env states are saved and restored; otherwise (Atari, subprocess envs) the envs are reset with
    `reset_seeds()` on resume and the episodes in progress restart."""

    def __init__(self, envs: Any, reset_seeds: Callable[[], list[int]]):
        self.envs, self.reset_seeds = envs, reset_seeds
        self.obs: Any = None

    def state_dict(self) -> dict[str, Any]:
        states = list(self.envs.call("get_state")) if hasattr(self.envs, "envs") else [None]
        return {"obs": torch.as_tensor(np.asarray(self.obs)),
                "env_states": None if any(s is None for s in states) else states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["env_states"] is not None and hasattr(self.envs, "envs"):
            for env, env_state in zip(self.envs.envs, state["env_states"]):
                env.get_wrapper_attr("set_state")(env_state)
            self.obs = state["obs"].numpy()
        else:
            self.obs, _ = self.envs.reset(seed=self.reset_seeds())


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return value.item()
        except (ValueError, TypeError):
            return value
    return value


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UserError(f"--resume: {path.parent} has no {path.name}; it is not a classic-rl run directory") from err
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"--resume: {path} is unreadable ({err}); {what}") from err


class RunSession:
    """Seeding, device, run directory, logging, scheduling, checkpoints and summary for one training run."""

    def __init__(self, cfg: Any, algo: str | Callable[[Any], str], argv: Sequence[str] | None = None,
                 env_field: str = "env", log_interval: int = 1, steps_name: str = "env steps",
                 env_name: str | None = None, module: str | None = None):
        """`argv`: the command line the config came from (to tell which flags the user typed on --resume).
        `env_field`: the config field naming the run's env in its directory path and summary (offline
        algorithms use "dataset"); it is read from the resolved config, so it is right on --resume too.
        `env_name`: a fixed name instead (only for names that cannot change on resume). `log_interval`: write a
        metrics row every this many `advance` calls (and always at the last); a config field `log_every`, in
        steps (the unit of `step`), wins. `steps_name`: what `step`
        counts, for messages (env steps, gradient steps, iterations). `algo` may be a function of the resolved
        config where one entry point runs several named methods (algos.harpg: n_harpg or harpg); `module` is
        that entry point (default algos.<algo>), recorded in config.json so --resume of another module's run
        names the right one."""
        self.algo = algo if isinstance(algo, str) else ""
        self.module = module or f"algos.{algo}"
        self.log_interval = max(1, int(log_interval))
        self.steps_name = steps_name
        self._ckpt: dict[str, Any] | None = None
        if getattr(cfg, "resume", None):
            cfg = self._resumed_config(cfg, explicit_fields(type(cfg), list(argv or [])))
        self.cfg = cfg
        self.log_every = int(getattr(cfg, "log_every", 0) or 0)  # a config field, in steps, wins
        if callable(algo):
            self.algo = algo(cfg)
        self.env_name = env_name or str(getattr(cfg, env_field))
        set_torch_threads(getattr(cfg, "torch_threads", 0))
        seed_everything(cfg.seed)
        self.device = resolve_device(getattr(cfg, "device", "cpu"))
        self.step = 0
        self.iteration = 0
        self.logger: RunLogger | None = None
        self.progress: Progress | None = None
        self.last_eval: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self._objects: dict[str, Any] = {}
        self._evaluate: Callable[[], dict[str, Any]] | None = None
        self._eval_points: list[int] = []
        self._cleanups: list[Callable[[], None]] = []
        self._start_step = 0
        self._start_time = time.time()
        self._finished = False
        self._last_logged_iteration = -1

    # ------------------------------------------------------------------ resume
    def _resumed_config(self, cfg: Any, explicit: set[str]) -> Any:
        run_dir = Path(cfg.resume)
        if not run_dir.is_dir():
            raise UserError(f"--resume: run directory {run_dir} does not exist")
        stored_all = _read_json(run_dir / "config.json", "cannot resume")
        stored_algo = stored_all.get("algo")
        stored_module = stored_all.get("module") or f"algos.{stored_algo}"
        if stored_module != self.module:
            raise UserError(f"--resume: {run_dir} is a {stored_algo} run, not {self.module.rsplit('.', 1)[-1]}; "
                            f"resume it with python -m {stored_module} --resume {run_dir}")
        stored = stored_all.get("config", {})
        ckpt_path = run_dir / "checkpoints" / "latest.pt"
        if not ckpt_path.is_file():
            raise UserError(f"--resume: {run_dir} has no checkpoints/latest.pt to resume from")
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("algo") != stored_algo:
            raise UserError(f"--resume: {ckpt_path} is not a {stored_algo} checkpoint of this classic-rl version "
                            f"(algo {ckpt.get('algo')!r}, format {ckpt.get('format')!r})")
        names = {f.name for f in dataclasses.fields(cfg)}
        conflicts = []
        for key in sorted(explicit - set(RESUME_OVERRIDES) - {"resume", "run_dir"}):
            if key in stored and stored[key] != getattr(cfg, key):
                conflicts.append(f"--{key.replace('_', '-')} {getattr(cfg, key)!r} (the run has {stored[key]!r})")
        if conflicts:
            raise UserError("--resume keeps the run's config; these flags conflict with it: " + ", ".join(conflicts)
                            + ". Only " + ", ".join("--" + k.replace("_", "-") for k in RESUME_OVERRIDES)
                            + " may change on resume")
        merged = {k: v for k, v in stored.items() if k in names}
        for key in RESUME_OVERRIDES:
            if key in explicit and key in names:
                merged[key] = getattr(cfg, key)
        merged["resume"] = cfg.resume
        try:
            out = type(cfg)(**merged)
            if hasattr(out, "validate"):
                out.validate()
        except TypeError as err:
            raise UserError(f"--resume: the stored config of {run_dir} does not fit this version ({err})") from err
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            summary = _read_json(summary_path, "cannot resume")
            done = int(summary.get("env_steps", 0))
            if summary.get("status") == "diverged":
                raise UserError(f"--resume: {run_dir} diverged ({summary.get('diverged', '')}); it cannot continue")
            if summary.get("status") == "done" and out.total_steps <= done:
                raise UserError(f"--resume: {run_dir} already finished at {done} {self.steps_name}; pass "
                                f"--total-steps larger than {done} to extend it (the run is left untouched)")
        self._ckpt = ckpt
        return out

    # ------------------------------------------------------------------ start
    def __enter__(self) -> "RunSession":
        return self

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Call `fn` when the session closes (envs, evaluators, worker pools)."""
        self._cleanups.append(fn)

    def track(self, evaluate: Callable[[], dict[str, Any]] | None = None, eval_points: Sequence[int] = (),
              **objects: Any) -> None:
        """Register everything a checkpoint must hold, then create the run directory (new run) or restore
        every object from the checkpoint (resume). `evaluate()` returns a dict with `returns` (episode
        returns, or one number per evaluation for exact methods), optional `lengths`, and any extra columns
        for eval.csv; it runs at step 0, every `--eval-every` steps, at the first step reaching each of
        `eval_points` (extra step counts, e.g. log-spaced ones for rate fits) and at the end."""
        self._evaluate = evaluate
        self._eval_points = sorted(int(p) for p in eval_points)
        self._objects = {name: _as_stateful(name, obj) for name, obj in objects.items()}
        cfg = self.cfg
        tensorboard = getattr(cfg, "track", "csv") == "tensorboard"
        if self._ckpt is not None:
            ckpt = self._ckpt
            missing = sorted(set(self._objects) - set(ckpt["objects"]))
            if missing:
                raise UserError(f"--resume: the checkpoint of {cfg.resume} has no state for {missing}")
            try:
                for name, obj in self._objects.items():
                    obj.load_state_dict(ckpt["objects"][name])
            except (KeyError, RuntimeError, ValueError, TypeError) as err:
                raise UserError(f"--resume: the checkpoint of {cfg.resume} does not match this config "
                                f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
            set_rng_state(ckpt["rng"])
            self.step, self.iteration = int(ckpt["step"]), int(ckpt["iteration"])
            self.last_eval = ckpt.get("last_eval")
            self.warnings = list(ckpt.get("warnings", []))
            self._last_logged_iteration = self.iteration
            for stale in Path(cfg.resume).rglob(".*.tmp"):  # half-written files of a killed run
                stale.unlink(missing_ok=True)
            self.logger = RunLogger.reopen(cfg.resume, self.step, float(ckpt["wall_time"]), tensorboard)
            self._ckpt = None
        else:
            self.logger = RunLogger.create(cfg.run_dir, self.algo, self.env_name, cfg.seed,
                                           dataclasses.asdict(cfg), str(self.device), tensorboard,
                                           module=self.module)
        self._start_step, self._start_time = self.step, time.time()
        self.progress = Progress(cfg.total_steps, initial=self.step, enabled=getattr(cfg, "progress", False),
                                 desc=f"{self.algo} {self.env_name}")
        every = getattr(cfg, "eval_every", 0)
        if self.step == 0 and (every or self._eval_points) and self._evaluate is not None \
                and not self.logger.evals.rows:
            self.evaluate()  # the curve starts at the initial policy

    @property
    def path(self) -> Path:
        if self.logger is None:
            raise RuntimeError("the run directory exists only after track()")
        return self.logger.path

    def steps_per_update(self, per_update: int, what: str = "update") -> int:
        """Announce how --total-steps is rounded to whole updates; return the number of updates."""
        total = self.cfg.total_steps
        n = max(1, math.ceil(total / per_update))
        if total < per_update:
            print(f"note: --total-steps {total} is shorter than one {what} ({per_update} {self.steps_name}); "
                  f"the run does one {what}, {per_update} {self.steps_name}", file=sys.stderr)
        elif total % per_update:
            print(f"note: {self.algo} trains in {what}s of {per_update} {self.steps_name}; --total-steps {total} "
                  f"runs {n * per_update}", file=sys.stderr)
        return n

    # ------------------------------------------------------------------ the loop
    def check_finite(self, **values: Any) -> None:
        """Stop the run (TrainingDiverged) if any value -- a number or a tensor -- is NaN or inf."""
        bad = []
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    bad.append(name)
            elif isinstance(value, float) and not math.isfinite(value):
                bad.append(name)
        if bad:
            raise TrainingDiverged(f"{', '.join(bad)} became non-finite at {self.steps_name.rstrip('s')} "
                                   f"{self.step} (iteration {self.iteration}); lower the step size or check the "
                                   f"inputs", str(self.path) if self.logger else None)

    def advance(self, n_steps: int, **metrics: Any) -> None:
        """Count `n_steps` new steps and one iteration. Every `log_interval` iterations (and at the last) the
        metrics are checked for NaN/inf and written as a row; then evaluate and checkpoint when due. Metrics
        may be tensors: they are read back only on logging iterations (no per-step device sync)."""
        self.step += int(n_steps)
        self.iteration += 1
        last = self.step >= self.cfg.total_steps
        due = self._due(self.log_every, n_steps) if self.log_every else self.iteration % self.log_interval == 0
        if due or last:
            values = {k: _scalar(v) for k, v in metrics.items()}
            self.check_finite(**values)
            fps = (self.step - self._start_step) / max(time.time() - self._start_time, 1e-9)
            self.logger.log(self.step, iteration=self.iteration, fps=round(fps, 1), **values)
            self._last_logged_iteration = self.iteration
            self.progress.update(0, fps=int(fps))
        reached = bisect.bisect_right(self._eval_points, self.step) \
            - bisect.bisect_right(self._eval_points, self.step - int(n_steps))
        if (self._due(getattr(self.cfg, "eval_every", 0), n_steps) or reached) and self._evaluate is not None:
            self.evaluate()
        self.progress.update(int(n_steps))
        if self._due(getattr(self.cfg, "checkpoint_every", 0), n_steps) and not last:
            self.save()

    def _due(self, every: int, n_steps: int) -> bool:
        """True when the step counter crossed a multiple of `every` during the last advance."""
        return bool(every) and self.step // every > (self.step - int(n_steps)) // every

    def evaluate(self) -> dict[str, Any]:
        """Run the evaluation now and append it to eval.csv."""
        if self._evaluate is None:
            return {}
        result = dict(self._evaluate())
        returns = [float(r) for r in result.pop("returns", [])]
        lengths = result.pop("lengths", None)
        out = self.logger.log_eval(self.step, returns, lengths, iteration=self.iteration,
                                   **{k: _scalar(v) for k, v in result.items()})
        out.update({k: _scalar(v) for k, v in result.items()})
        if returns and not math.isfinite(out["return_mean"]):
            self.warn(f"evaluation return is non-finite at {self.steps_name.rstrip('s')} {self.step}")
        self.last_eval = {k: v for k, v in out.items() if isinstance(v, (int, float, str, type(None)))}
        if self.progress is not None and returns:
            self.progress.update(0, eval=out["return_mean"])
        return out

    def warn(self, message: str) -> None:
        """Print a warning and record it in summary.json (e.g. a diverging evaluation)."""
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"warning: {message}", file=sys.stderr)

    def save(self, tag: str = "latest") -> None:
        """Write a checkpoint of every tracked object (atomic: a kill never leaves a half-written file)."""
        save_checkpoint(self.path / "checkpoints" / f"{tag}.pt", {
            "format": CHECKPOINT_FORMAT, "algo": self.algo, "step": self.step, "iteration": self.iteration,
            "wall_time": self.logger.wall_time(), "rng": rng_state(), "last_eval": self.last_eval,
            "warnings": self.warnings,
            "objects": {name: obj.state_dict() for name, obj in self._objects.items()},
        })

    # ------------------------------------------------------------------ the end
    def finish(self, headline: tuple[str, Any] | None = None, higher_is_better: bool = True,
               final_eval: bool = True, **extra: Any) -> Path:
        """Final evaluation (unless one ran at this step), final checkpoint, summary.json, and the
        `run directory: <path>` line. `headline=(name, value)` names the algorithm's main result; the
        default is the final evaluation return."""
        if final_eval and self._evaluate is not None and (
                not self.logger.evals.rows or float(self.logger.evals.rows[-1]["env_steps"]) < self.step):
            self.evaluate()
        if self._last_logged_iteration < self.iteration and self.iteration > 0:
            self.logger.log(self.step, iteration=self.iteration)
        self.save()
        final_return = (self.last_eval or {}).get("return_mean")
        name, value = headline if headline is not None else ("final_eval_return", final_return)
        value = _scalar(value)
        elapsed = max(time.time() - self._start_time, 1e-9)
        summary = {"algo": self.algo, "env": self.env_name, "seed": self.cfg.seed, "status": "done",
                   "env_steps": self.step, "iterations": self.iteration, "wall_time": self.logger.wall_time(),
                   "fps": (self.step - self._start_step) / elapsed, "headline": name, "headline_value": value,
                   "higher_is_better": higher_is_better, "final_eval_return": final_return,
                   "warnings": self.warnings}
        summary.update({k: _scalar(v) for k, v in extra.items()})
        self.logger.write_summary(summary)
        self._finished = True
        self.progress.close()
        print(f"run directory: {self.path}")
        return self.path

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if isinstance(exc, TrainingDiverged) and self.logger is not None:
                exc.run_dir = str(self.path)
                self.logger.write_summary({
                    "algo": self.algo, "env": self.env_name, "seed": self.cfg.seed, "status": "diverged",
                    "diverged": str(exc), "env_steps": self.step, "iterations": self.iteration,
                    "wall_time": self.logger.wall_time(), "headline": None, "headline_value": None,
                    "final_eval_return": (self.last_eval or {}).get("return_mean"), "warnings": self.warnings})
                print(f"run directory: {self.path}")
        finally:
            if self.progress is not None:
                self.progress.close()
            for fn in self._cleanups:
                fn()
            if self.logger is not None:
                self.logger.close()
        return False
