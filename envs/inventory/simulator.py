"""Batched, differentiable inventory-network simulator (functional core; spec 1(b).1).

State x: (N, n_loc, K). x[..., 0] is on-hand stock at the start of the period (after arrivals), x[..., j]
the units arriving in j periods. Orders q: (N, n_edges), one quantity per order edge. Every operation is a
tensor op over paths and locations (edge routing is a matrix product), so the only Python loop in a
rollout is over time periods, and the whole computation graph is differentiable in q.

One period:
  1. edges with lead time 0 deliver at once (they serve this period's demand);
  2. post = on-hand - shipments out - demand (demand only at stores); lost sales clamp stores at 0;
  3. cost = sum h * max(post, 0) + p * max(-post, 0) (stores) + edge costs * q
     (profit settings: -p * min(on-hand, demand) + holding);
  4. x'[0] = post + x[1], slots shift down, and an order with lead time L >= 1 lands in slot L-1 of x'
     (so it is on hand L periods later and covers demand of periods t..t+L).

Fused form used by `step` (one matrix per effect, built once per network by `routing`):
  post = x[0] + q @ (A_now - S_out) - d,   A_now[e, l] = 1 if edge e has lead 0 into l, S_out[e, l] = 1 if e
  ships out of l;  cost = max(post, 0) @ h + max(-post, 0) @ p + q @ c;  x' = shift(x) + post e_0 + q @ A_later.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from envs.inventory.settings import Network, Scenarios


@dataclass
class Routing:
    """Edge -> location matrices of one network (built once per network, device and dtype)."""

    arrive_now: torch.Tensor   # (n_edges, n_loc): lead-time-0 edges add to the receiver's on-hand now
    arrive_later: torch.Tensor  # (n_edges, n_loc*K): lead time L >= 1 -> receiver slot L-1 next period
    ship_out: torch.Tensor     # (n_edges, n_loc): internal edges take stock from their source
    is_store: torch.Tensor     # (n_loc,) bool
    underage: torch.Tensor     # (n_loc,) p at stores, 0 elsewhere
    holding: torch.Tensor      # (n_loc,)
    edge_cost: torch.Tensor    # (n_edges,)
    net_now: torch.Tensor      # (n_edges, n_loc): arrive_now - ship_out, the on-hand change of this period
    moves_now: bool = True     # False: no edge changes on-hand within the period (one-store settings)
    edge_costs: bool = True    # False: every edge cost is 0 (its product is skipped)
    all_stores: bool = False   # every location is a store (no torch.where for the lost-sales clamp)


def routing(net: Network, dtype=None) -> Routing:
    dtype = dtype or net.holding.dtype
    dev, n_loc, k = net.device, net.n_locations, net.slots
    edges = torch.arange(net.n_edges, device=dev)
    lead, dst, src = net.edge_lead.to(dev), net.edge_dst.to(dev), net.edge_src.to(dev)
    arrive_now = torch.zeros(net.n_edges, n_loc, dtype=dtype, device=dev)
    arrive_now[edges[lead == 0], dst[lead == 0]] = 1
    arrive_later = torch.zeros(net.n_edges, n_loc * k, dtype=dtype, device=dev)
    later = lead >= 1
    arrive_later[edges[later], dst[later] * k + lead[later] - 1] = 1
    ship_out = torch.zeros(net.n_edges, n_loc, dtype=dtype, device=dev)
    internal = src >= 0
    ship_out[edges[internal], src[internal]] = 1
    is_store = torch.arange(n_loc, device=dev) >= net.first_store
    underage = F.pad(net.underage.to(dtype), (net.first_store, 0))
    net_now = arrive_now - ship_out
    return Routing(arrive_now, arrive_later, ship_out, is_store, underage, net.holding.to(dtype),
                   net.edge_cost.to(dtype), net_now, moves_now=bool(net_now.any()),
                   edge_costs=bool(net.edge_cost.any()), all_stores=net.first_store == 0)


def step(net: Network, route: Routing, x: torch.Tensor, q: torch.Tensor, demand: torch.Tensor):
    """One period for all paths: x (N, n_loc, K), q (N, n_edges), demand (N, S).

    Returns (next state, cost per path (N,), post-period stock (N, n_loc)); the post-period stock of
    upstream locations is negative only if the policy shipped more than it had (see `rollout`)."""
    n, n_loc, k = x.shape
    demand_all = F.pad(demand, (net.first_store, 0)) if net.first_store else demand
    post = x[..., 0] + q @ route.net_now - demand_all if route.moves_now else x[..., 0] - demand_all
    holding_cost = post.clamp(min=0) @ route.holding
    if net.profit:
        sales = torch.minimum(x[..., 0] + q @ route.arrive_now, demand_all)
        stage = holding_cost - sales @ route.underage
    else:
        stage = holding_cost + (-post).clamp(min=0) @ route.underage
    if net.lost_sales:
        post = post.clamp(min=0) if route.all_stores else torch.where(route.is_store, post.clamp(min=0), post)
    if route.edge_costs:
        stage = stage + q @ route.edge_cost
    # slots shift down by one; this period's leftover joins what arrives next period (slot 0)
    x_next = F.pad(x[..., 1:], (0, 1)) + (q @ route.arrive_later).view(n, n_loc, k)
    x_next[..., 0] += post
    return x_next, stage, post


Policy = Callable[[torch.Tensor, int], torch.Tensor]


class InfeasibleShipment(RuntimeError):
    """A policy shipped more stock out of a location than it had on hand."""


def rollout(net: Network, policy: Policy, scen: Scenarios, route: Routing | None = None,
            round_actions: bool = False, check_feasible: bool = True, tol: float = 1e-4) -> torch.Tensor:
    """Simulate all scenarios for their full horizon; returns the cost of every (path, period): (N, T).

    `policy(x, t)` maps the state to orders (N, n_edges). Feasibility belongs to the policy; we only track
    the most negative upstream post-period stock and raise once at the end (one host sync per rollout,
    not per step), because negative warehouse stock would silently make the cost better (spec pitfall 4).
    """
    route = route or routing(net, scen.demand.dtype)
    x, costs = scen.initial, []
    worst = torch.zeros((), dtype=x.dtype, device=x.device)
    upstream = net.first_store
    for t, demand in enumerate(scen.demand.unbind(2)):   # one op for all periods' demand views
        q = policy(x, t)
        if round_actions:
            q = torch.round(q)
        x, cost, post = step(net, route, x, q, demand)
        costs.append(cost)
        if check_feasible and upstream:
            worst = torch.minimum(worst, post[:, :upstream].min().detach())
    if check_feasible and upstream and worst.item() < -tol * (1 + float(net.demand_mean.sum())):
        raise InfeasibleShipment(f"policy shipped more than an upstream location held (stock {worst.item():.4g})")
    return torch.stack(costs, dim=1)


def reported_cost(net: Network, costs: torch.Tensor, ignore_periods: int) -> torch.Tensor:
    """Average cost per period per store over periods t >= ignore_periods (the reported metric)."""
    return costs[:, ignore_periods:].mean() / net.n_stores


def training_loss(net: Network, costs: torch.Tensor) -> torch.Tensor:
    """HDPO loss: total cost over ALL periods (warm-up included) / (paths * periods * stores)."""
    return costs.mean() / net.n_stores
