"""A reusable SAC core: tanh-Gaussian actor, a batched critic ensemble with random-subset min targets,
automatic temperature, Polyak targets, and symmetric offline/online minibatches (RLPD, Ball et al. 2023).

Equations (d = dim(A); actions live in [-1, 1]^d, entry points rescale to the env's box):

    actor      u ~ N(mu(s), sigma(s)^2),  a = tanh(u),  log sigma clipped to [-20, 2]
               log pi(a|s) = sum_i [ log N(u_i; mu_i, sigma_i^2) - log(1 - tanh(u_i)^2) ]
               with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))   (the numerically stable form)
    target     S = random subset of size m (`num_min`) of the K (`num_qs`) target critics, drawn per update
               y = r + gamma (1 - terminated) [ min_{k in S} Qbar_k(s', a') - alpha log pi(a'|s') ],  a' ~ pi(.|s')
               (the entropy term only with backup_entropy; time-limit truncation keeps the bootstrap)
    critic     L_Q = mean_{k, B} (Q_k(s, a) - y)^2                           (mean over members and rows)
    actor      L_pi = mean_B [ alpha log pi(a~|s) - (1/K) sum_k Q_k(s, a~) ],  a~ ~ pi(.|s) reparameterised
    temperature  H = -mean_B log pi(a~|s) (from the actor step, no gradient);  L_alpha = alpha (H - H_target),
               alpha = exp(log_alpha); the gradient in log_alpha is alpha (H - H_target)
    targets    Qbar <- (1 - tau) Qbar + tau Q after every critic step

One `SAC.update` on a [G * b] batch (G = utd): G critic steps on consecutive b-row slices, then one actor
and one temperature step on the last slice -- RLPD's `SACLearner.update` (github.com/ikostrikov/rlpd @ c90fd4b,
rlpd/agents/sac/sac_learner.py), which we follow: the critic loss is a mean over members (not a sum), the
actor uses the mean of all K critics, the temperature loss is alpha (H - H_target) (not SB3's
-log_alpha (log pi + H_target)), and only the m subset members of the target ensemble are evaluated.
RLPD's defaults: target entropy -d/2, initial temperature 1, Adam 3e-4 everywhere, 256-256 MLPs, K = 10,
m = 2 and LayerNorm critics (configs/rlpd_config.py). Differences: torch's nn.Linear initialisation instead
of Flax's xavier-uniform.

The K critics are one `classic_rl.ensemble.EnsembleMLP` (one batched matmul per layer for all members);
`subset_forward` evaluates only the chosen members by indexing the stacked weights.

Symmetric sampling (`mixed_batch`): b*G/2 rows from the offline buffer and b*G/2 from the online buffer,
interleaved row by row, so every b-row slice is half offline, half online (RLPD's `combine`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from classic_rl.buffers import ReplayBuffer
from classic_rl.ensemble import EnsembleMLP, adam_step, ensemble_linear, soft_update

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


# ---------------------------------------------------------------------------------------------- pure math
def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(u), u ~ N(mean, exp(log_std)^2), summed over the last dim: the Gaussian log
    density of u minus log|da/du| = sum log(1 - tanh(u)^2) = sum 2 (log 2 - u - softplus(-2u))."""
    gauss = -0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - _HALF_LOG_2PI
    log_det = 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))
    return (gauss - log_det).sum(-1)


def sac_target(rewards: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float,
               next_log_prob: torch.Tensor | None = None, alpha: torch.Tensor | float = 0.0) -> torch.Tensor:
    """y = r + gamma (1 - terminated) (next_q - alpha log pi(a'|s')); next_q [B] (already the subset min);
    without `next_log_prob` no entropy term (backup_entropy off)."""
    soft = next_q if next_log_prob is None else next_q - alpha * next_log_prob
    return rewards + gamma * (~terminated).to(next_q.dtype) * soft


def ensemble_critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over members and rows of (Q_k(s, a) - y)^2; q [K, B, 1], target [B]."""
    return (q.squeeze(-1) - target.unsqueeze(0)).pow(2).mean()


def sac_actor_loss(log_prob: torch.Tensor, q_pi: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """mean_B [alpha log pi(a~|s) - mean_k Q_k(s, a~)]; log_prob [B], q_pi [K, B, 1]."""
    return (alpha * log_prob - q_pi.mean(0).squeeze(-1)).mean()


def temperature_loss(log_alpha: torch.Tensor, entropy: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """alpha (H - H_target) with alpha = exp(log_alpha) and H an estimate of the entropy (no gradient)."""
    return log_alpha.exp() * (entropy.detach() - target_entropy)


def random_subset(n_members: int, m: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """m distinct member indices drawn uniformly (REDQ/RLPD's subsample_ensemble), on `device`."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n_members, generator=generator, device=gen_device)[:m].to(device)


def subset_min(q: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """min over the members `idx` of q [K, B, 1] -> [B]."""
    return q.index_select(0, idx).min(0).values.squeeze(-1)


def subset_forward(net: EnsembleMLP, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The members `idx` of an EnsembleMLP evaluated on x [B, in] (equals net(x)[idx], computing only those
    members: their stacked weights are indexed, then one batched matmul per layer)."""
    h = x.unsqueeze(0).expand(idx.shape[0], *x.shape)
    for i, layer in enumerate(net.hidden):
        h = torch.baddbmm(layer.bias.index_select(0, idx), h, layer.weight.index_select(0, idx))
        if net.norms is not None:
            norm = net.norms[i]
            h = torch.addcmul(norm.bias.index_select(0, idx), F.layer_norm(h, h.shape[-1:], eps=norm.eps),
                              norm.weight.index_select(0, idx))
        h = net.act(h)
    return ensemble_linear(h, net.out.weight.index_select(0, idx), net.out.bias.index_select(0, idx))


def interleave(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rows alternate first[0], second[0], first[1], ... (both batches have the same length)."""
    return {k: torch.stack([first[k], second[k]], 1).reshape(-1, *first[k].shape[1:]) for k in first}


def mixed_batch(offline: ReplayBuffer | None, online: ReplayBuffer, n: int, generator: torch.Generator | None = None,
                offline_ratio: float = 0.5) -> dict[str, torch.Tensor]:
    """n rows: with an offline buffer and offline_ratio 0.5, n/2 offline and n/2 online rows interleaved (every
    even-length slice is half and half); otherwise n online rows. Sampling stays on the buffers' device."""
    if offline is None or offline_ratio <= 0:
        return online.sample(n, generator)
    if offline_ratio != 0.5:
        k = int(round(n * offline_ratio))
        a, b = offline.sample(k, generator), online.sample(n - k, generator)
        return {key: torch.cat([a[key], b[key]]) for key in a}
    return interleave(offline.sample(n // 2, generator), online.sample(n - n // 2, generator))


# ---------------------------------------------------------------------------------------------- modules
class TanhGaussianActor(nn.Module):
    """in -> hidden (ReLU) -> (mean, log_std in [-20, 2]) -> tanh; `sample` returns (action, log_prob)."""

    def __init__(self, in_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(in_dim, hidden_sizes, 2 * act_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, -1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, x: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self(x)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


class Temperature(nn.Module):
    """alpha = exp(log_alpha), a learnable scalar."""

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init)))

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


@dataclass
class SACSettings:
    """The numbers of one SAC learner (entry points fill it from their config)."""

    actor_hidden: Sequence[int] = (256, 256)
    critic_hidden: Sequence[int] = (256, 256)
    num_qs: int = 2
    num_min: int = 2
    layer_norm: bool = False
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_temperature: float = 1.0
    target_entropy: float | None = None  # None: -dim(A)
    backup_entropy: bool = True


class SAC:
    """Actor, critic ensemble, target ensemble, temperature and their Adam optimizers, with the update.

    `update(batch, utd, generator)`: G = utd critic steps on consecutive slices, then one actor and one
    temperature step on the last slice. `objects()` are the stateful pieces for RunSession.track.
    `next_action` may be replaced (EXPO's on-the-fly policy): a function (next_obs, subset idx) ->
    (next actions, log-probs or None)."""

    def __init__(self, obs_dim: int, act_dim: int, s: SACSettings, device: torch.device | str = "cpu"):
        if not 1 <= s.num_min <= s.num_qs:
            raise ValueError(f"num_min must be in [1, num_qs={s.num_qs}], got {s.num_min}")
        self.s, self.act_dim, self.device = s, act_dim, torch.device(device)
        self.actor = TanhGaussianActor(obs_dim, act_dim, s.actor_hidden).to(device)
        self.critic = EnsembleMLP(s.num_qs, obs_dim + act_dim, s.critic_hidden, layer_norm=s.layer_norm).to(device)
        self.critic_target = EnsembleMLP(s.num_qs, obs_dim + act_dim, s.critic_hidden,
                                         layer_norm=s.layer_norm).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.temperature = Temperature(s.init_temperature).to(device)
        self.target_entropy = -float(act_dim) if s.target_entropy is None else float(s.target_entropy)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=s.lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=s.lr, fused=True)
        self.temp_opt = torch.optim.Adam(self.temperature.parameters(), lr=s.lr, fused=True)
        self._critic_params = list(self.critic.parameters())
        self._actor_params = list(self.actor.parameters())

    def objects(self) -> dict[str, Any]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "temperature": self.temperature, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt,
                "temp_opt": self.temp_opt}

    # -- pieces
    def q(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.critic(torch.cat([obs, actions], -1))

    def target_q_min(self, obs: torch.Tensor, actions: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """min over the target members `idx` of Qbar_k(obs, actions) -> [B]."""
        return subset_forward(self.critic_target, torch.cat([obs, actions], -1), idx).min(0).values.squeeze(-1)

    def next_action(self, next_obs: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.actor.sample(next_obs)

    def critic_step(self, b: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        s = self.s
        with torch.no_grad():
            idx = random_subset(s.num_qs, s.num_min, generator, self.device)
            next_a, next_logp = self.next_action(b["next_obs"], idx)
            next_q = self.target_q_min(b["next_obs"], next_a, idx)
            y = sac_target(b["rewards"], b["terminated"], next_q, s.gamma,
                           next_logp if s.backup_entropy and next_logp is not None else None,
                           self.temperature().detach())
        q = self.q(b["obs"], b["actions"])
        loss = ensemble_critic_loss(q, y)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        adam_step(self.critic_opt)
        soft_update(self.critic_target, self.critic, s.tau)
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def actor_step(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        a, logp = self.actor.sample(obs)
        alpha = self.temperature().detach()
        loss = sac_actor_loss(logp, self.q(obs, a), alpha)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self._actor_params)  # only the actor's gradients
        adam_step(self.actor_opt)
        entropy = -logp.detach().mean()
        t_loss = temperature_loss(self.temperature.log_alpha, entropy, self.target_entropy)
        self.temp_opt.zero_grad(set_to_none=True)
        t_loss.backward()
        adam_step(self.temp_opt)
        return {"actor_loss": loss.detach(), "entropy": entropy, "temperature": alpha,
                "temperature_loss": t_loss.detach()}

    def update(self, batch: dict[str, torch.Tensor], utd: int, generator: torch.Generator | None = None,
               actor: bool = True) -> dict[str, torch.Tensor]:
        n = batch["obs"].shape[0]
        if n % utd:
            raise ValueError(f"batch of {n} rows does not split into utd={utd} slices")
        b = n // utd
        stats: dict[str, torch.Tensor] = {}
        for g in range(utd):
            mb = {k: v[g * b:(g + 1) * b] for k, v in batch.items()}
            stats = self.critic_step(mb, generator)
        if actor:
            stats.update(self.actor_step(mb["obs"]))
        return stats


def uniform_actions(n: int, act_dim: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """Uniform actions in [-1, 1]^d (random warm-up), drawn with `generator` on its device."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return (torch.rand((n, act_dim), generator=generator, device=gen_device) * 2 - 1).to(device)


def to_env_action(a: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the env's box: low + (a + 1) (high - low) / 2."""
    return low + (a + 1.0) * 0.5 * (high - low)


ActFn = Callable[[torch.Tensor], torch.Tensor]
