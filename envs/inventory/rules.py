"""Classical order rules as pure tensor functions (base-stock, echelon-stock).

They are shared by the optimum computations (optimal.py) and the trainable policy classes
(envs/inventory/policies.py), so the reference policy and the learned baseline are the same code.
"""
from __future__ import annotations

import torch

from envs.inventory.settings import Network


def base_stock_orders(x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Order up to `levels` (S,) for stores without upstream: q_i = max(S_i - inventory position_i, 0).

    x: (N, S, K) store inventory vectors; returns (N, S)."""
    return (levels - x.sum(-1)).clamp(min=0)


def echelon_levels(increments: torch.Tensor) -> torch.Tensor:
    """Echelon levels from non-negative increments v (upstream -> downstream order of locations):
    the store's level is v_0 and each location upstream adds the next increment (spec 1(c).2)."""
    return torch.flip(torch.cumsum(increments, 0), [0])


def echelon_stock_orders(net: Network, x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Serial-system echelon base-stock orders. levels: (n_loc,) echelon levels, upstream first.

    Order of location k = max(S_k - echelon inventory position_k, 0), capped by the on-hand stock of its
    upstream neighbour (the top location orders from the unlimited supplier). Returns (N, n_loc) orders,
    which are also the edge quantities because edge k feeds location k in a serial network."""
    position = x.sum(-1)                                          # (N, n_loc)
    echelon_position = torch.flip(torch.cumsum(torch.flip(position, [1]), 1), [1])
    desired = (levels - echelon_position).clamp(min=0)
    upstream_on_hand = x[:, :-1, 0]
    capped = torch.minimum(desired[:, 1:], upstream_on_hand)
    return torch.cat([desired[:, :1], capped], dim=1)
