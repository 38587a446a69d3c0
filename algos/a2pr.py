"""A2PR: Adaptive Advantage-guided Policy Regularization (Liu et al., ICML 2024, arXiv 2405.19909).

TD3+BC's skeleton, but the actor is pulled towards a better target, and only when that target is good:
a state-value net V(s) gives advantages A(s, x) = Q_1(s, x) - V(s); a conditional VAE is fitted to the
dataset actions with positive advantage; the actor's own action passed through the VAE gives a nearby
in-distribution action a_gen, and whichever of (a, a_gen) has the higher advantage is the BC target.

One iteration, in the official code's order (github.com/ltlhuuu/A2PR @ f92a2a4, A2PR.py; we follow it):

    a'  = clip(pi'(s') + clip(eps, -0.5, 0.5), -1, 1),  eps ~ N(0, 0.2^2)
    y   = r + gamma (1 - d) min_j Q'_j(s', a')                                    target critics
    critic step on  sum_j mean (Q_j(s, a) - y)^2
    y_V = min(r + gamma (1 - d) min_j Q_j(s', a'), y)                             online critics, after their step
    v   = V(s);  value step on  mean (v - y_V)^2                                  v (pre-step) is reused below
    VAE step on  mean(w (a_hat - a)^2) + 0.5 KL,  w = w_rec 1[Q_1(s, a) > v]      (a_hat, mu, sigma) = VAE(s, a)
    every 2nd iteration:
      p = pi(s);  lambda = alpha / mean |Q_1(s, p)|  (no gradient)
      a_gen = VAE(s, p)                              NOT detached: the BC gradient flows through the VAE into p
      A_d = Q_1(s, a) - v,  A_g = Q_1(s, a_gen) - v  (indicators only)
      a*  = a_gen if A_g >= A_d else a;   g = beta_bc 1[(A_g >= 0) or (A_d > 0)]   (an OR, never 2 beta_bc)
      actor step on  -lambda mean Q_1(s, p) + mean(g (p - a*)^2);  then Polyak updates of critic and actor targets

KL = -1/2 mean(1 + log sigma^2 - mu^2 - sigma^2) over batch and latent dims; log sigma is clamped to
[-4, 15]; the VAE's learning rate is Adam's default 1e-3, all others 3e-4. Networks (deeper than TD3+BC's):
actor 256x3, each critic and V 256x4 (ReLU), VAE encoder and decoder 750x2 with latent size 2 dim(A).
The paper writes a threshold eps_A; the code uses 0 (strict > in the VAE weight and for A_d, >= for A_g): we
follow the code. Per-dataset alpha / vae_weight / mask (beta_bc) / gamma come from the authors' README
(D4RL -v2 tuning); on the toolkit's own gymnasium-v5 datasets they are a starting point, not a tuned setting.

    python -m algos.a2pr --dataset hopper-medium
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from classic_rl.config import parse_config, require, run_cli
from classic_rl.ensemble import soft_update
from classic_rl.offline import (OfflineConfig, TD3Networks, critic_loss, make_evaluator, smoothed_target_action,
                                td3_target, warn_if_q_diverges)
from classic_rl.session import LoopState, RunSession


@dataclass
class A2PRConfig(OfflineConfig):
    """A2PR: TD3+BC with an advantage-filtered VAE and an advantage-gated BC term towards the better of the
    dataset action and the VAE-augmented actor action."""

    alpha: float = 2.5
    """TD3+BC trade-off: lambda = alpha / mean|Q_1(s, pi(s))| (authors: 40 on halfcheetah, 2.5 otherwise)"""
    vae_weight: float = 1.0
    """w_rec: weight of the VAE reconstruction on positive-advantage samples (code name vae_weight)"""
    mask: float = 0.5
    """beta_bc: weight of the gated BC term (code name mask)"""
    lr: float = 3e-4
    """Adam learning rate of the actor, critics and value net"""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (the authors build its optimizer without a learning rate: Adam's 1e-3)"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    policy_noise: float = 0.2
    """std of the target-policy smoothing noise (times the action bound)"""
    noise_clip: float = 0.5
    """clip of the target-policy smoothing noise (times the action bound)"""
    policy_delay: int = 2
    """actor and target updates every this many iterations"""
    actor_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    """hidden widths of the actor (ReLU)"""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256, 256])
    """hidden widths of each critic and of the value net (ReLU)"""
    vae_hidden_sizes: list[int] = field(default_factory=lambda: [750, 750])
    """hidden widths of the VAE encoder and decoder (ReLU)"""
    detach_aug_target: bool = False
    """ablation: stop the BC gradient at a_gen (the authors let it flow through the VAE into the actor)"""

    def validate(self) -> None:
        super().validate()
        require(self.lr > 0 and self.vae_lr > 0, "--lr and --vae-lr must be positive")
        require(0 < self.tau <= 1, f"--tau must be in (0, 1], got {self.tau}")
        require(self.policy_delay >= 1, f"--policy-delay must be >= 1, got {self.policy_delay}")
        require(self.alpha >= 0 and self.mask >= 0 and self.vae_weight >= 0,
                "--alpha, --mask and --vae-weight must be >= 0")


# Per-dataset settings: the authors' README (D4RL -v2), dataset -> (alpha, vae_weight, mask, gamma).
# Where the README lists two values (halfcheetah-medium-expert mask 10 / 15, walker2d-medium-replay 1.2 / 1.5)
# we take the first (the full list); random datasets other than hopper's have no published setting (ours).
DATASET_SETTINGS = {
    "hopper-random": (2.5, 1.5, 1.5, 0.995),
    "hopper-medium": (2.5, 1.0, 0.4, 0.995),
    "hopper-medium-replay": (2.5, 1.5, 0.5, 0.99),
    "hopper-medium-expert": (2.5, 1.0, 4.0, 0.99),
    "halfcheetah-random": (40.0, 1.5, 1.5, 0.995),
    "halfcheetah-medium": (40.0, 1.0, 1.0, 0.99),
    "halfcheetah-medium-replay": (40.0, 1.5, 0.8, 0.995),
    "halfcheetah-medium-expert": (40.0, 1.0, 10.0, 0.99),
    "walker2d-random": (2.5, 1.5, 1.5, 0.995),
    "walker2d-medium": (2.5, 1.5, 1.0, 0.99),
    "walker2d-medium-replay": (2.5, 1.5, 1.2, 0.995),
    "walker2d-medium-expert": (2.5, 1.0, 0.8, 0.99),
}


def presets(dataset: str) -> dict[str, Any]:
    """The settings row of a dataset (matched on its env and level: hopper-medium, or a Minari id
    mujoco/hopper/medium-v0); expert datasets use vae_weight 1, mask 1, gamma 0.99; others the defaults."""
    key = dataset.lower()
    if "/" in key:  # namespace/env/level-vN
        parts = key.split("/")
        key = f"{parts[-2]}-{parts[-1].rsplit('-v', 1)[0]}"
    if key in DATASET_SETTINGS:
        alpha, vae_weight, mask, gamma = DATASET_SETTINGS[key]
        return dict(alpha=alpha, vae_weight=vae_weight, mask=mask, gamma=gamma)
    if key.endswith("-expert"):
        return dict(alpha=40.0 if key.startswith("halfcheetah") else 2.5, vae_weight=1.0, mask=1.0, gamma=0.99)
    return {}


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class ConditionalVAE(nn.Module):
    """Encoder (s, a) -> (mu, log sigma in [-4, 15]); decoder (s, z) -> a_max tanh(.); latent 2 dim(A)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], high: float = 1.0):
        super().__init__()
        self.latent = 2 * act_dim
        self.encoder = _mlp(obs_dim + act_dim, hidden, 2 * self.latent)
        self.decoder = _mlp(obs_dim + self.latent, hidden, act_dim)
        self.high = high

    def forward(self, obs: torch.Tensor, actions: torch.Tensor):
        mu, log_std = self.encoder(torch.cat([obs, actions], -1)).chunk(2, -1)
        std = log_std.clamp(-4, 15).exp()
        z = mu + std * torch.randn_like(std)
        return self.high * torch.tanh(self.decoder(torch.cat([obs, z], -1))), mu, std


def value_target(y_target: torch.Tensor, y_online: torch.Tensor) -> torch.Tensor:
    """Conservative V target: the smaller of the target-critic and online-critic bootstraps."""
    return torch.minimum(y_online, y_target)


def vae_loss(recon: torch.Tensor, actions: torch.Tensor, mu: torch.Tensor, std: torch.Tensor,
             weight: torch.Tensor) -> torch.Tensor:
    """mean(w (a_hat - a)^2) + 0.5 (-1/2 mean(1 + log sigma^2 - mu^2 - sigma^2)); w: [B, 1]."""
    kl = -0.5 * (1 + torch.log(std.pow(2)) - mu.pow(2) - std.pow(2)).mean()
    return (weight * (recon - actions).pow(2)).mean() + 0.5 * kl


def augmented_target(actions: torch.Tensor, generated: torch.Tensor, adv_data: torch.Tensor,
                     adv_gen: torch.Tensor) -> torch.Tensor:
    """Per sample, the action with the higher advantage (a_gen on ties); advantages: [B, 1]."""
    pick = (adv_gen >= adv_data).float()
    return pick * generated + (1 - pick) * actions


def bc_gate(adv_data: torch.Tensor, adv_gen: torch.Tensor, mask: float) -> torch.Tensor:
    """beta_bc 1[(A_gen >= 0) or (A_data > 0)]: the BC term is on only when the chosen target is good."""
    return mask * ((adv_gen >= 0) | (adv_data > 0)).float()


def a2pr_actor_loss(q_pi: torch.Tensor, pi: torch.Tensor, target: torch.Tensor, gate: torch.Tensor,
                    alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-lambda mean Q_1(s, pi) + mean(g (pi - a*)^2), lambda = alpha / mean|Q_1(s, pi)| (no gradient)."""
    lam = alpha / q_pi.abs().mean().detach()
    return -lam * q_pi.mean() + (gate * (pi - target).pow(2)).mean(), lam


@dataclass
class ActorStats(LoopState):
    """Last actor-step statistics, carried between logging rows (the actor steps every 2nd iteration)."""

    actor_loss: float = 0.0
    bc_lambda: float = 0.0
    gate_on: float = 0.0
    picked_generated: float = 0.0


def train(cfg: A2PRConfig, argv: Sequence[str] | None = None) -> RunSession:
    from envs.offline.loaders import load_offline_data
    from envs.registry import make_vec_env

    run = RunSession(cfg, "a2pr", argv=argv, env_field="dataset", steps_name="gradient steps")
    cfg, device = run.cfg, run.device
    data = load_offline_data(cfg.dataset, device, normalize_obs=cfg.normalize_obs, env=cfg.env)
    buffer, high = data.buffer, data.action_high
    obs_dim, act_dim = buffer.obs.shape[1], buffer.actions.shape[1]
    nets = TD3Networks.build(obs_dim, act_dim, cfg.actor_hidden_sizes, cfg.hidden_sizes, high, cfg.lr, device)
    actor, actor_target, critic, critic_target = nets.actor, nets.actor_target, nets.critic, nets.critic_target
    actor_opt, critic_opt = nets.actor_opt, nets.critic_opt
    value = _mlp(obs_dim, cfg.hidden_sizes, 1).to(device)
    vae = ConditionalVAE(obs_dim, act_dim, cfg.vae_hidden_sizes, high).to(device)
    value_opt = torch.optim.Adam(value.parameters(), lr=cfg.lr, fused=True)
    vae_opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr, fused=True)
    actor_params = list(actor.parameters())
    sample_rng = torch.Generator(device=device).manual_seed(cfg.seed)
    evaluator, evaluate = make_evaluator(cfg, data, make_vec_env, actor, device)
    q_bound = data.q_bound(cfg.gamma)
    run.add_cleanup(evaluator.close)
    last = ActorStats()

    with run:
        run.track(**nets.tracked(), value=value, vae=vae, value_opt=value_opt,
                  vae_opt=vae_opt, sample_rng=sample_rng, actor_stats=last, evaluate=evaluate)
        while run.step < cfg.total_steps:
            b = buffer.sample(cfg.batch_size, sample_rng)
            s, a = b["obs"], b["actions"]
            # ---- critics
            with torch.no_grad():
                next_action = smoothed_target_action(actor_target, b["next_obs"], cfg.policy_noise * high,
                                                     cfg.noise_clip * high, high)
                next_sa = torch.cat([b["next_obs"], next_action], -1)
                y = td3_target(b["rewards"], b["terminated"], critic_target(next_sa), cfg.gamma)
            q = critic(torch.cat([s, a], -1))
            q_loss = critic_loss(q, y)
            critic_opt.zero_grad(set_to_none=True)
            q_loss.backward()
            critic_opt.step()
            # ---- value: target from the updated online critics, min with the target-critic bootstrap
            with torch.no_grad():
                y_v = value_target(y, td3_target(b["rewards"], b["terminated"], critic(next_sa), cfg.gamma))
                q1_data = critic(torch.cat([s, a], -1), members=slice(0, 1))[0]  # Q_1(s, a) after the critic step
            v = value(s)
            v_loss = F.mse_loss(v.squeeze(-1), y_v)
            value_opt.zero_grad(set_to_none=True)
            v_loss.backward()
            value_opt.step()
            v = v.detach()  # the pre-step V(s), used in the advantages below
            adv_data = q1_data - v
            # ---- VAE on the positive-advantage dataset actions
            recon, mu, std = vae(s, a)
            vae_l = vae_loss(recon, a, mu, std, cfg.vae_weight * (adv_data > 0).float())
            vae_opt.zero_grad(set_to_none=True)
            vae_l.backward()
            vae_opt.step()
            # ---- actor, every policy_delay iterations
            if (run.iteration + 1) % cfg.policy_delay == 0:
                pi = actor(s)
                q_pi = critic(torch.cat([s, pi], -1), members=slice(0, 1))[0]
                generated, _, _ = vae(s, pi)
                if cfg.detach_aug_target:
                    generated = generated.detach()
                with torch.no_grad():
                    adv_gen = critic(torch.cat([s, generated], -1), members=slice(0, 1))[0] - v
                target = augmented_target(a, generated, adv_data, adv_gen)
                gate = bc_gate(adv_data, adv_gen, cfg.mask)
                actor_loss, lam = a2pr_actor_loss(q_pi, pi, target, gate, cfg.alpha)
                actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward(inputs=actor_params)  # only the actor steps; no stray critic/VAE grads
                actor_opt.step()
                soft_update(critic_target, critic, cfg.tau)
                soft_update(actor_target, actor, cfg.tau)
                if (run.iteration + cfg.policy_delay) % cfg.log_every < cfg.policy_delay:  # read back only near a row
                    last.actor_loss, last.bc_lambda = actor_loss.item(), float(lam)
                    last.gate_on = (gate > 0).float().mean().item()
                    last.picked_generated = (adv_gen >= adv_data).float().mean().item()
            run.advance(1, critic_loss=q_loss.detach(), value_loss=v_loss.detach(), vae_loss=vae_l.detach(),
                        q_mean=q.detach().mean(), positive_adv_fraction=(adv_data > 0).float().mean(),
                        **last.state_dict())
            warn_if_q_diverges(run, q.detach().mean(), q_bound)
        run.finish(headline=("normalized_score", (run.last_eval or {}).get("normalized_score")),
                   dataset=cfg.dataset)
    return run


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(A2PRConfig, argv, presets=presets, prog="python -m algos.a2pr", description=__doc__,
                       preset_field="dataset")
    return finish_run(train(cfg, argv).path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
