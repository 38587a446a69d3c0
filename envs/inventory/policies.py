"""Deterministic inventory policies for HDPO (spec 1(c).2), each ending in its feasibility layer.

Every policy maps the state x (N, n_loc, K) to orders q (N, n_edges) on the network's order edges
(supplier edges first, then internal edges), with q >= 0 and shipments out of a location never above its
on-hand stock (the simulator does not clip: feasibility belongs to the policy).

* BaseStock / CappedBaseStock: one level (and cap) per store, for networks without upstream locations.
* EchelonStock: serial systems (Clark-Scarf optimal class).
* VanillaMLP: MLP on all inventory vectors -> one output per edge.
* SymmetryAware (v2): one store net shared by all stores + a context net + a warehouse net.
* GNN (v3): edge-based message passing on the torch-geometric supply graph; its weights do not depend on
  the number of stores, so one model runs on any network (`set_network`).

Input scaling [proposed; the spec does not say the authors scale inputs]: the neural policies see inventory
divided by the mean store demand. Raw inventories (tens to hundreds under backlog) saturate the softplus
output early; measured on S1 (L=1, p=4, seed 1, lr 1e-2, 150 full-batch steps): dev cost 27.4 raw (stuck,
orders 0 above 5 units) vs 3.17 scaled (optimum 3.167).
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.utils import scatter, softmax as group_softmax

from envs.inventory.graph import message_passing_rounds, supply_graph
from envs.inventory.rules import base_stock_orders, echelon_levels, echelon_stock_orders
from envs.inventory.settings import Network

POLICIES = ["mlp", "base_stock", "capped_base_stock", "echelon_stock", "symmetry_aware", "gnn"]


def mlp(in_dim: int, hidden: list[int], out_dim: int, act=nn.ELU) -> nn.Sequential:
    layers, last = [], in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), act()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class EdgeLayout(nn.Module):
    """Index tensors of a network's order edges, as buffers so they follow `.to(device)`."""

    def __init__(self, net: Network):
        super().__init__()
        src, dst = net.edge_src, net.edge_dst
        self.n_edges, self.ship_all, self.first_store = net.n_edges, net.ship_all, net.first_store
        self.register_buffer("supplier_to_store", ((src < 0) & (dst >= net.first_store)).nonzero().flatten())
        self.register_buffer("supplier_to_upstream", ((src < 0) & (dst < net.first_store)).nonzero().flatten())
        self.register_buffer("internal", (src >= 0).nonzero().flatten())
        self.register_buffer("internal_src", src[src >= 0])
        self.register_buffer("upstream_cap", 4.0 * net.demand_mean.sum().reshape(1))  # U = 4 x sum of mu
        sources = torch.unique(src[src >= 0])
        self.register_buffer("sources", sources)
        self.register_buffer("input_scale", 1.0 / net.demand_mean.mean().reshape(1))


def feasible_orders(layout: EdgeLayout, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Vanilla feasibility layer: logits (N, n_edges) -> orders.

    * supplier -> store: softplus(o + 1) (the +1 keeps early orders positive, spec pitfall 8);
    * supplier -> warehouse/echelon: sigmoid(o) x U, U = 4 x total mean demand;
    * internal edges: softmax over [the source's edge logits, a constant "keep" logit 1] x source on-hand,
      the keep share dropped (transshipment: no keep share, all stock shipped). For a serial link this is
      sigmoid(o - 1) x upstream on-hand, the spec's sigmoid rule up to a bias shift."""
    q = torch.zeros_like(logits)
    q[:, layout.supplier_to_store] = F.softplus(logits[:, layout.supplier_to_store] + 1)
    q[:, layout.supplier_to_upstream] = torch.sigmoid(logits[:, layout.supplier_to_upstream]) * layout.upstream_cap
    if layout.internal.numel():
        index = layout.internal_src
        edge_logits = logits[:, layout.internal]
        if not layout.ship_all:
            index = torch.cat([index, layout.sources])
            edge_logits = torch.cat([edge_logits, torch.ones_like(edge_logits[:, :len(layout.sources)])], 1)
        share = group_softmax(edge_logits, index, dim=1)[:, :layout.internal.numel()]
        q[:, layout.internal] = share * x[:, layout.internal_src, 0].clamp(min=0)
    return q


class BaseStock(nn.Module):
    """Order up to a learnable level per store, S = softplus(b), b initialised to 10 (spec)."""

    def __init__(self, net: Network, init: float = 10.0):
        super().__init__()
        if net.first_store != 0:
            raise ValueError("base-stock policy is for networks of independent stores (no warehouse)")
        self.raw = nn.Parameter(torch.full((net.n_stores,), init))

    def levels(self) -> torch.Tensor:
        return F.softplus(self.raw)

    def forward(self, x, t):
        return base_stock_orders(x, self.levels())


class CappedBaseStock(BaseStock):
    """Capped base stock (S2 heuristic): q = clip(S - inventory position, 0, cap)."""

    def __init__(self, net: Network, init: float = 10.0):
        super().__init__(net, init)
        self.raw_cap = nn.Parameter(torch.full((net.n_stores,), init))

    def forward(self, x, t):
        return torch.minimum(base_stock_orders(x, self.levels()), F.softplus(self.raw_cap))


class EchelonStock(nn.Module):
    """Echelon base-stock levels from increments v = softplus(u + 10), store level v_0 (spec)."""

    def __init__(self, net: Network):
        super().__init__()
        if net.n_stores != 1 or net.n_edges != net.n_locations:
            raise ValueError("echelon-stock policy is for serial systems")
        self.net = net
        self.raw = nn.Parameter(torch.zeros(net.n_locations))

    def levels(self):
        return echelon_levels(F.softplus(self.raw + 10))

    def forward(self, x, t):
        return echelon_stock_orders(self.net, x, self.levels())


class VanillaMLP(nn.Module):
    """MLP on the concatenated inventory vectors of all locations, one output per order edge."""

    def __init__(self, net: Network, hidden: list[int]):
        super().__init__()
        self.layout = EdgeLayout(net)
        self.body = mlp(net.n_locations * net.slots, hidden, net.n_edges)

    def forward(self, x, t):
        return feasible_orders(self.layout, self.body(x.flatten(1) * self.layout.input_scale), x)


class SymmetryAware(nn.Module):
    """v2 symmetry-aware net for one warehouse + stores: a context vector from all inventories; one store
    net shared by every store (own inventory, mu, sigma, p, L, context); a warehouse net; store orders are
    scaled by min(1, warehouse on-hand / total store orders) (transshipment: scaled to ship everything)."""

    def __init__(self, net: Network, store_hidden=(32, 32), context_dim: int = 256, warehouse_hidden=(16, 16)):
        super().__init__()
        if net.n_warehouses != 1 or net.n_echelons:
            raise ValueError("the symmetry-aware net is for one-warehouse networks")
        self.layout = EdgeLayout(net)
        self.ship_all = net.ship_all
        s = net.first_store
        leads = net.edge_lead[net.edge_dst >= s].float()
        self.register_buffer("store_static", torch.stack([net.demand_mean, net.demand_std, net.underage, leads], -1))
        self.context = nn.Sequential(mlp(net.n_locations * net.slots, [context_dim], context_dim), nn.Sigmoid())
        self.store_net = mlp(net.slots + 4 + context_dim, list(store_hidden), 1)
        self.warehouse_net = mlp(net.slots + context_dim, list(warehouse_hidden), 1)

    def forward(self, x, t):
        n, s = x.shape[0], self.layout.first_store
        scaled = x * self.layout.input_scale
        ctx = self.context(scaled.flatten(1))
        stores = torch.cat([scaled[:, s:], self.store_static.expand(n, -1, -1),
                            ctx.unsqueeze(1).expand(-1, x.shape[1] - s, -1)], -1)
        desired = F.softplus(self.store_net(stores).squeeze(-1) + 1)             # (N, S)
        on_hand = x[:, 0, 0].clamp(min=0)
        ratio = on_hand / (desired.sum(-1) + 1e-10)
        scale = ratio if self.ship_all else ratio.clamp(max=1.0)
        order_w = torch.sigmoid(self.warehouse_net(torch.cat([scaled[:, 0], ctx], -1))) * self.layout.upstream_cap
        return torch.cat([order_w, desired * scale.unsqueeze(-1)], 1)


class GNN(nn.Module):
    """Edge-based message-passing GNN (v3). Node input = inventory vector zero-padded to `max_slots` +
    static primitives (4); every MLP is [width, width] ELU with a width-dim output; residual node and edge
    updates with sqrt-degree-normalised in/out messages; read-out softplus(MLP(edge)) on order edges and
    self-loops with output bias 5.0; proportional allocation min(1, on-hand / desired outflow)."""

    def __init__(self, net: Network, width: int = 32, max_slots: int = 8, self_loops: bool = True):
        super().__init__()
        self.width, self.max_slots, self.self_loops = width, max_slots, self_loops
        hidden = [width, width]
        self.node0 = nn.Sequential(mlp(max_slots + 4, hidden, width), nn.ELU())
        self.edge0 = nn.Sequential(mlp(2 * width + 1, hidden, width), nn.ELU())
        self.node_update = nn.Sequential(mlp(3 * width, hidden, width), nn.ELU())
        self.edge_update = nn.Sequential(mlp(3 * width, hidden, width), nn.ELU())
        self.readout = mlp(width, hidden, 1)
        nn.init.constant_(self.readout[-1].bias, 5.0)
        self.set_network(net)

    def set_network(self, net: Network) -> "GNN":
        """Bind the model to a network (any number of stores); parameters are unchanged."""
        if net.slots > self.max_slots:
            raise ValueError(f"network has {net.slots} inventory slots; GNN built for at most {self.max_slots}")
        graph = supply_graph(net, self_loops=self.self_loops and not net.ship_all)
        dev = next(self.parameters()).device
        self.n_loc, self.ship_all = net.n_locations, net.ship_all
        self.n_order, self.n_self = graph.n_order_edges, graph.n_self_loops
        self.rounds = message_passing_rounds(net)
        self.src, self.dst = graph.edge_index[0].to(dev), graph.edge_index[1].to(dev)
        self.lead = graph.edge_attr.to(dev)
        self.static = graph.static.to(dev)
        self.input_scale = float(1.0 / net.demand_mean.mean())
        n_edges = self.src.numel()
        ones = torch.ones(n_edges, device=dev)
        self.in_norm = scatter(ones, self.dst, 0, self.n_loc + 2).clamp(min=1).rsqrt().unsqueeze(-1)
        self.out_norm = scatter(ones, self.src, 0, self.n_loc + 2).clamp(min=1).rsqrt().unsqueeze(-1)
        # outflow edges of each supplying location: internal order edges + self-loops
        outflow = torch.cat([torch.arange(net.n_edges, device=dev)[net.edge_src.to(dev) >= 0],
                             torch.arange(n_edges - self.n_self, n_edges, device=dev)])
        self.outflow_edges, self.outflow_src = outflow, self.src[outflow]
        self.real = torch.zeros(self.n_loc + 2, 1, device=dev)
        self.real[:self.n_loc] = 1                      # virtual supplier / customer nodes stay zero
        return self

    def forward(self, x, t):
        n = x.shape[0]
        inv = F.pad(x * self.input_scale, (0, self.max_slots - x.shape[-1]))
        feats = torch.cat([inv, self.static.to(x.dtype).expand(n, -1, -1)], -1)
        feats = F.pad(feats, (0, 0, 0, 2))                                       # virtual nodes
        node = self.node0(feats) * self.real
        lead = self.lead.to(x.dtype).expand(n, -1, -1)
        edge = self.edge0(torch.cat([node[:, self.src], node[:, self.dst], lead], -1))
        for _ in range(self.rounds):
            m_in = scatter(edge, self.dst, 1, self.n_loc + 2) * self.in_norm
            m_out = scatter(edge, self.src, 1, self.n_loc + 2) * self.out_norm
            node = (node + self.node_update(torch.cat([node, m_in, m_out], -1))) * self.real
            edge = edge + self.edge_update(torch.cat([edge, node[:, self.src], node[:, self.dst]], -1))
        raw = F.softplus(self.readout(edge).squeeze(-1))                       # (N, n_graph_edges)
        desired = raw[:, self.outflow_edges]
        total = scatter(desired, self.outflow_src, 1, self.n_loc + 2)[:, :self.n_loc]
        ratio = x[..., 0].clamp(min=0) / (total + 1e-15)
        scale = ratio if self.ship_all else ratio.clamp(max=1.0)
        q = raw[:, :self.n_order]
        n_int = self.outflow_edges.numel() - self.n_self
        internal = self.outflow_edges[:n_int]
        return q.index_copy(1, internal, desired[:, :n_int] * scale[:, self.outflow_src[:n_int]])


def make_policy(kind: str, net: Network, hidden: list[int] | None = None) -> nn.Module:
    if kind == "mlp":
        default = [32, 32] if net.first_store == 0 and net.n_stores == 1 else \
            [32, 32] if net.n_echelons or net.name == "serial" else [256, 256, 256]
        return VanillaMLP(net, hidden or default)
    if kind == "base_stock":
        return BaseStock(net)
    if kind == "capped_base_stock":
        return CappedBaseStock(net)
    if kind == "echelon_stock":
        return EchelonStock(net)
    if kind == "symmetry_aware":
        return SymmetryAware(net)
    if kind == "gnn":
        return GNN(net, width=(hidden or [32])[0], max_slots=max(8, net.slots))
    raise ValueError(f"unknown policy {kind!r}; valid: {', '.join(POLICIES)}")


def default_lr(kind: str, net: Network) -> float:
    """Spec 1(d): base-stock / echelon 0.5, capped 1.0, GNN 1e-3, symmetry-aware 1e-3, vanilla MLP 3e-3
    (one store), 1e-2 (serial), 1e-3 (transshipment), 3e-4 (OWMS / many warehouses)."""
    fixed = {"base_stock": 0.5, "echelon_stock": 0.5, "capped_base_stock": 1.0, "gnn": 1e-3, "symmetry_aware": 1e-3}
    if kind in fixed:
        return fixed[kind]
    if net.name == "serial":
        return 1e-2
    if net.name == "transshipment":
        return 1e-3
    return 3e-3 if net.first_store == 0 else 3e-4


def default_grad_clip(kind: str) -> float:
    return 1.0 if kind == "gnn" else 0.0


__all__ = ["POLICIES", "make_policy", "default_lr", "default_grad_clip", "feasible_orders", "mlp",
           "BaseStock", "CappedBaseStock", "EchelonStock", "VanillaMLP", "SymmetryAware", "GNN"]
