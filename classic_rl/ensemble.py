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
ALL = slice(None)
"""`members` default: every member. Then the stacked parameters are used as they are, not through a slice view
(autograd's backward of a slice allocates a zeroed full-size gradient and copies into it: one fill and one copy
of every weight per backward pass, ~10% of a TD3+BC gradient step on CPU)."""


def ensemble_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x [E, B, in] @ weight [E, in, out] + bias [E, 1, out], one batched matmul (`torch.baddbmm`). On CPU a
    width-1 output (a critic's Q head) is a multiply and a sum over `in` instead: there the batched matmul is a
    batched matrix-vector product and its backward a K = 1 outer product, which MKL's batched gemm runs 5-15x
    slower than these elementwise ops (about 3 ms of a 10-critic SAC step at batch 256). The same function,
    summed in another order (float rounding differs from the matmul's)."""
    if weight.shape[-1] == 1 and x.device.type == "cpu":
        return (x * weight.transpose(-1, -2)).sum(-1, keepdim=True) + bias
    return torch.baddbmm(bias, x, weight)


class EnsembleLinear(nn.Module):
    def __init__(self, n_members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: slice = ALL) -> torch.Tensor:
        """x: [E', B, in] -> [E', B, out] for the members selected by `members` (all by default)."""
        if members == ALL:
            return ensemble_linear(x, self.weight, self.bias)
        return ensemble_linear(x, self.weight[members], self.bias[members])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate gain and bias per member (as E separate nn.LayerNorm would have)."""

    def __init__(self, n_members: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor, members: slice = ALL) -> torch.Tensor:
        bias, weight = (self.bias, self.weight) if members == ALL else (self.bias[members], self.weight[members])
        return torch.addcmul(bias, nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps), weight)


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

    def forward(self, x: torch.Tensor, members: slice = ALL) -> torch.Tensor:
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


def adam_step(opt: torch.optim.Optimizer) -> None:
    """`opt.step()` of a plain fused torch Adam (one param group; no amsgrad, weight decay, maximize or hooks)
    as the very kernel call Adam.step makes (`_foreach_add_` of the step counters, then `_fused_adam_` with the
    group's lr / betas / eps), without Optimizer.step's per-call Python bookkeeping: the same numbers, and the
    optimizer's state stays where state_dict() / load_state_dict() find it. Anything else -- another
    optimizer, a state not created yet (the first step), a missing gradient, a tensor lr -- goes to opt.step()."""
    from torch.optim import optimizer as _optim

    group = opt.param_groups[0]
    if (type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1 or not group.get("fused")
            or group["amsgrad"] or group["weight_decay"] or group["maximize"] or group.get("decoupled_weight_decay")
            or group.get("differentiable") or not isinstance(group["lr"], float)
            or not all(isinstance(b, float) for b in group["betas"])
            or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
            or _optim._global_optimizer_pre_hooks or _optim._global_optimizer_post_hooks):
        opt.step()
        return
    params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
    first = group["params"][0]
    for p in group["params"]:
        state = opt.state.get(p)
        if (p.grad is None or not state or p.grad.is_sparse or p.device != first.device or p.dtype != first.dtype
                or state["step"].device != p.device):
            opt.step()
            return
        params.append(p)
        grads.append(p.grad)
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
        steps.append(state["step"])
    with torch.no_grad():
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                           beta1=group["betas"][0], beta2=group["betas"][1], weight_decay=0.0, eps=group["eps"],
                           maximize=False, grad_scale=None, found_inf=None)
