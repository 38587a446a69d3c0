"""(N)-HARPG: Hessian-aided recursive policy gradient, normalised (N-HARPG) or not (Fatkhullin et al. 2023).

    init: d_0 = g(tau_0, theta_0), tau_0 ~ pi_{theta_0};   theta_1 = theta_0 + gamma_0 step(d_0)
    t >= 1:  b ~ U[0, 1],  q_t = b theta_t + (1 - b) theta_{t-1}
             tau_t ~ pi_{theta_t},  tau^_t ~ pi_{q_t}                    two independent batches, both counted
             v_t = B(tau^_t, q_t) (theta_t - theta_{t-1})                 Hessian-vector-product correction
             d_t = (1 - eta_t) (d_{t-1} + v_t) + eta_t g(tau_t, theta_t)
             N-HARPG: theta_{t+1} = theta_t + gamma_t d_t / ||d_t||;   HARPG: theta_{t+1} = theta_t + gamma_t d_t
Because q_t is uniform on the segment, E[v_t] = grad J(theta_t) - grad J(theta_{t-1}) exactly (fundamental
theorem of calculus), so d_t is an unbiased recursive estimate of grad J(theta_t) without importance weights.
Schedules [code: torch/optimizers/STORMHess_optimizer.py]: eta_t = eta0 2/(t+2); gamma_t = gamma0 2/(t+2)
(normalised) or gamma0 (2/(t+2))^(1/2) (unnormalised).

HVP estimator: unbiased per-trajectory version by default; `--code-faithful-hvp` uses the authors' biased
product-of-averages version (spec pitfall 5; classic_rl/pg/estimators.hvp_correction documents both).

    python -m algos.harpg --env CartPole
    python -m algos.harpg --env LQR --no-normalized
"""
from __future__ import annotations

import dataclasses
import sys

import torch

from algos.pg_common import PGConfig, PGRun, common_presets
from classic_rl.pg.estimators import harpg_schedule, hvp_correction, normalized_step
from classic_rl.config import parse_config, run_cli


@dataclasses.dataclass
class HARPGConfig(PGConfig):
    """(N)-HARPG with the shared GPOMDP estimator, an HVP correction and sample counting."""

    normalized: bool = True
    """normalised step (N-HARPG); --no-normalized gives HARPG with gamma_t = gamma0 (2/(t+2))^(1/2)"""
    hessian_batch_size: int = 32
    """env steps of the HVP batch drawn at q_t, as whole episodes (authors: 32, i.e. one episode in practice;
    LQR: rounded up to whole trajectories)"""
    code_faithful_hvp: bool = False
    """use the authors' biased HVP estimator (product of batch averages, log p averaged per step)"""

    def validate(self) -> None:
        super().validate()
        from classic_rl.config import require
        require(self.hessian_batch_size > 0, f"--hessian-batch-size must be positive, got {self.hessian_batch_size}")


# LQR: ours, from a coarse grid on seeds 1 and 100 at a 1000-trajectory budget (paper_figs uses seeds >= 1000).
# Grid: N-HARPG gamma0 in {0.03, 0.05, 0.1, 0.2, 0.3}; HARPG in {1e-4, 3e-4, 1e-3 (diverges), 3e-3 (diverges)}.
# CartPole (seed 100): N-HARPG gamma0 in {0.1 (authors), 0.3, 1.0, 3.0} -> 0.3; HARPG in {1e-3, 3e-3, 0.1} -> 1e-3.
PRESETS = {True: {"LQR": dict(gamma0=0.1), "CartPole": dict(gamma0=0.3)},
           False: {"LQR": dict(gamma0=3e-4), "CartPole": dict(gamma0=1e-3)}}


def presets_for(normalized: bool):
    return lambda env: common_presets(env, PRESETS[normalized])


def train(cfg: HARPGConfig) -> dict:
    run = PGRun(cfg, algo="n_harpg" if cfg.normalized else "harpg")
    theta = run.theta0.clone()
    theta_prev = theta.clone()
    d = torch.zeros_like(theta)
    t = 0
    while run.budget_left():
        run.maybe_evaluate(theta, t)
        steps_before = run.counter.env_steps
        eta, step = harpg_schedule(t, cfg.eta0, cfg.gamma0, cfg.normalized)
        batch = run.sample(theta)
        g = run.gradient(theta, batch)
        v_norm = 0.0
        if t == 0:
            d = g
        else:
            delta = theta - theta_prev
            b = float(torch.rand(()))
            q = b * theta + (1.0 - b) * theta_prev
            hbatch = run.sample(q, cfg.hessian_batch_size)
            v = hvp_correction(run.policy, q, hbatch, run.weights(hbatch), delta, cfg.code_faithful_hvp)
            v_norm = v.norm()
            d = (1.0 - eta) * (d + v) + eta * g
        new_theta = normalized_step(theta, d, step) if cfg.normalized else theta + step * d
        theta_prev, theta = theta, new_theta
        run.check_finite(theta, "parameters", t)
        run.refit_baseline(batch)
        run.log_iteration(steps_before, t, step_size=step, eta=eta, grad_norm=g.norm(), direction_norm=d.norm(),
                          hvp_norm=v_norm, batch_return=batch.undiscounted_returns().mean())
        t += 1
    return run.finish(theta, t)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    normalized = "--no-normalized" not in argv  # presets differ between HARPG and N-HARPG
    cfg = parse_config(HARPGConfig, argv, presets=presets_for(normalized), prog="python -m algos.harpg")
    return train(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
