"""Actor-critic networks: MLP or Nature-CNN trunks, Gaussian / categorical / multi-categorical policies,
a value head and optional extra scalar heads (BPO's median head).

Log-probabilities are written out instead of going through torch.distributions: the per-step rollout
forward is on the hot path, and the distribution objects cost more than the tiny MLP itself.
"""
from __future__ import annotations

import math
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def layer_init(layer: nn.Module, gain: float, ortho: bool = True) -> nn.Module:
    if ortho and isinstance(layer, (nn.Linear, nn.Conv2d)):
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


_FUNCTIONAL = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.ELU: torch.nn.functional.elu}


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Apply a Sequential of Linear/activation modules without nn.Module.__call__ overhead.

    The rollout calls the policy once per env step with a batch of one; there, the hook checks of
    Module.__call__ cost about as much as the matrix products, so hot paths call the functions directly.
    """
    for layer in layers:
        if isinstance(layer, nn.Linear):
            x = torch.nn.functional.linear(x, layer.weight, layer.bias)
        elif type(layer) in _FUNCTIONAL:
            x = _FUNCTIONAL[type(layer)](x)
        else:
            x = layer(x)
    return x


def mlp(in_dim: int, hidden: Sequence[int], activation: str = "tanh", ortho: bool = True,
        hidden_gain: float = math.sqrt(2)) -> tuple[nn.Sequential, int]:
    """Hidden layers only (no output layer); returns the module and its output width."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [layer_init(nn.Linear(in_dim, width), hidden_gain, ortho), ACTIVATIONS[activation]()]
        in_dim = width
    return nn.Sequential(*layers), in_dim


class NatureCNN(nn.Module):
    """Mnih et al. (2015) encoder: uint8 frames [C, 84, 84] -> 512 features."""

    def __init__(self, in_channels: int, features: int = 512, ortho: bool = True):
        super().__init__()
        g = math.sqrt(2)
        self.net = nn.Sequential(
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4), g, ortho), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2), g, ortho), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1), g, ortho), nn.ReLU(), nn.Flatten(),
            layer_init(nn.Linear(3136, features), g, ortho), nn.ReLU())
        self.out_dim = features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float() / 255.0)


class ActorCritic(nn.Module):
    """Policy + value (+ optional named scalar heads on the critic latent).

    Vector observations: separate actor and critic MLPs (as in SB3's MlpPolicy and the BPO code).
    Image observations: one NatureCNN shared by all heads, each head an MLP of `head_hidden` (possibly
    empty) on the CNN features.
    """

    def __init__(self, obs_space: gym.Space, action_space: gym.Space, hidden: Sequence[int] = (64, 64),
                 activation: str = "tanh", ortho_init: bool = True, log_std_init: float = 0.0,
                 head_hidden: Sequence[int] = (), extra_heads: Sequence[str] = (),
                 extra_head_hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.image = len(obs_space.shape) == 3
        obs_dim = int(np.prod(obs_space.shape))
        if self.image:
            self.encoder = NatureCNN(obs_space.shape[0], ortho=ortho_init)
            self.actor_trunk, actor_dim = mlp(self.encoder.out_dim, head_hidden, "relu", ortho_init)
            self.critic_trunk, critic_dim = mlp(self.encoder.out_dim, head_hidden, "relu", ortho_init)
        else:
            self.encoder = nn.Flatten()
            self.actor_trunk, actor_dim = mlp(obs_dim, hidden, activation, ortho_init)
            self.critic_trunk, critic_dim = mlp(obs_dim, hidden, activation, ortho_init)
        self.value_head = layer_init(nn.Linear(critic_dim, 1), 1.0, ortho_init)
        # Extra scalar heads (e.g. BPO's median head) stack an MLP on the critic latent; every layer uses
        # gain 1, following the BPO code.
        self.extra_heads = nn.ModuleDict()
        for name in extra_heads:
            body, dim = mlp(critic_dim, extra_head_hidden, "relu" if not self.image else "relu", ortho_init, 1.0)
            self.extra_heads[name] = nn.Sequential(body, layer_init(nn.Linear(dim, 1), 1.0, ortho_init))

        if isinstance(action_space, gym.spaces.Box):
            self.kind = "gaussian"
            self.action_dim = int(np.prod(action_space.shape))
            self.mean_head = layer_init(nn.Linear(actor_dim, self.action_dim), 0.01, ortho_init)
            self.log_std = nn.Parameter(torch.full((self.action_dim,), float(log_std_init)))
        elif isinstance(action_space, gym.spaces.Discrete):
            self.kind = "categorical"
            self.nvec = [int(action_space.n)]
            self.logits_head = layer_init(nn.Linear(actor_dim, int(action_space.n)), 0.01, ortho_init)
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            self.kind = "multicategorical"
            self.nvec = [int(n) for n in np.asarray(action_space.nvec).reshape(-1)]
            self.logits_head = layer_init(nn.Linear(actor_dim, sum(self.nvec)), 0.01, ortho_init)
        else:
            raise ValueError(f"unsupported action space {action_space}")

    # -- pieces ---------------------------------------------------------------------------------------
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs) if self.image or obs.dim() != 2 else obs

    def features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(obs)
        return run_layers(self.actor_trunk, z), run_layers(self.critic_trunk, z)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self._linear(self.value_head, run_layers(self.critic_trunk, self.encode(obs))).squeeze(-1)

    @staticmethod
    def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, layer.weight, layer.bias)

    def _log_prob_entropy(self, actor_latent: torch.Tensor, actions: torch.Tensor):
        if self.kind == "gaussian":
            mean = self._linear(self.mean_head, actor_latent)
            log_std = self.log_std.expand_as(mean)
            z = (actions - mean) * torch.exp(-log_std)
            log_prob = (-0.5 * z.pow(2) - log_std - LOG_SQRT_2PI).sum(-1)
            entropy = (0.5 + LOG_SQRT_2PI + log_std).sum(-1)
            return log_prob, entropy
        logits = self._linear(self.logits_head, actor_latent)
        log_prob = torch.zeros(actions.shape[0], device=logits.device)
        entropy = torch.zeros_like(log_prob)
        acts = actions.long().reshape(actions.shape[0], -1)
        for i, chunk in enumerate(torch.split(logits, self.nvec, dim=-1)):
            logp = torch.log_softmax(chunk, -1)
            log_prob = log_prob + logp.gather(-1, acts[:, i:i + 1]).squeeze(-1)
            entropy = entropy - (logp.exp() * logp).sum(-1)
        return log_prob, entropy

    # -- the two calls the algorithms make ------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False):
        """Sample (or take the mode of) the policy: returns actions, their log-probs and V(obs)."""
        actor_latent, critic_latent = self.features(obs)
        value = self._linear(self.value_head, critic_latent).squeeze(-1)
        if self.kind == "gaussian":
            mean = self._linear(self.mean_head, actor_latent)
            if deterministic:
                return mean, torch.zeros(mean.shape[0], device=mean.device), value
            std = self.log_std.exp()
            noise = torch.randn_like(mean)
            actions = mean + std * noise
            log_prob = (-0.5 * noise.pow(2) - self.log_std - LOG_SQRT_2PI).sum(-1)
            return actions, log_prob, value
        logits = self._linear(self.logits_head, actor_latent)
        chunks = torch.split(logits, self.nvec, dim=-1)
        if deterministic:
            actions = torch.stack([c.argmax(-1) for c in chunks], -1)
        else:
            actions = torch.stack([torch.multinomial(torch.softmax(c, -1), 1).squeeze(-1) for c in chunks], -1)
        log_prob = sum(torch.log_softmax(c, -1).gather(-1, actions[:, i:i + 1]).squeeze(-1)
                       for i, c in enumerate(chunks))
        if self.kind == "categorical":
            actions = actions.squeeze(-1)
        return actions, log_prob, value

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Differentiable log-prob, entropy, value and extra heads for a minibatch."""
        actor_latent, critic_latent = self.features(obs)
        log_prob, entropy = self._log_prob_entropy(actor_latent, actions)
        out = {"log_prob": log_prob, "entropy": entropy,
               "value": self._linear(self.value_head, critic_latent).squeeze(-1)}
        for name, head in self.extra_heads.items():
            out[name] = run_layers(head, critic_latent).squeeze(-1)
        return out
