"""PPO (Schulman et al., 2017): clipped surrogate, GAE, value and entropy terms.

    python -m algos.ppo --env Hopper            # rl-zoo tuned settings, obs + reward normalization
    python -m algos.ppo --env Pong              # standard Atari settings (8 envs x 128 steps, NatureCNN)
    python -m algos.ppo --env Hopper --help     # every flag, with Hopper's defaults

The rollout/update loop, buffers, networks, evaluation and checkpoints are shared with BPO
(classic_rl/onpolicy.py); this file holds only what is PPO: its config, presets and loss.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from classic_rl.config import parse_config, require, run_cli
from classic_rl.onpolicy import OnPolicyConfig, train_on_policy
from envs.registry import env_family, make_vec_env, resolve_env_id, short_name


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO with a clipped surrogate objective. Defaults depend on --env (see presets below)."""

    clip_eps: float = 0.2
    """surrogate clipping range epsilon"""
    clip_value: Optional[float] = None
    """clip the value prediction around the rollout value by this much (SB3 clip_range_vf; None = off)"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    target_kl: Optional[float] = None
    """logged only; early stopping on KL is not implemented (off in SB3 and CleanRL by default)"""

    def validate(self) -> None:
        super().validate()
        require(0 < self.clip_eps < 1, f"--clip-eps must be in (0, 1), got {self.clip_eps}")


# rl-baselines3-zoo hyperparams/ppo.yml (the spec's §2(d) table; Walker2d/HalfCheetah recalled from the zoo
# file), run with normalize=True, log_std_init=-2, ortho_init=False, ReLU [256, 256] as the zoo does.
ZOO_MUJOCO: dict[str, dict[str, Any]] = {
    "Ant": dict(n_envs=1, n_steps=512, batch_size=32, n_epochs=10, lr=1.90609e-5, clip_eps=0.1, gamma=0.98,
                gae_lambda=0.8, vf_coef=0.677239, ent_coef=4.9646e-7, max_grad_norm=0.6),
    "Hopper": dict(n_envs=1, n_steps=512, batch_size=32, n_epochs=5, lr=9.808e-5, clip_eps=0.2, gamma=0.999,
                   gae_lambda=0.99, vf_coef=0.835671, ent_coef=0.00229519, max_grad_norm=0.7),
    "Humanoid": dict(n_envs=1, n_steps=512, batch_size=256, n_epochs=5, lr=3.56987e-5, clip_eps=0.3,
                     gamma=0.95, gae_lambda=0.9, vf_coef=0.431892, ent_coef=0.00238306, max_grad_norm=2.0),
    "Swimmer": dict(n_envs=4, n_steps=1024, batch_size=256, n_epochs=10, lr=6e-4, clip_eps=0.1, gamma=0.9999,
                    gae_lambda=0.98, vf_coef=0.5, ent_coef=0.0, max_grad_norm=0.5),
    "HalfCheetah": dict(n_envs=1, n_steps=512, batch_size=64, n_epochs=20, lr=2.0633e-5, clip_eps=0.1,
                        gamma=0.98, gae_lambda=0.92, vf_coef=0.58096, ent_coef=4.01762e-4, max_grad_norm=0.8),
    "Walker2d": dict(n_envs=1, n_steps=512, batch_size=32, n_epochs=20, lr=5.05041e-5, clip_eps=0.1,
                     gamma=0.99, gae_lambda=0.95, vf_coef=0.871923, ent_coef=5.85045e-4, max_grad_norm=1.0),
}
ZOO_POLICY = dict(normalize_obs=True, normalize_reward=True, log_std_init=-2.0, ortho_init=False,
                  activation="relu", hidden_sizes=[256, 256])
# Standard Atari PPO (Nature-CNN, linear heads): rl-zoo / CleanRL ppo_atari.
ATARI = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=4, lr=2.5e-4, anneal_lr=True, clip_eps=0.1,
             gamma=0.99, gae_lambda=0.95, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5, head_hidden=[],
             eval_every=100_000, total_steps=10_000_000, torch_threads=0)
# Anything else with vector observations: SB3 / CleanRL defaults with normalization.
GENERIC = dict(normalize_obs=True, normalize_reward=True)


def presets(env: str) -> dict[str, Any]:
    env_id = resolve_env_id(env)
    family = env_family(env_id)
    if family == "atari":
        return dict(ATARI)
    if family == "mujoco":
        return {**ZOO_POLICY, **ZOO_MUJOCO.get(short_name(env_id), {}), "total_steps": 1_000_000}
    return dict(GENERIC)


def ppo_policy_loss(log_ratio: torch.Tensor, advantages: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """-mean(min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)) with rho = exp(log_ratio)."""
    ratio = log_ratio.exp()
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).mean()


def value_loss(values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor,
               clip: Optional[float]) -> torch.Tensor:
    """MSE to the GAE returns; with `clip`, SB3's clip_range_vf (prediction clipped around V_old)."""
    if clip is not None:
        values = old_values + (values - old_values).clamp(-clip, clip)
    return F.mse_loss(values, returns)


def ppo_loss(model, mb: dict[str, torch.Tensor], cfg: PPOConfig) -> tuple[torch.Tensor, dict]:
    out = model.evaluate(mb["obs"], mb["actions"])
    log_ratio = out["log_prob"] - mb["log_probs"]
    adv = mb["advantages"]
    if cfg.norm_adv and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = ppo_policy_loss(log_ratio, adv, cfg.clip_eps)
    v_loss = value_loss(out["value"], mb["returns"], mb["values"], cfg.clip_value)
    entropy = out["entropy"].mean()
    loss = policy + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
    with torch.no_grad():
        approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()
        clip_fraction = ((log_ratio.exp() - 1).abs() > cfg.clip_eps).float().mean()
    return loss, {"policy_loss": policy.detach(), "value_loss": v_loss.detach(), "entropy": entropy.detach(),
                  "approx_kl": approx_kl, "clip_fraction": clip_fraction}


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(PPOConfig, argv, presets=presets, prog="python -m algos.ppo", description=__doc__)
    run = train_on_policy(cfg, "ppo", ppo_loss, make_vec_env, argv=argv)
    return finish_run(run.path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
