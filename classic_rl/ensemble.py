"""An ensemble of MLPs evaluated as one batched module (twin critics, SAC/RLPD critic ensembles).

Member k computes h_{l+1} = act(h_l W_{k,l} + b_{k,l}); the E members' weights are stacked into one
[E, in, out] tensor per layer, so a forward pass is one batched matmul (`torch.baddbmm`) per layer instead of
a Python loop over E networks. Each member is initialised like torch's nn.Linear (uniform +-1/sqrt(fan_in))
from the global torch RNG, so an ensemble of E members starts as E independent networks.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "elu": nn.functional.elu}


class EnsembleLinear(nn.Module):
    def __init__(self, n_members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """x: [E', B, in] -> [E', B, out] for the members selected by `members` (all by default)."""
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate gain and bias per member (as E separate nn.LayerNorm would have)."""

    def __init__(self, n_members: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        return torch.addcmul(self.bias[members], nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps),
                             self.weight[members])


class EnsembleMLP(nn.Module):
    """E independent MLPs in_dim -> hidden... -> out_dim, optional LayerNorm after each hidden linear layer
    (RLPD's critics), evaluated together. Input [B, in] (shared by all members) or [E, B, in]."""

    def __init__(self, n_members: int, in_dim: int, hidden_sizes: Sequence[int], out_dim: int = 1,
                 activation: str = "relu", layer_norm: bool = False):
        super().__init__()
        self.n_members = n_members
        dims = [in_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(EnsembleLinear(n_members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(EnsembleLayerNorm(n_members, b) for b in dims[1:]) if layer_norm else None
        self.out = EnsembleLinear(n_members, dims[-1], out_dim)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """[B, in] or [E', B, in] -> [E', B, out]; `members` selects a subset (TD3's actor loss needs only
        Q_1: `members=slice(0, 1)` computes one member instead of all)."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(len(range(self.n_members)[members]), *x.shape)
        for i, layer in enumerate(self.hidden):
            x = layer(x, members)
            if self.norms is not None:
                x = self.norms[i](x, members)
            x = self.act(x)
        return self.out(x, members)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging target <- (1 - tau) target + tau source, one fused op over all parameters."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
