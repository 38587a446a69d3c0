"""Dense inventory policies against their sparse torch-geometric oracles (envs/inventory/sparse_reference.py):
same orders and same parameter gradients on random states, the same simulated costs on fixed scenarios,
permutation equivariance over stores, and the fused simulator step against the unfused per-effect formula."""
import pytest
import torch
import torch.nn.functional as F

from algos import hdpo
from envs.inventory import settings as st
from envs.inventory.policies import GNN, SymmetryAware, VanillaMLP, feasible_orders
from envs.inventory.simulator import rollout, routing, step, training_loss
from envs.inventory.sparse_reference import SparseGNN, SparseSymmetryAware, sparse_feasible_orders

F64 = torch.float64


def random_state(net, n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, net.n_locations, net.slots, generator=gen, dtype=F64) * 20


def paired(dense_cls, sparse_cls, net, **kw):
    """A sparse oracle and a dense policy with the same (random) weights, float64, bound to `net`."""
    torch.manual_seed(0)
    sparse = sparse_cls(net, **kw).double()
    dense = dense_cls(net, **kw).double()
    dense.load_state_dict(sparse.state_dict())
    if hasattr(dense, "set_network"):
        sparse.set_network(net), dense.set_network(net)
    return dense, sparse


def assert_close_to_scale(a, b, rel):
    """Equal up to float64 rounding, measured against the tensor's scale: both versions divide by
    (desired outflow + 1e-15), which amplifies rounding differences of the sums' order."""
    assert (a - b).abs().max() <= rel * b.abs().max() + 1e-12


def assert_same_outputs_and_gradients(dense, sparse, x):
    q_dense, q_sparse = dense(x, 0), sparse(x, 0)
    assert_close_to_scale(q_dense, q_sparse, 1e-10)
    weights = torch.randn_like(q_dense)           # a random linear functional of the orders
    grads_dense = torch.autograd.grad((q_dense * weights).sum(), list(dense.parameters()))
    grads_sparse = torch.autograd.grad((q_sparse * weights).sum(), list(sparse.parameters()))
    for g_dense, g_sparse in zip(grads_dense, grads_sparse):
        assert_close_to_scale(g_dense, g_sparse, 1e-6)


@pytest.mark.parametrize("stores", [3, 5, 10])
@pytest.mark.parametrize("setting", ["transshipment", "one_warehouse"])
def test_dense_gnn_matches_sparse_outputs_and_gradients(setting, stores):
    net = st.make_network(setting, stores=stores).to("cpu", F64)
    dense, sparse = paired(GNN, SparseGNN, net)
    assert_same_outputs_and_gradients(dense, sparse, random_state(net, seed=stores))


@pytest.mark.parametrize("setting", ["serial", "many_warehouses", "lost_sales"])
def test_dense_gnn_matches_sparse_on_other_graphs(setting):
    """Serial (several rounds, self-loops), two warehouses (several sources), one store (no allocation)."""
    net = st.make_network(setting).to("cpu", F64)
    dense, sparse = paired(GNN, SparseGNN, net)
    assert_same_outputs_and_gradients(dense, sparse, random_state(net))


def test_one_dense_gnn_rebinds_to_other_store_counts_like_the_oracle():
    dense, sparse = paired(GNN, SparseGNN, st.make_network("transshipment", stores=3).to("cpu", F64))
    for stores in (10, 5):
        net = st.make_network("transshipment", stores=stores).to("cpu", F64)
        dense.set_network(net), sparse.set_network(net)
        assert_same_outputs_and_gradients(dense, sparse, random_state(net))


@pytest.mark.parametrize("stores", [3, 10, 50])
@pytest.mark.parametrize("setting", ["transshipment", "one_warehouse"])
def test_dense_symmetry_aware_matches_sparse(setting, stores):
    net = st.make_network(setting, stores=stores).to("cpu", F64)
    dense, sparse = paired(SymmetryAware, SparseSymmetryAware, net)
    assert_same_outputs_and_gradients(dense, sparse, random_state(net))


@pytest.mark.parametrize("setting", ["one_warehouse", "transshipment", "serial", "many_warehouses", "lost_sales"])
def test_dense_feasibility_layer_matches_sparse(setting):
    net = st.make_network(setting, stores=5).to("cpu", F64)
    policy = VanillaMLP(net, [8]).double()
    x = random_state(net)
    logits = torch.randn(x.shape[0], net.n_edges, dtype=F64, requires_grad=True)
    dense, sparse = feasible_orders(policy.layout, logits, x), sparse_feasible_orders(policy.layout, logits, x)
    assert torch.allclose(dense, sparse, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(dense)
    (g_dense,) = torch.autograd.grad((dense * weights).sum(), logits)
    (g_sparse,) = torch.autograd.grad((sparse * weights).sum(), logits)
    assert torch.allclose(g_dense, g_sparse, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stores", [5, 10])
def test_dense_gnn_is_permutation_equivariant_over_stores(stores):
    """Relabelling stores (their primitives with them) permutes the store orders and leaves the rest."""
    perm = torch.randperm(stores, generator=torch.Generator().manual_seed(stores)).tolist()
    base = st.make_network("transshipment", stores=stores)
    edges = [(-1, 0, 3)] + [(0, 1 + i, 2) for i in range(stores)]
    relabelled = st.build_network("transshipment", 0, 1, stores, 2, edges, [0.5] + [1.0] * stores,
                                  [9.0] * stores, base.demand_mean[perm].tolist(), base.demand_std[perm].tolist(),
                                  False, base.demand, ship_all=True)
    torch.manual_seed(0)
    gnn = GNN(base).double()
    x = random_state(base)
    x_p = torch.cat([x[:, :1], x[:, 1:][:, perm]], 1)
    with torch.no_grad():
        q = gnn(x, 0)
        q_p = gnn.set_network(relabelled.to("cpu", F64))(x_p, 0)
    assert torch.allclose(q_p[:, 1:], q[:, 1:][:, perm], rtol=1e-10)
    assert torch.allclose(q_p[:, 0], q[:, 0], rtol=1e-10)


@pytest.mark.parametrize("setting, dense_cls, sparse_cls", [
    ("transshipment", GNN, SparseGNN), ("one_warehouse", GNN, SparseGNN), ("serial", GNN, SparseGNN),
    ("one_warehouse", SymmetryAware, SparseSymmetryAware), ("transshipment", SymmetryAware, SparseSymmetryAware)])
def test_fast_paths_simulate_the_same_costs_as_the_oracle(setting, dense_cls, sparse_cls):
    """Whole rollouts on the authors' seeded scenarios: per-(path, period) costs and the HDPO gradient."""
    net = st.make_network(setting, stores=5).to("cpu", F64)
    scen, _ = st.make_train_dev(net, 64, 8, 20, 5, 20, 5, dtype=F64)
    dense, sparse = paired(dense_cls, sparse_cls, net)
    route = routing(net)
    costs_dense, costs_sparse = rollout(net, dense, scen, route), rollout(net, sparse, scen, route)
    assert_close_to_scale(costs_dense, costs_sparse, 1e-10)
    grads_dense = torch.autograd.grad(training_loss(net, costs_dense), list(dense.parameters()))
    grads_sparse = torch.autograd.grad(training_loss(net, costs_sparse), list(sparse.parameters()))
    for g_dense, g_sparse in zip(grads_dense, grads_sparse):
        assert_close_to_scale(g_dense, g_sparse, 1e-6)


def unfused_step(net, route, x, q, demand):
    """The simulator period written effect by effect (the formula in the simulator's docstring)."""
    n, n_loc, k = x.shape
    on_hand = x[..., 0] + q @ route.arrive_now
    demand_all = F.pad(demand, (net.first_store, 0))
    post = on_hand - q @ route.ship_out - demand_all
    stage = (route.holding * post.clamp(min=0)).sum(-1)
    if net.profit:
        stage = stage - (route.underage * torch.minimum(on_hand, demand_all)).sum(-1)
    else:
        stage = stage + (route.underage * (-post).clamp(min=0)).sum(-1)
    if net.lost_sales:
        post = torch.where(route.is_store, post.clamp(min=0), post)
    stage = stage + q @ route.edge_cost
    x_next = F.pad(x[..., 1:], (0, 1)) + F.pad(post.unsqueeze(-1), (0, k - 1)) \
        + (q @ route.arrive_later).view(n, n_loc, k)
    return x_next, stage, post


@pytest.mark.parametrize("setting", ["backlog", "lost_sales", "serial", "one_warehouse", "transshipment",
                                     "many_warehouses", "n_stores_lost"])
def test_fused_step_equals_the_unfused_formula(setting):
    net = st.make_network(setting, stores=4).to("cpu", F64)
    route = routing(net)
    gen = torch.Generator().manual_seed(1)
    x = random_state(net)
    q = torch.rand(x.shape[0], net.n_edges, generator=gen, dtype=F64) * 10
    demand = torch.rand(x.shape[0], net.n_stores, generator=gen, dtype=F64) * 10
    for fused, unfused in zip(step(net, route, x, q, demand), unfused_step(net, route, x, q, demand)):
        assert torch.allclose(fused, unfused, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_hdpo_gnn_on_transshipment_with_3_stores_reaches_one_percent_of_the_bound(tmp_path):
    """S5 (3 stores, L_s = 2, p = 9, rho = 0.5): HDPO with the GNN within 1% of the closed-form lower bound."""
    cfg = hdpo.HDPOConfig(env="transshipment", stores=3, policy="gnn", n_envs=1024, eval_episodes=2048,
                          n_test=2048, test_periods=500, test_ignore=200, lr=3e-3, test_curve=False, progress=False,
                          device="cpu", run_dir=str(tmp_path), **hdpo.epoch_budget(4096, 150, 10))
    summary = hdpo.train(cfg)
    assert summary["test_gap_pct"] < 1.0
