"""Vanilla policy gradient (REINFORCE/GPOMDP with baseline, decaying step) and its normalised-momentum
variant NSGDM: the baselines N-PG-IGT and (N)-HARPG are compared with (Fatkhullin et al., ICML 2023).

    sgd   : theta_{t+1} = theta_t + gamma_t g_t,                 gamma_t = gamma0 (2/(t+2))^(2/3)
    nsgdm : d_t = (1 - eta_t) d_{t-1} + eta_t g_t,               eta_t = eta0 (2/(t+2))^(2/3)
            theta_{t+1} = theta_t + gamma_t d_t / ||d_t||,        gamma_t = gamma0 * 2/(t+2)
[code: aabkn/Stochastic-Policy-Gradient-Methods, torch/optimizers/SGDM_optimizer.py]. g_t is the paper's
GPOMDP estimate on one batch sampled at theta_t (classic_rl/pg/estimators.py documents the discounting convention).

    python -m algos.vanilla_pg --env CartPole
    python -m algos.vanilla_pg --env LQR --variant nsgdm
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Literal

import torch

from algos.pg_common import PGConfig, PGRun, common_presets, peek_flag
from classic_rl.pg.estimators import normalized_step, nsgdm_schedule, sgd_schedule
from classic_rl.config import parse_config, run_cli


@dataclasses.dataclass
class VanillaPGConfig(PGConfig):
    """Vanilla PG (sgd) or normalised momentum PG (nsgdm) with the shared GPOMDP estimator."""

    variant: Literal["sgd", "nsgdm"] = "sgd"
    """sgd: plain decaying-step PG; nsgdm: EMA momentum + normalised step (no IGT, no HVP)"""


# LQR: ours, from a coarse grid on seeds 1 and 100 at a 1000-trajectory budget (paper_figs uses seeds >= 1000).
# Grid: sgd gamma0 in {1e-3, 2e-3, 3e-3, 5e-3}; nsgdm in {0.03, 0.1, 0.3}.
# CartPole: gamma0 in {1e-3, 3e-3, 1e-2, 0.1} on seed 100: 1e-2 holds 200 from 80k steps on; 1e-3 touches 200
# first but falls back (on seeds 1000-1009 it reaches 195 on 1/10 seeds within 150k steps, 1e-2 on 10/10).
# The authors' 0.1 collapses the policy at once: their surrogate averages over steps, ours sums over each
# trajectory's steps, so their unnormalised step is ~1/(episode length) of ours.
# nsgdm reuses N-PG-IGT's CartPole value (untuned).
PRESETS = {"sgd": {"LQR": dict(gamma0=2e-3), "CartPole": dict(gamma0=1e-2)},
           "nsgdm": {"LQR": dict(gamma0=0.1), "CartPole": dict(gamma0=0.3)}}


def presets_for(variant: str):
    return lambda env: common_presets(env, PRESETS.get(variant, PRESETS["sgd"]))


def train(cfg: VanillaPGConfig) -> dict:
    run = PGRun(cfg, algo="vanilla_pg" if cfg.variant == "sgd" else "nsgdm")
    theta = run.theta0.clone()
    d = torch.zeros_like(theta)
    t = 0
    while run.budget_left():
        run.maybe_evaluate(theta, t)
        steps_before = run.counter.env_steps
        batch = run.sample(theta)
        g = run.gradient(theta, batch)
        if cfg.variant == "sgd":
            step = sgd_schedule(t, cfg.gamma0)
            theta = theta + step * g
            d = g
        else:
            eta, step = nsgdm_schedule(t, cfg.eta0, cfg.gamma0)
            d = (1 - eta) * d + eta * g
            theta = normalized_step(theta, d, step)
        run.check_finite(theta, "parameters", t)
        run.refit_baseline(batch)
        run.log_iteration(steps_before, t, step_size=step, grad_norm=g.norm(), direction_norm=d.norm(),
                          batch_return=batch.undiscounted_returns().mean())
        t += 1
    return run.finish(theta, t)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    variant = peek_flag(argv, "--variant", "sgd")  # presets differ per variant, so read it first
    cfg = parse_config(VanillaPGConfig, argv, presets=presets_for(variant), prog="python -m algos.vanilla_pg")
    return train(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
