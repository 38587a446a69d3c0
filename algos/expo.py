"""EXPO: Expressive Policy Optimization (Dong, Li, Sadigh, Finn 2025, arXiv 2507.07986): online RL with
offline data, a diffusion base policy trained only by imitation, a small Gaussian edit policy trained to
maximise Q, and an on-the-fly (OTF) argmax policy; Q is never back-propagated through the denoising chain.

    python -m algos.expo --env Hopper --dataset hopper-medium-replay                 # online from scratch + data
    python -m algos.expo --env Hopper --protocol offline-to-online                    # diffusion BC first
    python -m algos.expo --env Hopper --device cuda                                   # the paper's settings

We follow the authors' released code (github.com/pd-perry/EXPO, original commit bbd5713, JAX; MIT) where
the paper and code could differ; the paper's hyperparameter table was not available to us. d = dim(A),
actions in [-1, 1]^d (the env's box rescaled), T denoising steps, K critics, m = --num-min.

Base policy (DDPM, noise prediction eps_theta(s, x, t), t = 0..T-1):
    VP schedule  beta_t = 1 - exp(-b_min/T - 0.5 (b_max - b_min)(2t' - 1)/T^2), t' = t + 1, b_min 0.1, b_max 10
                 alpha_t = 1 - beta_t, alphabar_t = prod_{i<=t} alpha_i
    loss         t ~ U{0..T-1}, n ~ N(0, I), x_t = sqrt(alphabar_t) a + sqrt(1 - alphabar_t) n
                 L_base = mean_B sum_d (eps_theta(s, x_t, t) - n)^2            AdamW 3e-4 (wd 1e-4), cosine decay
                 EMA theta_bar <- 0.001 theta + 0.999 theta_bar after every step   (acting/evaluation use theta_bar)
    sampler      x ~ N(0, I); for t = T-1..0: x <- (x - beta_t / sqrt(1 - alphabar_t) eps(s, x, t)) / sqrt(alpha_t),
                 + sqrt(beta_t) z if t > 0; clip x to [-1, 1] after every step
Edit policy pi_e(e | s, a): tanh-Gaussian on [s, a] (256x3 ReLU), edited action a_e = a + beta_e e:
    log-prob     logp = log pi_e(e | s, a) - d log beta_e                (the density of the scaled edit)
    loss         L_edit = mean_B (alpha_T logp - (1/K) sum_k Q_k(s, a_e)),  on the replay actions a (not base samples)
    temperature  H = -mean_B logp;  L_T = alpha_T (H - H_target), H_target = -d/2, alpha_T init 1
OTF policy pi_otf(s): a_1..a_N ~ base sampler; a'_i = clip(a_i + beta_e e_i, -1, 1), e_i ~ pi_e(.|s, a_i), i <= M;
    candidates C = {a_1..a_N, a'_1..a'_M}; S = random subset of m target critics;
    return argmax_{c in C} min_{k in S} Qbar_k(s, c)                      (acting, evaluation and the TD target)
Critic: a'' = pi_otf(s') with the ONLINE diffusion params and the target critics;
    y = r + gamma (1 - terminated) min_{k in S'} Qbar_k(s', a''), fresh subset S', no entropy term;
    L_Q = mean_{k, B} (Q_k(s, a) - y)^2;  Qbar <- 0.005 Q + 0.995 Qbar. K = 10 LayerNorm critics 256x3.
One env step: act with pi_otf (EMA params); store; draw b G rows (half offline, half online, interleaved);
G = --utd critic steps on consecutive b-row slices; then on the LAST slice one diffusion step (+EMA), one edit
step and one temperature step. Offline-to-online: --pretrain-steps diffusion BC steps on offline data only
(critic and edit policy not pre-trained, as the authors' --pretrain_q/--pretrain_edit False), then online with
no random warm-up; from scratch: --start-steps uniform-random actions first. The offline data stay in the mix.

Networks (authors' code): time embedding = learnable Fourier features (128 dims, W ~ N(0, 0.2^2),
[cos 2 pi t W, sin 2 pi t W]) -> Dense 256, swish, Dense 256; denoiser [x_t, s, emb] -> Dense 256 -> 3 residual
blocks (LayerNorm, Dense 1024, swish, Dense 256, skip) -> swish -> Dense d.

Choices and deviations (each pinned by a test in tests/test_expo.py):
  * edited candidates are clipped to [-1, 1] before the critic scores them and before env.step (the code does
    not clip; the env clips anyway, so scoring the clipped action is what is executed); the edit LOSS uses the
    unclipped a + beta_e e as in the code;
  * the pre-training step samples b rows (the code samples b G and uses the last b; the same distribution);
  * the critics use torch's nn.Linear initialisation (the code: xavier-uniform);
  * without --dataset the learner runs purely online (the base policy imitates the online buffer) -- an
    extension the contract tests use; with it, the offline data stay in every minibatch.

Environments: the paper's tasks (AntMaze, Adroit binary, robomimic, MimicGen) are not installable here. The
presets for Hopper-, HalfCheetah- and Walker2d-v5 with the toolkit's generated datasets (default
<env>-medium-replay, edit scale 0.1 from the spec's proposed sweep {0.05, 0.1, 0.3}) are this toolkit's own
extension, not settings from the paper.

Device presets. --device cuda: the authors' settings (UTD 20, N = M = 8, T = 10, denoiser 256/1024 x3,
batch 256, 100 evaluation episodes). CPU (--device cpu, or auto without a GPU) -- so EXPO visibly learns on a
laptop: UTD 2, N = M = 4, T = 5, denoiser 128/512 x2, batch 128, 10 evaluation episodes, 20k pre-training
steps instead of 200k. Every value can still be set by its flag.
"""
from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from algos.sac import OffPolicyConfig, OnlineSetup
from classic_rl.config import parse_config, require, run_cli
from classic_rl.ensemble import EnsembleMLP, soft_update
from classic_rl.sac import (TanhGaussianActor, Temperature, ensemble_critic_loss, random_subset, sac_target,
                            subset_forward, temperature_loss, uniform_actions)
from classic_rl.session import LoopState, RunSession


@dataclass
class EXPOConfig(OffPolicyConfig):
    """EXPO: diffusion base policy + Gaussian edit policy + on-the-fly argmax, online with offline data."""

    dataset: str | None = "hopper-medium-replay"
    """offline dataset kept in every minibatch (its env must be --env); 'none' or '' = purely online"""
    protocol: Literal["from-scratch", "offline-to-online"] = "from-scratch"
    """from-scratch: random warm-up then online with the data (RLPD setting); offline-to-online: diffusion BC
    pre-training on the data, then online with the data kept in the mix"""
    pretrain_steps: int = 200_000
    """diffusion BC steps before going online (offline-to-online only)"""
    utd: int = 20
    """critic steps per env step (the diffusion, edit and temperature steps happen once per env step)"""
    num_qs: int = 10
    """critics in the ensemble"""
    num_min: int = 2
    """size of the random target-critic subset (min over it; 1 for AntMaze in the paper)"""
    layer_norm: bool = True
    """LayerNorm in the critics"""
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    """hidden widths of each critic"""
    target_entropy_scale: float = 0.5
    """edit-policy target entropy -scale * dim(A) (EXPO: 0.5)"""
    diffusion_steps: int = 10
    """T, denoising steps of the base policy"""
    beta_min: float = 0.1
    """VP schedule b_min"""
    beta_max: float = 10.0
    """VP schedule b_max"""
    n_samples: int = 8
    """N, base actions drawn per state by the OTF policy"""
    n_edit: int = 8
    """M <= N, base actions also edited (0 = no edit policy: argmax over base samples only)"""
    edit_scale: float = 0.1
    """beta_e, the bound of the edit |a_e - a| <= beta_e (per dimension)"""
    edit_hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    """hidden widths of the edit policy"""
    denoiser_width: int = 256
    """width of the denoiser's residual stream"""
    denoiser_blocks: int = 3
    """residual blocks of the denoiser (each LayerNorm, Dense 4 x width, swish, Dense width)"""
    diffusion_lr: float = 3e-4
    """AdamW learning rate of the denoiser (cosine-decayed to 0 over --lr-decay-steps)"""
    lr_decay_steps: int = 3_000_000
    """length of the diffusion learning-rate cosine decay (diffusion steps)"""
    ema: float = 0.001
    """EMA rate of the acting/evaluation copy of the denoiser"""
    eval_episodes: int = 10
    """stochastic OTF evaluation episodes (the paper: 100)"""

    def validate(self) -> None:
        if self.dataset in ("none", ""):
            self.dataset = None
        super().validate()
        require(self.diffusion_steps >= 1, f"--diffusion-steps must be >= 1, got {self.diffusion_steps}")
        require(0 < self.beta_min < self.beta_max, "need 0 < --beta-min < --beta-max")
        require(self.n_samples >= 1 and 0 <= self.n_edit <= self.n_samples,
                f"need --n-samples >= 1 and 0 <= --n-edit <= --n-samples, got {self.n_samples}, {self.n_edit}")
        require(self.edit_scale > 0, f"--edit-scale must be positive, got {self.edit_scale}")
        require(self.pretrain_steps >= 0, f"--pretrain-steps must be >= 0, got {self.pretrain_steps}")
        require(self.protocol != "offline-to-online" or self.dataset,
                "--protocol offline-to-online needs a --dataset to pre-train on")
        require(self.denoiser_width > 0 and self.denoiser_blocks >= 0, "--denoiser-width must be positive")
        require(self.diffusion_lr > 0 and self.lr_decay_steps > 0 and 0 < self.ema <= 1,
                "--diffusion-lr, --lr-decay-steps must be positive and --ema in (0, 1]")


ENV_PRESETS = {  # the toolkit's own extension: gymnasium-MuJoCo v5 with its generated datasets
    "hopper": dict(dataset="hopper-medium-replay", edit_scale=0.1),
    "halfcheetah": dict(dataset="halfcheetah-medium-replay", edit_scale=0.1),
    "walker2d": dict(dataset="walker2d-medium-replay", edit_scale=0.1),
}
#: the authors' settings (defaults of EXPOConfig) plus their 100 evaluation episodes
PAPER_PRESET = dict(eval_episodes=100)
#: so that EXPO learns visibly on a laptop CPU (the spec's proposal: UTD 1-2, N = 4, T = 5)
CPU_PRESET = dict(utd=2, n_samples=4, n_edit=4, diffusion_steps=5, denoiser_width=128, denoiser_blocks=2,
                  batch_size=128, eval_episodes=10, pretrain_steps=20_000)


def presets_for(env: str, device: str) -> dict[str, Any]:
    key = env.lower().split("-v")[0]
    out = dict(ENV_PRESETS.get(key, {}))
    out.update(PAPER_PRESET if device == "cuda" else CPU_PRESET)
    return out


# ---------------------------------------------------------------------------------------------- diffusion math
def vp_schedule(T: int, b_min: float = 0.1, b_max: float = 10.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(beta_t, alpha_t, alphabar_t) for t = 0..T-1 (the formula's t' = t + 1), float32."""
    t = torch.arange(1, T + 1, dtype=torch.float64)
    betas = 1 - torch.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T ** 2)
    alphas = 1 - betas
    return betas.float(), alphas.float(), torch.cumprod(alphas, 0).float()


def diffusion_loss(eps_pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """mean_B sum_d (eps_theta - n)^2."""
    return (eps_pred - noise).pow(2).sum(-1).mean()


def noisy_actions(a: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bars: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alphabar_t) a + sqrt(1 - alphabar_t) n, t [B] integer steps."""
    ab = alpha_bars[t].unsqueeze(-1)
    return ab.sqrt() * a + (1 - ab).sqrt() * noise


def ddpm_sample(eps_fn, shape: tuple[int, int], betas: torch.Tensor, alphas: torch.Tensor, alpha_bars: torch.Tensor,
                clip: bool = True, temperature: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """DDPM ancestral sampling: x ~ N(0, I); for t = T-1..0, x <- (x - beta_t / sqrt(1 - alphabar_t) eps_fn(x, t))
    / sqrt(alpha_t) (+ sqrt(beta_t) temperature z if t > 0), clipped to [-1, 1] after every step when `clip`."""
    x = torch.randn(shape, device=device)
    for t in range(betas.shape[0] - 1, -1, -1):
        eps = eps_fn(x, t)
        x = (x - betas[t] / (1 - alpha_bars[t]).sqrt() * eps) / alphas[t].sqrt()
        if t > 0:
            x = x + betas[t].sqrt() * temperature * torch.randn_like(x)
        if clip:
            x = x.clamp(-1.0, 1.0)
    return x


# ---------------------------------------------------------------------------------------------- edit + OTF math
def edit_log_prob(log_prob_e: torch.Tensor, act_dim: int, scale: float) -> torch.Tensor:
    """log density of beta_e e: log pi_e(e|s, a) - d log beta_e."""
    return log_prob_e - act_dim * math.log(scale)


def apply_edit(a: torch.Tensor, e: torch.Tensor, scale: float, clip: bool = True) -> torch.Tensor:
    """a + beta_e e, e in (-1, 1)^d; clipped to [-1, 1] for acting and scoring (not in the edit loss)."""
    out = a + scale * e
    return out.clamp(-1.0, 1.0) if clip else out


def edit_loss(logp: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """mean_B (alpha logp - (1/K) sum_k Q_k(s, a_e)); logp [B], q [K, B, 1]."""
    return (alpha * logp - q.mean(0).squeeze(-1)).mean()


def otf_select(candidates: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """For each state the candidate with the highest score: candidates [B, C, d], scores [B, C] -> [B, d]."""
    best = scores.argmax(1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), best]


# ---------------------------------------------------------------------------------------------- networks
class FourierFeatures(nn.Module):
    """Learnable Fourier features of the step t: [cos(2 pi t W), sin(2 pi t W)], W ~ N(0, 0.2^2)."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim // 2, 1) * 0.2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * t.float().unsqueeze(-1) @ self.w.T
        return torch.cat([f.cos(), f.sin()], -1)


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.silu(self.fc1(self.norm(x))))


class Denoiser(nn.Module):
    """eps_theta(s, x_t, t): [x_t, s, emb(t)] -> Dense width -> residual blocks -> swish -> Dense d.
    The first layer is split by input so a sampling chain projects the state once (`chain`)."""

    def __init__(self, obs_dim: int, act_dim: int, width: int = 256, blocks: int = 3, time_dim: int = 128):
        super().__init__()
        self.time = nn.Sequential(FourierFeatures(time_dim), nn.Linear(time_dim, 2 * time_dim), nn.SiLU(),
                                  nn.Linear(2 * time_dim, 2 * time_dim))
        self.in_x = nn.Linear(act_dim, width)
        self.in_s = nn.Linear(obs_dim, width, bias=False)
        self.in_t = nn.Linear(2 * time_dim, width, bias=False)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.out = nn.Linear(width, act_dim)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(F.silu(self.blocks(h)))

    def forward(self, s: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._head(self.in_x(x) + self.in_s(s) + self.in_t(self.time(t.float())))

    def chain(self, s: torch.Tensor):
        """eps_fn(x, t) for a sampling chain over the states s (state projection and step embeddings cached)."""
        hs = self.in_s(s)
        steps: dict[int, torch.Tensor] = {}

        def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
            if t not in steps:
                steps[t] = self.in_t(self.time(torch.tensor([float(t)], device=x.device)))
            return self._head(self.in_x(x) + hs + steps[t])
        return eps_fn


class Schedule(nn.Module):
    """The noise schedule as buffers (moves with .to(device))."""

    def __init__(self, T: int, b_min: float, b_max: float):
        super().__init__()
        betas, alphas, alpha_bars = vp_schedule(T, b_min, b_max)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alpha_bars", alpha_bars)


class EXPO:
    """The learner: denoiser (+EMA copy), edit policy, temperature, critic ensemble (+targets), optimizers."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: EXPOConfig, device: torch.device):
        self.cfg, self.d, self.device = cfg, act_dim, device
        self.sched = Schedule(cfg.diffusion_steps, cfg.beta_min, cfg.beta_max).to(device)
        self.denoiser = Denoiser(obs_dim, act_dim, cfg.denoiser_width, cfg.denoiser_blocks).to(device)
        self.denoiser_ema = copy.deepcopy(self.denoiser).requires_grad_(False)
        self.edit = TanhGaussianActor(obs_dim + act_dim, act_dim, cfg.edit_hidden).to(device)
        self.temperature = Temperature(cfg.init_temperature).to(device)
        self.critic = EnsembleMLP(cfg.num_qs, obs_dim + act_dim, cfg.critic_hidden, layer_norm=cfg.layer_norm).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_entropy = -cfg.target_entropy_scale * act_dim
        self.diffusion_opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.diffusion_lr, weight_decay=1e-4)
        D = cfg.lr_decay_steps
        self.diffusion_lr = torch.optim.lr_scheduler.LambdaLR(
            self.diffusion_opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, D) / D)))
        self.edit_opt = torch.optim.Adam(self.edit.parameters(), lr=cfg.lr)
        self.temp_opt = torch.optim.Adam(self.temperature.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self._edit_params = list(self.edit.parameters())

    def objects(self) -> dict[str, Any]:
        return {"denoiser": self.denoiser, "denoiser_ema": self.denoiser_ema, "edit": self.edit,
                "temperature": self.temperature, "critic": self.critic, "critic_target": self.critic_target,
                "diffusion_opt": self.diffusion_opt, "diffusion_lr": self.diffusion_lr, "edit_opt": self.edit_opt,
                "temp_opt": self.temp_opt, "critic_opt": self.critic_opt}

    # -- policies (no autograd: values are never back-propagated through the chain)
    @torch.no_grad()
    def base_sample(self, s: torch.Tensor, ema: bool) -> torch.Tensor:
        net = self.denoiser_ema if ema else self.denoiser
        sc = self.sched
        return ddpm_sample(net.chain(s), (s.shape[0], self.d), sc.betas, sc.alphas, sc.alpha_bars, device=s.device)

    @torch.no_grad()
    def otf(self, s: torch.Tensor, ema: bool, generator: torch.Generator | None) -> torch.Tensor:
        """pi_otf(s) for a batch of states [B, obs] -> [B, d]."""
        cfg, B = self.cfg, s.shape[0]
        N, M = cfg.n_samples, cfg.n_edit
        s_rep = s.repeat_interleave(N, 0)                                  # [B*N, obs], state-major
        base = self.base_sample(s_rep, ema).view(B, N, self.d)
        cands = base
        if M > 0:
            s_m = s.repeat_interleave(M, 0)
            a_m = base[:, :M].reshape(B * M, self.d)
            e, _ = self.edit.sample(torch.cat([s_m, a_m], -1))
            cands = torch.cat([base, apply_edit(a_m, e, cfg.edit_scale).view(B, M, self.d)], 1)
        C = cands.shape[1]
        idx = random_subset(cfg.num_qs, cfg.num_min, generator, s.device)
        q = subset_forward(self.critic_target, torch.cat([s.repeat_interleave(C, 0), cands.reshape(B * C, -1)], -1),
                           idx).min(0).values.view(B, C)
        return otf_select(cands, q)

    # -- updates
    def critic_step(self, b: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            a2 = self.otf(b["next_obs"], ema=False, generator=generator)
            idx = random_subset(cfg.num_qs, cfg.num_min, generator, self.device)
            next_q = subset_forward(self.critic_target, torch.cat([b["next_obs"], a2], -1), idx).min(0).values.squeeze(-1)
            y = sac_target(b["rewards"], b["terminated"], next_q, cfg.gamma)
        q = self.critic(torch.cat([b["obs"], b["actions"]], -1))
        loss = ensemble_critic_loss(q, y)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def diffusion_step(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        t = torch.randint(0, self.cfg.diffusion_steps, (s.shape[0],), device=s.device)
        noise = torch.randn_like(a)
        loss = diffusion_loss(self.denoiser(s, noisy_actions(a, t, noise, self.sched.alpha_bars), t), noise)
        self.diffusion_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.diffusion_opt.step()
        self.diffusion_lr.step()
        soft_update(self.denoiser_ema, self.denoiser, self.cfg.ema)
        return loss.detach()

    def edit_step(self, s: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        e, logp_e = self.edit.sample(torch.cat([s, a], -1))
        a_e = apply_edit(a, e, cfg.edit_scale, clip=False)
        logp = edit_log_prob(logp_e, self.d, cfg.edit_scale)
        alpha = self.temperature().detach()
        loss = edit_loss(logp, self.critic(torch.cat([s, a_e], -1)), alpha)
        self.edit_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self._edit_params)
        self.edit_opt.step()
        entropy = -logp.detach().mean()
        t_loss = temperature_loss(self.temperature.log_alpha, entropy, self.target_entropy)
        self.temp_opt.zero_grad(set_to_none=True)
        t_loss.backward()
        self.temp_opt.step()
        return {"edit_loss": loss.detach(), "edit_entropy": entropy, "temperature": alpha}

    def update(self, batch: dict[str, torch.Tensor], utd: int, generator: torch.Generator | None) -> dict[str, Any]:
        b = batch["obs"].shape[0] // utd
        stats: dict[str, Any] = {}
        for g in range(utd):
            mb = {k: v[g * b:(g + 1) * b] for k, v in batch.items()}
            stats = self.critic_step(mb, generator)
        stats["diffusion_loss"] = self.diffusion_step(mb["obs"], mb["actions"])
        if self.cfg.n_edit > 0:
            stats.update(self.edit_step(mb["obs"], mb["actions"]))
        return stats


@dataclass
class PretrainState(LoopState):
    done: int = 0
    last_loss: float = 0.0


def train(cfg: EXPOConfig, argv: Sequence[str] | None = None) -> RunSession:
    run = RunSession(cfg, "expo", argv=argv, log_interval=max(1, cfg.log_every))
    cfg, device = run.cfg, run.device
    setup = OnlineSetup(cfg, run)
    agent = EXPO(setup.obs_dim, setup.act_dim, cfg, device)
    eval_rng = torch.Generator(device=device).manual_seed(cfg.seed + 1)  # OTF subsets of evaluations
    evaluate = setup.make_evaluate(lambda o: agent.otf(o, ema=True, generator=eval_rng))
    o2o = cfg.protocol == "offline-to-online"
    pretrain_total = cfg.pretrain_steps if o2o else 0
    start_steps = 0 if o2o else cfg.start_steps
    pre = PretrainState()
    stats: dict[str, Any] = {}
    with run:
        run.track(**agent.objects(), **setup.objects(), eval_rng=eval_rng, pretrain=pre, evaluate=evaluate)
        if pre.done < pretrain_total:
            print(f"diffusion BC pre-training on {cfg.dataset}: {pretrain_total} steps", file=sys.stderr)
            every = max(1, cfg.checkpoint_every or 0)
            while pre.done < pretrain_total:
                b = setup.offline.sample(cfg.batch_size, setup.rng)
                loss = agent.diffusion_step(b["obs"], b["actions"])
                pre.done += 1
                if pre.done % 1000 == 0 or pre.done == pretrain_total:
                    pre.last_loss = loss.item()
                    run.check_finite(pretrain_diffusion_loss=pre.last_loss)
                    print(f"  pre-training {pre.done}/{pretrain_total}: diffusion loss {pre.last_loss:.4f}",
                          file=sys.stderr)
                if cfg.checkpoint_every and pre.done % every == 0:
                    run.save()
            run.save()
        while run.step < cfg.total_steps:
            obs = setup.obs()
            if run.step < start_steps:
                action = uniform_actions(1, setup.act_dim, setup.rng, device)
            else:
                action = agent.otf(obs, ema=True, generator=setup.rng)
            setup.step(obs, action)
            if run.step + 1 >= start_steps:
                stats = agent.update(setup.batch(cfg.batch_size * cfg.utd), cfg.utd, setup.rng)
            run.advance(1, **stats, **setup.train_stats())
        run.finish(headline=setup.headline(run), dataset=cfg.dataset, protocol=cfg.protocol, utd=cfg.utd,
                   pretrain_steps=pretrain_total)
    return run


def _device_of(argv: Sequence[str]) -> str:
    """The device the presets are for: --device (or --resume's stored one is used by the session), auto ->
    cuda when available."""
    dev = "auto"
    for i, tok in enumerate(argv):
        if tok == "--device" and i + 1 < len(argv):
            dev = argv[i + 1]
        elif tok.startswith("--device="):
            dev = tok.split("=", 1)[1]
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    device = _device_of(argv)
    cfg = parse_config(EXPOConfig, argv, presets=lambda env: presets_for(env, device), prog="python -m algos.expo",
                       description=__doc__, preset_field="env")
    return finish_run(train(cfg, argv).path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
