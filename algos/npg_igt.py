"""N-PG-IGT: normalised policy gradient with implicit gradient transport (Fatkhullin et al., ICML 2023).

One iteration (ascent form; theta_{-1} = theta_0, d_{-1} = 0):
    theta~_t = theta_t + ((1 - eta) / eta) (theta_t - theta_{t-1})      extrapolated point
    tau_t ~ pi_{theta~_t}                                                 the batch is sampled AT theta~_t
    d_t = (1 - eta_t) d_{t-1} + eta_t g(tau_t, theta~_t)
    theta_{t+1} = theta_t + gamma_t d_t / ||d_t||                          a move of exactly gamma_t
g is the paper's GPOMDP estimate (classic_rl/pg/estimators.py). Schedules, from the authors' code
(aabkn/Stochastic-Policy-Gradient-Methods, torch/optimizers/NIGT_optimizer.py): eta_t = eta_0 (2/(t+2))^(4/5),
gamma_t = gamma_0 2/(t+2), with gamma_0 = --step-size and eta_0 = --eta0.
Why it works: the EMA weights make the weighted average of the points theta~_s equal theta_t, so the
first-order staleness bias of old gradients cancels. The extrapolation distance (1 - eta_t)/eta_t grows like
t^(4/5): the behaviour policy drifts from the evaluated one as the run goes on (by design).

Which eta in the extrapolation: the paper uses eta_t; the authors' code uses the previous iteration's
eta_{t-1}. Default: the paper's (`--extrapolation-eta paper`); `code` reproduces the authors'. At t = 0 both
give theta~_0 = theta_0 because theta_{-1} = theta_0. Evaluation uses theta_t, not theta~_t (as the authors do).

Settings: the authors' code for CartPole/Acrobot/MuJoCo (envs/pg_testbeds.py); the step sizes below were
tuned by us (the authors' per-env values were not published).

    python -m algos.npg_igt --env CartPole
    python -m algos.npg_igt --env LQR
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Literal, Sequence

import torch

from classic_rl.config import parse_config, run_cli
from classic_rl.pg.estimators import igt_schedule, normalized_step
from classic_rl.pg.trainer import PGConfig, PGLoop, PGTrainer
from classic_rl.session import RunSession
from envs.pg_testbeds import make_testbed, pg_presets


@dataclasses.dataclass
class NPGIGTConfig(PGConfig):
    """N-PG-IGT with the shared GPOMDP estimator and sample counting."""

    extrapolation_eta: Literal["paper", "code"] = "paper"
    """eta used in the extrapolation: paper = eta_t, code = eta_{t-1} (the authors' implementation)"""


@dataclasses.dataclass
class IGTLoop(PGLoop):
    eta_prev: float = 1.0
    """eta_{t-1}, for --extrapolation-eta code"""


# LQR: ours, from a coarse grid on seeds 1 and 100 at a 1000-trajectory budget (paper_figs uses seeds >= 1000).
# Grid: step size in {0.03, 0.1, 0.3, 1.0} (1.0 leaves the stabilising set; ||K0 - K*|| = 0.52).
# CartPole: step size in {0.1 (authors), 0.3, 1.0, 3.0} on seed 100; 0.3 first reaches 200 fastest.
PRESETS = {"LQR": dict(step_size=0.1), "CartPole": dict(step_size=0.3)}


def extrapolate(theta: torch.Tensor, theta_prev: torch.Tensor, eta: float) -> torch.Tensor:
    """theta + ((1 - eta) / eta) (theta - theta_prev)."""
    return theta + ((1.0 - eta) / eta) * (theta - theta_prev)


def train(cfg: NPGIGTConfig, argv: Sequence[str] | None = None) -> dict:
    """Train; returns the summary (with `run_dir`)."""
    run = RunSession(cfg, "npg_igt", argv=argv)
    cfg = run.cfg
    pg = PGTrainer(run, make_testbed)
    loop = IGTLoop.start(pg.theta0, eta_prev=cfg.eta0)
    with run:
        pg.track(loop)
        while run.step < cfg.total_steps:
            eta, step = igt_schedule(loop.t, cfg.eta0, cfg.step_size)
            eta_x = eta if cfg.extrapolation_eta == "paper" else loop.eta_prev
            theta_tilde = extrapolate(loop.theta, loop.theta_prev, eta_x)
            batch = pg.sample(theta_tilde)
            g = pg.gradient(theta_tilde, batch)
            loop.d = (1.0 - eta) * loop.d + eta * g
            loop.theta_prev, loop.theta = loop.theta, normalized_step(loop.theta, loop.d, step)
            loop.eta_prev, loop.t = eta, loop.t + 1
            pg.refit_baseline(batch)
            pg.advance(step_size=step, eta=eta, grad_norm=g.norm(), direction_norm=loop.d.norm(),
                       extrapolation=(theta_tilde - loop.theta_prev).norm(),
                       batch_return=batch.undiscounted_returns().mean())
        return pg.finish()


def parse(argv: Sequence[str]) -> NPGIGTConfig:
    return parse_config(NPGIGTConfig, argv, presets=lambda env: pg_presets(env, PRESETS),
                        prog="python -m algos.npg_igt", description=__doc__)


def main(argv: Sequence[str] | None = None) -> dict:
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    summary = train(parse(argv), argv)
    finish_run(summary["run_dir"])
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
