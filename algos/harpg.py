"""(N)-HARPG: Hessian-aided recursive policy gradient, normalised (N-HARPG) or not (Fatkhullin et al., ICML 2023).

    init: d_0 = g(tau_0, theta_0), tau_0 ~ pi_{theta_0};   theta_1 = theta_0 + gamma_0 step(d_0)
    t >= 1:  b ~ U[0, 1],  q_t = b theta_t + (1 - b) theta_{t-1}
             tau_t ~ pi_{theta_t},  tau^_t ~ pi_{q_t}                    two independent batches, both counted
             v_t = B(tau^_t, q_t) (theta_t - theta_{t-1})                 Hessian-vector-product correction
             d_t = (1 - eta_t) (d_{t-1} + v_t) + eta_t g(tau_t, theta_t)
             N-HARPG: theta_{t+1} = theta_t + gamma_t d_t / ||d_t||;   HARPG: theta_{t+1} = theta_t + gamma_t d_t
Because q_t is uniform on the segment, E[v_t] = grad J(theta_t) - grad J(theta_{t-1}) exactly (fundamental
theorem of calculus), so d_t is an unbiased recursive estimate of grad J(theta_t) without importance weights.
Schedules, from the authors' code (aabkn/Stochastic-Policy-Gradient-Methods,
torch/optimizers/STORMHess_optimizer.py): eta_t = eta_0 2/(t+2); gamma_t = gamma_0 2/(t+2) (normalised) or
gamma_0 (2/(t+2))^(1/2) (unnormalised), with gamma_0 = --step-size and eta_0 = --eta0.

HVP estimator B(tau, q) delta, averaged over the HVP batch: by default the unbiased per-trajectory version
mean_i [Hess(Phi_i) delta + grad(Phi_i) <grad log p_i, delta>] with log p_i summed over trajectory i's steps.
The authors' code multiplies batch AVERAGES (grad of the mean surrogate times the directional derivative of
log pi averaged over all steps), which is biased; `--code-faithful-hvp` reproduces it.
The authors' HVP batch is 32 env steps, i.e. one whole episode in practice (`--hessian-batch-size`).

Run names: N-HARPG runs are `n_harpg` (runs/n_harpg/...), HARPG runs (`--no-normalized`) `harpg`; both
resume with `python -m algos.harpg --resume DIR`.

    python -m algos.harpg --env CartPole
    python -m algos.harpg --env LQR --no-normalized
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

import torch

from classic_rl.config import parse_config, require, run_cli
from classic_rl.pg.estimators import harpg_schedule, hvp_correction, normalized_step
from classic_rl.pg.trainer import PGConfig, PGLoop, PGTrainer
from classic_rl.session import RunSession
from envs.pg_testbeds import make_testbed, pg_presets


@dataclasses.dataclass
class HARPGConfig(PGConfig):
    """(N)-HARPG with the shared GPOMDP estimator, an HVP correction and sample counting."""

    normalized: bool = True
    """normalised step (N-HARPG); --no-normalized gives HARPG with gamma_t = gamma_0 (2/(t+2))^(1/2)"""
    hessian_batch_size: int = 32
    """env steps of the HVP batch drawn at q_t, as whole episodes (authors: 32, i.e. one episode in practice;
    LQR: rounded up to whole trajectories)"""
    code_faithful_hvp: bool = False
    """use the authors' biased HVP estimator (product of batch averages, log p averaged per step)"""

    def validate(self) -> None:
        super().validate()
        require(self.hessian_batch_size > 0, f"--hessian-batch-size must be positive, got {self.hessian_batch_size}")


# LQR: ours, from a coarse grid on seeds 1 and 100 at a 1000-trajectory budget (paper_figs uses seeds >= 1000).
# Grid: N-HARPG step size in {0.03, 0.05, 0.1, 0.2, 0.3}; HARPG in {1e-4, 3e-4, 1e-3 (diverges), 3e-3 (diverges)}.
# CartPole (seed 100): N-HARPG in {0.1 (authors), 0.3, 1.0, 3.0} -> 0.3; HARPG in {1e-3, 3e-3, 0.1} -> 1e-3.
PRESETS = {True: {"LQR": dict(step_size=0.1), "CartPole": dict(step_size=0.3)},
           False: {"LQR": dict(step_size=3e-4), "CartPole": dict(step_size=1e-3)}}


def run_name(cfg: HARPGConfig) -> str:
    return "n_harpg" if cfg.normalized else "harpg"


def train(cfg: HARPGConfig, argv: Sequence[str] | None = None) -> dict:
    """Train; returns the summary (with `run_dir`)."""
    run = RunSession(cfg, run_name, argv=argv, module="algos.harpg")
    cfg = run.cfg
    pg = PGTrainer(run, make_testbed, hvp_batch_size=cfg.hessian_batch_size)
    loop = PGLoop.start(pg.theta0)
    with run:
        pg.track(loop)
        while run.step < cfg.total_steps:
            eta, step = harpg_schedule(loop.t, cfg.eta0, cfg.step_size, cfg.normalized)
            batch = pg.sample(loop.theta)
            g = pg.gradient(loop.theta, batch)
            v_norm = 0.0
            if loop.t == 0:
                loop.d = g
            else:
                delta = loop.theta - loop.theta_prev
                b = float(torch.rand(()))
                q = b * loop.theta + (1.0 - b) * loop.theta_prev
                hbatch = pg.sample(q, cfg.hessian_batch_size)
                v = hvp_correction(pg.policy, q, hbatch, pg.weights(hbatch), delta, cfg.code_faithful_hvp)
                v_norm = v.norm()
                loop.d = (1.0 - eta) * (loop.d + v) + eta * g
            new_theta = normalized_step(loop.theta, loop.d, step) if cfg.normalized else loop.theta + step * loop.d
            loop.theta_prev, loop.theta, loop.t = loop.theta, new_theta, loop.t + 1
            pg.refit_baseline(batch)
            pg.advance(step_size=step, eta=eta, grad_norm=g.norm(), direction_norm=loop.d.norm(), hvp_norm=v_norm,
                       batch_return=batch.undiscounted_returns().mean())
        return pg.finish()


def parse(argv: Sequence[str]) -> HARPGConfig:
    normalized = "--no-normalized" not in argv  # presets differ between HARPG and N-HARPG
    return parse_config(HARPGConfig, argv, presets=lambda env: pg_presets(env, PRESETS[normalized]),
                        prog="python -m algos.harpg", description=__doc__)


def main(argv: Sequence[str] | None = None) -> dict:
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    summary = train(parse(argv), argv)
    finish_run(summary["run_dir"])
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
