"""BPO, Bounded Policy Optimization (Ao et al., 2026, arXiv 2604.18578).

The closed-form optimum of PPO's box-constrained surrogate pushes every action above the per-state
*median* of Q to ratio 1 + eps and every action below it to 1 - eps. BPO fits the policy to that target
ratio with an advantage-weighted L1 loss, using a learned median head u(s) and a sigmoid temperature:

    tau    = 1 - eps + 2 eps sigmoid((Q_hat - u(s)) / lambda_T)        (target ratio, no gradient)
    L_pi   = mean |rho - tau| * |Q_hat - V(s)|                         (no clipping, no adv. normalization)
    L_u    = mean log cosh-type loss softplus(Q_hat - u) - (Q_hat - u)/2   (a smoothed median regression)

    python -m algos.bpo --env Humanoid        # the authors' tuned settings for that env
    python -m algos.bpo --env Pong --help

Follows the authors' SB3 implementation (src/sb3/BPO.py, policy.py) rather than the IsaacLab variant:
the target uses the *current* median/value heads in every minibatch, returns are not recomputed per epoch,
Ã is not clamped before the sigmoid. Everything except the loss is shared with PPO (classic_rl/onpolicy.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from classic_rl.config import parse_config, require, run_cli
from classic_rl.onpolicy import OnPolicyConfig, train_on_policy
from envs.registry import env_family, make_vec_env, resolve_env_id, short_name


@dataclass
class BPOConfig(OnPolicyConfig):
    """BPO with a median head. Defaults depend on --env (the authors' per-env sweep files)."""

    clip_ratio: float = 0.3
    """ratio bound epsilon: the target ratio lies in [1 - eps, 1 + eps]"""
    lambda_t: float = 0.001
    """sigmoid temperature lambda_T of the target ratio, in raw return units (-> 0: hard sign)"""
    median_coef: float = 0.5
    """coefficient c_u of the median head's log-cosh loss"""
    use_median: bool = True
    """threshold the target at the learned median u(s); --no-use-median uses V(s) (the authors' ablation)"""
    median_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """hidden widths of the median head MLP stacked on the critic latent"""

    def validate(self) -> None:
        super().validate()
        require(0 < self.clip_ratio < 1, f"--clip-ratio must be in (0, 1), got {self.clip_ratio}")
        require(self.lambda_t > 0, f"--lambda-t must be positive, got {self.lambda_t}")
        require(self.median_coef >= 0, f"--median-coef must be >= 0, got {self.median_coef}")


# sweeps/<env>/bpo_seed.yaml of the authors' repo (spec §1(d)). MuJoCo: separate actor/critic
# [256, 256] ReLU, orthogonal init, log-std 0, no observation or reward normalization.
MUJOCO_COMMON = dict(hidden_sizes=[256, 256], activation="relu", ortho_init=True, log_std_init=0.0,
                     normalize_obs=False, normalize_reward=False, vf_coef=0.5, median_coef=0.5, ent_coef=0.0,
                     max_grad_norm=1.0, total_steps=1_000_000)
SWEEP: dict[str, dict[str, Any]] = {
    "Ant": dict(n_envs=1, n_steps=2048, batch_size=256, n_epochs=10, lr=1e-4, clip_ratio=0.3, lambda_t=0.001,
                gamma=0.99, gae_lambda=0.95),
    "Hopper": dict(n_envs=4, n_steps=512, batch_size=32, n_epochs=10, lr=9.808e-5, clip_ratio=0.25,
                   lambda_t=10.0, gamma=0.999, gae_lambda=0.95),
    "Humanoid": dict(n_envs=1, n_steps=512, batch_size=128, n_epochs=5, lr=1e-4, clip_ratio=0.2,
                     lambda_t=0.001, gamma=0.99, gae_lambda=0.95, max_grad_norm=2.0),
    "Swimmer": dict(n_envs=4, n_steps=1024, batch_size=256, n_epochs=10, lr=3e-4, clip_ratio=0.1,
                    lambda_t=0.01, gamma=0.9999, gae_lambda=0.98),
    "HalfCheetah": dict(n_envs=1, n_steps=512, batch_size=64, n_epochs=20, lr=2.0633e-5, clip_ratio=0.1,
                        lambda_t=0.001, gamma=0.98, gae_lambda=0.92, vf_coef=0.58096, ent_coef=4.01762e-4),
}
# No tuned values exist for other MuJoCo envs (e.g. Walker2d): the spec proposes the Ant column.
DEFAULT_MUJOCO = SWEEP["Ant"]
# cfgs/algo/bpo/atari.yaml: NatureCNN shared, [256] ReLU MLP heads, median head [256] on the value latent.
ATARI = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=5, lr=2.5e-4, clip_ratio=0.3, lambda_t=0.001,
             gamma=0.98, gae_lambda=0.95, vf_coef=0.5, median_coef=0.5, ent_coef=0.001, max_grad_norm=1.0,
             head_hidden=[256], median_hidden=[256], eval_every=100_000, total_steps=10_000_000, torch_threads=0)


def presets(env: str) -> dict[str, Any]:
    env_id = resolve_env_id(env)
    family = env_family(env_id)
    if family == "atari":
        return dict(ATARI)
    return {**MUJOCO_COMMON, **SWEEP.get(short_name(env_id), DEFAULT_MUJOCO)}


def bpo_target_ratio(median_advantage: torch.Tensor, clip_ratio: float, temperature: float) -> torch.Tensor:
    """tau = 1 - eps + 2 eps sigmoid(A_med / lambda_T); tends to 1 + eps * sign(A_med) as lambda_T -> 0."""
    return 1.0 - clip_ratio + 2.0 * clip_ratio * torch.sigmoid(median_advantage / temperature)


def bpo_policy_loss(ratio: torch.Tensor, target_ratio: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Advantage-weighted L1 distance mean |rho - tau| * |w| (pull never switches off, unlike PPO's clip)."""
    return ((ratio - target_ratio).abs() * weight.abs()).mean()


def log_cosh_loss(residual: torch.Tensor) -> torch.Tensor:
    """mean log(2 cosh(r / 2)) = mean softplus(r) - r / 2; its minimizer solves E[sigmoid(r)] = 1/2."""
    return (F.softplus(residual) - residual / 2).mean()


def bpo_loss(model, mb: dict[str, torch.Tensor], cfg: BPOConfig) -> tuple[torch.Tensor, dict]:
    out = model.evaluate(mb["obs"], mb["actions"])
    q_hat = mb["returns"]  # GAE lambda-return = A_GAE + V_old
    log_ratio = out["log_prob"] - mb["log_probs"]
    ratio = log_ratio.exp()
    threshold = out["median"] if cfg.use_median else out["value"]
    target = bpo_target_ratio((q_hat - threshold).detach(), cfg.clip_ratio, cfg.lambda_t)
    # The weight uses the current value head, detached (authors' code), not the rollout-time advantage.
    policy = bpo_policy_loss(ratio, target, q_hat - out["value"].detach())
    v_loss = F.mse_loss(out["value"], q_hat)
    entropy = out["entropy"].mean()
    loss = policy + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
    stats = {"policy_loss": policy.detach(), "value_loss": v_loss.detach(), "entropy": entropy.detach()}
    if cfg.use_median:
        m_loss = log_cosh_loss(q_hat - out["median"])
        loss = loss + cfg.median_coef * m_loss
        stats["median_loss"] = m_loss.detach()
    with torch.no_grad():
        stats["approx_kl"] = ((ratio - 1) - log_ratio).mean()
        stats["target_up_fraction"] = (target > 1).float().mean()
        stats["ratio_target_gap"] = (ratio - target).abs().mean()
    return loss, stats


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(BPOConfig, argv, presets=presets, prog="python -m algos.bpo", description=__doc__)
    heads = ("median",) if cfg.use_median else ()
    run = train_on_policy(cfg, "bpo", bpo_loss, make_vec_env, extra_heads=heads,
                          extra_head_hidden=cfg.median_hidden, argv=argv)
    return finish_run(run.path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
