"""Config and run scaffold shared by vanilla PG, NSGDM, N-PG-IGT and (N)-HARPG (Fatkhullin et al., ICML 2023).

Each method's module (algos/vanilla_pg.py, algos/npg_igt.py, algos/harpg.py) spells out its own update rule
inside the run session's loop; this module holds what the four share, written once:

* `PGConfig`: the flags of the family (the shared run flags plus batch size, discount, step size, ...);
* `PGLoop`: the loop variables every method has (theta_t, theta_{t-1}, the direction d_t, the iteration t),
  a `LoopState`, so checkpoints hold them;
* `PGTrainer`: sampling with exact sample accounting (`SampleCounter`), the GPOMDP gradient with the
  linear-feature baseline, the evaluation schedule (every `--eval-every` env steps plus `--eval-log-points`
  log-spaced points), and the hand-over to the run session (track / advance / finish).

The env side is passed in: `make_testbed(cfg, device)` (envs/pg_testbeds.py builds the exact LQR testbed and
gymnasium envs) returns an object with
    policy: FlatPolicy           theta0: initial parameters          name: env name for the run directory
    sample(theta, min_steps, counter) -> TrajBatch                   (every training step counted)
    steps_per_batch(min_steps) -> the env steps such a batch takes, or None where it varies
    evaluate(theta) -> {"returns": [...], "lengths": [...], extra eval.csv columns}
    headline(theta) -> (name, value, higher_is_better, extras) or None (None: the final evaluation return)
    state: an object with state_dict()/load_state_dict() (env RNGs and snapshots) or None
    close()
so this package imports nothing from envs/.

What a step is: one environment step used for learning. Every batch a method draws counts (IGT's batch at
the extrapolated point, HARPG's gradient batch AND its HVP batch); evaluation episodes do not. An iteration
is one update of theta; it draws whole episodes, so training stops at the first iteration whose count
reaches `--total-steps` (the run may overshoot it by less than one iteration's batches).

Resume: theta_t, theta_{t-1}, d_t, t (and IGT's eta_{t-1}), the sample counter, the baseline's fitted
weights, every env's RNG and state, and the global RNGs are checkpointed; the evaluation schedule is a pure
function of the step counter. A resumed run therefore continues exactly as the uninterrupted one (tested on
LQR and CartPole).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import typing
from typing import Any, Callable, Sequence

import numpy as np
import torch

from classic_rl.config import RunConfig, require
from classic_rl.pg.estimators import (LinearFeatureBaseline, SampleCounter, TrajBatch, discounted_reward_to_go,
                                      gpomdp_gradient, gpomdp_weights)
from classic_rl.session import LoopState, RunSession


@dataclasses.dataclass
class PGConfig(RunConfig):
    """Stochastic policy gradient on a gymnasium env or the exact LQR testbed (--env LQR)."""

    env: str = "CartPole"
    """environment: LQR (batched exact testbed), a short name (CartPole, Acrobot, Hopper, ...) or a gymnasium id"""
    total_steps: int = 500_000
    """sample budget in env steps, counting every batch the method draws (IGT's extrapolated-point batch and
    HARPG's HVP batch included); training stops at the first iteration that reaches it"""
    n_envs: int = 8
    """gymnasium env copies stepped in lockstep (one batched policy forward per step); LQR simulates a batch's
    trajectories as one tensor and needs 1"""
    eval_every: int = 10_000
    """deterministic evaluation every this many counted env steps (plus at the start and the end; 0 = only at
    the end, or at the log-spaced points)"""
    eval_log_points: int = 0
    """also evaluate at this many log-spaced env-step counts up to --total-steps (dense early points for
    log-log rate fits; a resumed run that extends --total-steps lays them out over the new budget)"""
    eval_episodes: int = 20
    """episodes per deterministic evaluation (the authors' code uses 20); on LQR the exact cost is logged too"""
    step_size: float = 0.1
    """initial step size of the method's decaying schedule: the paper's gamma_0 (gamma_t = gamma_0 * ...)"""
    eta0: float = 1.0
    """initial momentum weight, the paper's eta_0: d_t = (1 - eta_t) d_{t-1} + eta_t g_t with eta_t decaying
    from eta_0 (eta_0 = 1 makes d_0 the first gradient); unused by vanilla PG's sgd variant"""
    batch_size: int = 5000
    """env steps per gradient batch, collected as whole episodes until at least this many (LQR: rounded up to
    whole fixed-length trajectories, so --batch-size 80 = one trajectory)"""
    gamma: float = 0.99
    """discount of the objective; GPOMDP weights step h by gamma^h (the paper's convention)"""
    max_episode_steps: typing.Optional[int] = None
    """episode time limit (None = the env's own); the authors cap CartPole at 200"""
    hidden_sizes: list[int] = dataclasses.field(default_factory=lambda: [32, 32])
    """hidden layer widths of the tanh MLP policy (authors: [32, 32] discrete, [64, 64] MuJoCo; unused on LQR)"""
    init_std: float = 1.0
    """initial std of the Gaussian MLP policy (continuous actions)"""
    min_std: float = 1e-6
    """floor on the learned std: a collapsing std blows up the score norms and breaks the Fisher
    non-degeneracy the analysis assumes (garage's default floor)"""
    baseline: bool = True
    """subtract a linear-feature baseline fitted on the previous batch (keeps the estimator unbiased)"""
    lqr_sigma: float = 0.5
    """LQR: fixed exploration std of the linear Gaussian policy u = -Kx + sigma*eps"""
    lqr_horizon: int = 80
    """LQR: simulator episode length H (truncation bias is O(gamma^H))"""

    def validate(self) -> None:
        super().validate()
        require(self.step_size > 0, f"--step-size must be positive, got {self.step_size}")
        require(0 < self.eta0 <= 1, f"--eta0 must be in (0, 1], got {self.eta0}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(0 < self.gamma <= 1, f"--gamma must be in (0, 1], got {self.gamma}")
        require(self.max_episode_steps is None or self.max_episode_steps > 0,
                f"--max-episode-steps must be positive (or None for the env's own), got {self.max_episode_steps}")
        require(len(self.hidden_sizes) > 0 and all(h > 0 for h in self.hidden_sizes),
                f"--hidden-sizes must be positive widths, got {self.hidden_sizes}")
        require(self.min_std > 0 and self.init_std > 0, "--init-std and --min-std must be positive")
        require(self.lqr_sigma > 0, f"--lqr-sigma must be positive, got {self.lqr_sigma}")
        require(self.lqr_horizon > 0, f"--lqr-horizon must be positive, got {self.lqr_horizon}")
        require(self.eval_log_points >= 0, f"--eval-log-points must be >= 0, got {self.eval_log_points}")


@dataclasses.dataclass
class PGLoop(LoopState):
    """theta_t, theta_{t-1}, the direction d_t and the iteration t (subclass to add a method's own)."""

    theta: torch.Tensor
    theta_prev: torch.Tensor
    d: torch.Tensor
    t: int = 0

    @classmethod
    def start(cls, theta0: torch.Tensor, **extra: Any) -> "PGLoop":
        """theta_{-1} = theta_0, d_{-1} = 0."""
        return cls(theta=theta0.clone(), theta_prev=theta0.clone(), d=torch.zeros_like(theta0), **extra)


def peek_flag(argv: Sequence[str], flag: str, default: str) -> str:
    """The value of `flag` in argv ('--flag v' or '--flag=v') before full parsing (presets depend on it)."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def log_points(total_steps: int, n: int) -> list[int]:
    """n log-spaced env-step counts in [1, total_steps] (duplicates merged)."""
    return sorted({int(x) for x in np.geomspace(1, total_steps, n)}) if n > 0 else []


class PGTrainer:
    """Testbed, sampler, counter, baseline and evaluation of one PG run, wired to its `RunSession`."""

    def __init__(self, run: RunSession, make_testbed: Callable[[PGConfig, torch.device], Any],
                 hvp_batch_size: int | None = None):
        """`hvp_batch_size`: env steps of the second batch a method draws from its second iteration on
        (HARPG), for the announcement of how --total-steps is rounded."""
        self.run, self.cfg = run, run.cfg
        self.testbed = make_testbed(run.cfg, run.device)  # UserErrors here leave no run directory
        run.add_cleanup(self.testbed.close)
        self.policy = self.testbed.policy
        self.theta0 = self.testbed.theta0
        self.counter = SampleCounter()
        self.baseline = LinearFeatureBaseline() if self.cfg.baseline else None
        self.loop: PGLoop | None = None
        self._announce_budget(hvp_batch_size)

    def track(self, loop: PGLoop) -> None:
        """Register the checkpointed state with the session (inside `with run:`), restoring it on --resume."""
        self.loop = loop
        objects: dict[str, Any] = {"loop": loop, "counter": self.counter}
        if self.baseline is not None:
            objects["baseline"] = self.baseline
        if self.testbed.state is not None:
            objects["envs"] = self.testbed.state
        self.run.track(evaluate=self.evaluate, eval_points=log_points(self.cfg.total_steps, self.cfg.eval_log_points),
                       **objects)

    def _announce_budget(self, hvp_batch_size: int | None) -> None:
        """Say how --total-steps is rounded to whole iterations (exact on LQR, whose batches have a fixed
        length; on gymnasium envs only when --total-steps is shorter than one batch)."""
        total, batch = self.cfg.total_steps, self.cfg.batch_size
        first = self.testbed.steps_per_batch(batch)
        if first is None:
            if total < batch:
                self.run.steps_per_update(batch, "gradient batch")
            return
        later = first + (self.testbed.steps_per_batch(hvp_batch_size) if hvp_batch_size else 0)
        if first == later or total <= first:
            self.run.steps_per_update(first, "iteration")
            return
        runs = first + math.ceil((total - first) / later) * later
        if runs != total:
            print(f"note: {self.run.algo} trains in iterations of {first} env steps, then {later}; --total-steps "
                  f"{total} runs {runs}", file=sys.stderr)

    # ------------------------------------------------------------------ sampling and estimation
    def sample(self, theta: torch.Tensor, min_steps: int | None = None) -> TrajBatch:
        """A training batch at theta (every step counted); min_steps defaults to --batch-size."""
        return self.testbed.sample(theta, self.cfg.batch_size if min_steps is None else min_steps, self.counter)

    def weights(self, batch: TrajBatch) -> torch.Tensor:
        b = self.baseline.predict(batch) if self.baseline is not None else None
        return gpomdp_weights(batch, self.cfg.gamma, b)

    def gradient(self, theta: torch.Tensor, batch: TrajBatch) -> torch.Tensor:
        return gpomdp_gradient(self.policy, theta, batch, self.weights(batch))

    def refit_baseline(self, batch: TrajBatch) -> None:
        """Called after the update (garage's order), so the next batch's baseline does not see its own actions."""
        if self.baseline is not None:
            self.baseline.fit(batch, discounted_reward_to_go(batch.rew, batch.mask, self.cfg.gamma))

    # ------------------------------------------------------------------ the session
    def advance(self, **stats: Any) -> None:
        """End an iteration: stop on non-finite parameters, then count its samples and log `stats`."""
        self.run.check_finite(parameters=self.loop.theta)
        self.run.advance(self.counter.env_steps - self.run.step, trajectories=self.counter.trajectories, **stats)

    def evaluate(self) -> dict[str, Any]:
        """Deterministic evaluation of theta_t (not IGT's extrapolated point), with the trajectory count."""
        return {**self.testbed.evaluate(self.loop.theta), "trajectories": self.counter.trajectories}

    def finish(self) -> dict[str, Any]:
        """Final evaluation, checkpoint and summary.json; returns the summary with `run_dir`."""
        headline = self.testbed.headline(self.loop.theta)
        extras: dict[str, Any] = {"trajectories": self.counter.trajectories}
        if headline is None:
            path = self.run.finish(**extras)
        else:
            name, value, higher_is_better, more = headline
            path = self.run.finish(headline=(name, value), higher_is_better=higher_is_better, **extras, **more)
        summary = json.loads((path / "summary.json").read_text())
        summary["run_dir"] = str(path)
        return summary
