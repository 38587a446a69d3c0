"""The supply-chain graph of a network as a torch-geometric `Data` object (for GNN policies, spec 1(c).2).

Nodes: the real locations 0..n_loc-1, then a virtual SUPPLIER node and a virtual CUSTOMER node (zero
features). Directed edges, in this fixed order (read-out and allocation index into it):
  [order edges of the network (supplier edges, then internal edges) | customer edges (store -> customer)
   | self-loops on every location that supplies others ("stock kept here"), when `self_loops`].
The first `n_order_edges` edges are exactly the simulator's order edges, so a GNN read-out on them is
directly the order tensor q (N, n_edges). Edge attribute: lead time (0 for customer edges, self-loops).
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data

from envs.inventory.settings import Network


def node_features(net: Network) -> torch.Tensor:
    """(n_loc, 4) static primitives per location, zero-padded: stores (mu, sigma, h, p), upstream (h, 0, 0, 0).
    Transshipment warehouses get h too (irrelevant to the cost, kept for a uniform layout)."""
    feats = torch.zeros(net.n_locations, 4, dtype=net.holding.dtype, device=net.device)
    feats[:, 0] = net.holding
    s = net.first_store
    feats[s:, 0] = net.demand_mean
    feats[s:, 1] = net.demand_std
    feats[s:, 2] = net.holding[s:]
    feats[s:, 3] = net.underage
    return feats


def supply_graph(net: Network, self_loops: bool = True) -> Data:
    n_loc = net.n_locations
    supplier, customer = n_loc, n_loc + 1
    src = torch.where(net.edge_src < 0, torch.full_like(net.edge_src, supplier), net.edge_src)
    dst = net.edge_dst.clone()
    lead = net.edge_lead.clone()
    stores = torch.arange(net.first_store, n_loc, device=src.device)
    src = torch.cat([src, stores])
    dst = torch.cat([dst, torch.full_like(stores, customer)])
    lead = torch.cat([lead, torch.zeros_like(stores)])
    suppliers = torch.unique(net.edge_src[net.edge_src >= 0])
    if self_loops:
        src, dst, lead = torch.cat([src, suppliers]), torch.cat([dst, suppliers]), torch.cat([lead, torch.zeros_like(suppliers)])
    return Data(edge_index=torch.stack([src, dst]), edge_attr=lead.float().unsqueeze(-1), num_nodes=n_loc + 2,
                n_order_edges=net.n_edges, n_customer_edges=int(stores.numel()),
                n_self_loops=int(suppliers.numel()) if self_loops else 0, static=node_features(net))


def message_passing_rounds(net: Network) -> int:
    """One round for warehouse-store graphs; #locations - 1 for a serial chain (crosses the whole chain)."""
    return max(1, net.n_locations - 1) if net.n_echelons > 0 or net.name == "serial" else 1
