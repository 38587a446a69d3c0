"""TD3+BC (Fujimoto & Gu, "A Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2021).

TD3 on a fixed dataset with a behaviour-cloning term in the actor loss:

    critic:  y = r + gamma (1 - d) min_j Q'_j(s', clip(pi'(s') + clip(eps, -c, c), -1, 1)),  eps ~ N(0, 0.2^2)
             L_Q = mean (Q_1(s, a) - y)^2 + mean (Q_2(s, a) - y)^2                          every step
    actor:   lambda = alpha / mean |Q_1(s, pi(s))|   (no gradient)
             L_pi = -lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2                          every 2nd step,
             then Polyak updates of the critic and actor targets (tau = 0.005)

States are z-scored with the dataset's mean and std (+1e-3), also at evaluation. Settings are the
authors' (github.com/sfujim/TD3_BC): actor and twin critics 256-256 ReLU, Adam 3e-4, batch 256, alpha 2.5.
The twin critics are one batched ensemble module (classic_rl/ensemble.py): both evaluated in one matmul
per layer.

    python -m algos.td3_bc --dataset hopper-medium
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from classic_rl.config import parse_config, require, run_cli
from classic_rl.ensemble import adam_step, soft_update
from classic_rl.offline import (OfflineConfig, TD3Networks, critic_loss, make_evaluator, smoothed_target_action,
                                td3_target, warn_if_q_diverges)
from classic_rl.session import RunSession


@dataclass
class TD3BCConfig(OfflineConfig):
    """TD3+BC: offline TD3 with a normalized behaviour-cloning term (Fujimoto & Gu 2021)."""

    alpha: float = 2.5
    """trade-off: lambda = alpha / mean|Q| scales the Q term against the BC term"""
    lr: float = 3e-4
    """Adam learning rate of the actor and the critics"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    policy_noise: float = 0.2
    """std of the target-policy smoothing noise (times the action bound)"""
    noise_clip: float = 0.5
    """clip of the target-policy smoothing noise (times the action bound)"""
    policy_delay: int = 2
    """actor and target updates every this many critic steps"""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """hidden widths of the actor and of each critic (ReLU)"""

    def validate(self) -> None:
        super().validate()
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(0 < self.tau <= 1, f"--tau must be in (0, 1], got {self.tau}")
        require(self.policy_delay >= 1, f"--policy-delay must be >= 1, got {self.policy_delay}")
        require(self.alpha >= 0, f"--alpha must be >= 0, got {self.alpha}")


def td3_bc_actor_loss(q_pi: torch.Tensor, pi: torch.Tensor, data_actions: torch.Tensor, alpha: float):
    """-lambda mean Q(s, pi(s)) + mean (pi(s) - a)^2 with lambda = alpha / mean|Q| (no gradient)."""
    lam = alpha / q_pi.abs().mean().detach()
    return -lam * q_pi.mean() + F.mse_loss(pi, data_actions), lam


def train(cfg: TD3BCConfig, argv: Sequence[str] | None = None) -> RunSession:
    from envs.offline.loaders import load_offline_data
    from envs.registry import make_vec_env

    run = RunSession(cfg, "td3_bc", argv=argv, env_field="dataset", steps_name="gradient steps")
    cfg, device = run.cfg, run.device
    data = load_offline_data(cfg.dataset, device, normalize_obs=cfg.normalize_obs, env=cfg.env)
    buffer, high = data.buffer, data.action_high
    obs_dim, act_dim = buffer.obs.shape[1], buffer.actions.shape[1]
    nets = TD3Networks.build(obs_dim, act_dim, cfg.hidden_sizes, cfg.hidden_sizes, high, cfg.lr, device)
    actor, actor_target, critic, critic_target = nets.actor, nets.actor_target, nets.critic, nets.critic_target
    actor_opt, critic_opt = nets.actor_opt, nets.critic_opt
    actor_params = list(actor.parameters())
    sample_rng = torch.Generator(device=device).manual_seed(cfg.seed)
    evaluator, evaluate = make_evaluator(cfg, data, make_vec_env, actor, device)
    q_bound = data.q_bound(cfg.gamma)
    run.add_cleanup(evaluator.close)
    lam = torch.zeros(())
    actor_loss = torch.zeros(())

    with run:
        run.track(**nets.tracked(), sample_rng=sample_rng, evaluate=evaluate)
        while run.step < cfg.total_steps:
            b = buffer.sample(cfg.batch_size, sample_rng)
            with torch.no_grad():
                next_action = smoothed_target_action(actor_target, b["next_obs"], cfg.policy_noise * high,
                                                     cfg.noise_clip * high, high)
                y = td3_target(b["rewards"], b["terminated"],
                               critic_target(torch.cat([b["next_obs"], next_action], -1)), cfg.gamma)
            q = critic(torch.cat([b["obs"], b["actions"]], -1))
            q_loss = critic_loss(q, y)
            critic_opt.zero_grad(set_to_none=True)
            q_loss.backward()
            adam_step(critic_opt)  # = critic_opt.step(), without its per-call Python overhead
            if (run.iteration + 1) % cfg.policy_delay == 0:
                pi = actor(b["obs"])
                q_pi = critic(torch.cat([b["obs"], pi], -1), members=slice(0, 1))[0]
                actor_loss, lam = td3_bc_actor_loss(q_pi, pi, b["actions"], cfg.alpha)
                actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward(inputs=actor_params)  # no critic weight gradients: only the actor steps
                adam_step(actor_opt)
                soft_update(critic_target, critic, cfg.tau)
                soft_update(actor_target, actor, cfg.tau)
            q_mean = q.detach().mean()
            run.advance(1, critic_loss=q_loss.detach(), actor_loss=actor_loss.detach(), q_mean=q_mean, bc_lambda=lam)
            warn_if_q_diverges(run, q_mean, q_bound)
        run.finish(headline=("normalized_score", (run.last_eval or {}).get("normalized_score")),
                   dataset=cfg.dataset)
    return run


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(TD3BCConfig, argv, prog="python -m algos.td3_bc", description=__doc__)
    return finish_run(train(cfg, argv).path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
