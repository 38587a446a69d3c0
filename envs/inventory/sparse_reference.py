"""Sparse (torch-geometric) reference implementations of the GNN, the symmetry-aware net and the vanilla
feasibility layer: the code the dense policies in `envs.inventory.policies` replaced. They are kept only as
test oracles (tests/test_inventory_policies_dense.py checks outputs and gradients of the dense versions
against them); nothing on a training path uses them. They share parameter names with the dense classes, so
`dense.load_state_dict(sparse.state_dict())` transfers one model to the other.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.utils import scatter, softmax as group_softmax

from envs.inventory.graph import message_passing_rounds, supply_graph
from envs.inventory.policies import EdgeLayout, mlp
from envs.inventory.settings import Network


def sparse_feasible_orders(layout: EdgeLayout, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
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


class SparseSymmetryAware(nn.Module):
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


class SparseGNN(nn.Module):
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

    def set_network(self, net: Network) -> "SparseGNN":
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
