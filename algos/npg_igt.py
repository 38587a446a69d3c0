"""N-PG-IGT: normalised policy gradient with implicit gradient transport (Fatkhullin et al., ICML 2023).

One iteration (ascent form; theta_{-1} = theta_0, d_{-1} = 0):
    theta~_t = theta_t + ((1 - eta) / eta) (theta_t - theta_{t-1})      extrapolated point
    tau_t ~ pi_{theta~_t}                                                 the batch is sampled AT theta~_t
    d_t = (1 - eta_t) d_{t-1} + eta_t g(tau_t, theta~_t)
    theta_{t+1} = theta_t + gamma_t d_t / ||d_t||                          a move of exactly gamma_t
Schedules [code: torch/optimizers/NIGT_optimizer.py]: eta_t = eta0 (2/(t+2))^(4/5), gamma_t = gamma0 2/(t+2).
Why it works: the EMA weights make the weighted average of the points theta~_s equal theta_t, so the
first-order staleness bias of old gradients cancels.

Which eta in the extrapolation (spec pitfall 4): the paper uses eta_t; the authors' code uses the previous
iteration's eta_{t-1}. Default: the paper's (`--extrapolation-eta paper`); `code` reproduces the authors'.
At t = 0 both give theta~_0 = theta_0 because theta_{-1} = theta_0. Evaluation uses theta_t, not theta~_t.

    python -m algos.npg_igt --env CartPole
    python -m algos.npg_igt --env LQR
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Literal

import torch

from algos.pg_common import PGConfig, PGRun, common_presets
from classic_rl.pg.estimators import igt_schedule, normalized_step
from classic_rl.config import parse_config, run_cli


@dataclasses.dataclass
class NPGIGTConfig(PGConfig):
    """N-PG-IGT with the shared GPOMDP estimator and sample counting."""

    extrapolation_eta: Literal["paper", "code"] = "paper"
    """eta used in the extrapolation: paper = eta_t, code = eta_{t-1} (the authors' implementation)"""


# LQR: ours, from a coarse grid on seeds 1 and 100 at a 1000-trajectory budget (paper_figs uses seeds >= 1000).
# Grid: gamma0 in {0.03, 0.1, 0.3, 1.0} (1.0 leaves the stabilising set; ||K0 - K*|| = 0.52).
# CartPole: gamma0 in {0.1 (authors), 0.3, 1.0, 3.0} on seed 100; 0.3 first reaches 200 fastest.
PRESETS = {"LQR": dict(gamma0=0.1), "CartPole": dict(gamma0=0.3)}


def extrapolate(theta: torch.Tensor, theta_prev: torch.Tensor, eta: float) -> torch.Tensor:
    """theta + ((1 - eta) / eta) (theta - theta_prev)."""
    return theta + ((1.0 - eta) / eta) * (theta - theta_prev)


def train(cfg: NPGIGTConfig) -> dict:
    run = PGRun(cfg, algo="npg_igt")
    theta = run.theta0.clone()
    theta_prev = theta.clone()
    d = torch.zeros_like(theta)
    eta_prev = cfg.eta0
    t = 0
    while run.budget_left():
        run.maybe_evaluate(theta, t)
        steps_before = run.counter.env_steps
        eta, step = igt_schedule(t, cfg.eta0, cfg.gamma0)
        theta_tilde = extrapolate(theta, theta_prev, eta if cfg.extrapolation_eta == "paper" else eta_prev)
        batch = run.sample(theta_tilde)
        g = run.gradient(theta_tilde, batch)
        d = (1.0 - eta) * d + eta * g
        theta_prev, theta = theta, normalized_step(theta, d, step)
        run.check_finite(theta, "parameters", t)
        run.refit_baseline(batch)
        run.log_iteration(steps_before, t, step_size=step, eta=eta, grad_norm=g.norm(), direction_norm=d.norm(),
                          extrapolation=(theta_tilde - theta_prev).norm(),
                          batch_return=batch.undiscounted_returns().mean())
        eta_prev = eta
        t += 1
    return run.finish(theta, t)


def main(argv=None) -> dict:
    cfg = parse_config(NPGIGTConfig, argv, presets=lambda env: common_presets(env, PRESETS),
                       prog="python -m algos.npg_igt")
    return train(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
