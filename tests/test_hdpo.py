"""HDPO: pathwise gradients vs finite differences, policy feasibility and symmetry, CLI, learning checks."""
import json
from pathlib import Path

import pytest
import torch

from algos import hdpo
from classic_rl.config import run_cli
from envs.inventory.policies import GNN, BaseStock, SymmetryAware, VanillaMLP, make_policy
from envs.inventory import optimal, settings as st
from envs.inventory.simulator import rollout, routing, training_loss

F64 = torch.float64


def scenarios64(net, n=256, periods=30, ignore=10):
    train, _ = st.make_train_dev(net, n, 8, periods, ignore, periods, ignore, dtype=F64)
    return train


@pytest.mark.parametrize("lost", [False, True])
def test_pathwise_gradient_of_base_stock_level_matches_finite_difference(lost):
    net = st.one_store(2, 9.0, lost_sales=lost).to("cpu", F64)
    scen = scenarios64(net)
    policy = BaseStock(net, init=16.3).double()
    loss = training_loss(net, rollout(net, policy, scen))
    (grad,) = torch.autograd.grad(loss, policy.raw)
    eps = 1e-6
    with torch.no_grad():
        def j(delta):
            policy.raw += delta
            value = training_loss(net, rollout(net, policy, scen)).item()
            policy.raw -= delta
            return value
        fd = (j(eps) - j(-eps)) / (2 * eps)
    assert abs(grad.item()) > 1e-3          # a non-trivial slope at this level
    assert grad.item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("setting, kind", [("lost_sales", "mlp"), ("one_warehouse", "mlp"),
                                           ("transshipment", "gnn"), ("serial", "echelon_stock")])
def test_pathwise_gradient_of_network_policy_matches_finite_difference(setting, kind):
    """Directional derivative along a random parameter direction: autograd vs central difference."""
    torch.manual_seed(0)
    net = st.make_network(setting, stores=3).to("cpu", F64)
    scen = scenarios64(net, n=64, periods=12, ignore=2)
    policy = make_policy(kind, net, [16, 16] if kind == "mlp" else [8]).double()
    if kind == "gnn":
        policy.set_network(net)
    params = [p for p in policy.parameters()]
    direction = [torch.randn_like(p) for p in params]
    loss = training_loss(net, rollout(net, policy, scen))
    grads = torch.autograd.grad(loss, params)
    analytic = sum((g * d).sum() for g, d in zip(grads, direction)).item()
    eps = 1e-6
    with torch.no_grad():
        def j(sign):
            for p, d in zip(params, direction):
                p += sign * eps * d
            value = training_loss(net, rollout(net, policy, scen)).item()
            for p, d in zip(params, direction):
                p -= sign * eps * d
            return value
        fd = (j(1) - j(-1)) / (2 * eps)
    assert analytic == pytest.approx(fd, rel=1e-4, abs=1e-7)


def test_hdpo_base_stock_learns_the_closed_form_level():
    """S1 (L=1, p=4): HDPO on the base-stock class recovers S* = 2 mu + z* sigma sqrt(2) (lr 0.5 as in the spec)."""
    torch.manual_seed(0)
    net = st.one_store(1, 4.0, lost_sales=False)
    train, _ = st.make_train_dev(net, 512, 8, 40, 10, 40, 10)
    policy = BaseStock(net)
    opt = torch.optim.Adam(policy.parameters(), lr=0.5)
    route = routing(net)
    for _ in range(60):
        loss, _ = hdpo.hdpo_loss(net, policy, train, route)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for group in opt.param_groups:   # settle the Adam oscillation before reading the level
        group["lr"] = 0.05
    for _ in range(30):
        loss, _ = hdpo.hdpo_loss(net, policy, train, route)
        opt.zero_grad()
        loss.backward()
        opt.step()
    level, _ = optimal.backlog_base_stock(1, 4.0)
    assert policy.levels().item() == pytest.approx(level, abs=0.3)


def random_state(net, n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, net.n_locations, net.slots, generator=gen) * 20


@pytest.mark.parametrize("setting, kind", [(s, k) for s in ("one_warehouse", "transshipment", "serial", "many_warehouses")
                                           for k in ("mlp", "gnn")]
                         + [("one_warehouse", "symmetry_aware"), ("transshipment", "symmetry_aware")])
def test_policies_never_ship_more_than_on_hand(setting, kind):
    net = st.make_network(setting, stores=4)
    policy = make_policy(kind, net)
    x = random_state(net)
    with torch.no_grad():
        q = policy(x, 0)
    assert (q >= 0).all()
    shipped = torch.zeros(x.shape[0], net.n_locations).index_add_(1, net.edge_src.clamp(min=0),
                                                                   q * (net.edge_src >= 0))
    on_hand = x[..., 0]
    upstream = net.first_store
    assert (shipped[:, :upstream] <= on_hand[:, :upstream] + 1e-4).all()
    if net.ship_all:
        assert torch.allclose(shipped[:, :upstream], on_hand[:, :upstream], rtol=1e-4)


def permuted_transshipment(perm):
    base = st.one_warehouse(len(perm), transshipment=True, store_lead_time=2)
    mean, std = base.demand_mean[perm].tolist(), base.demand_std[perm].tolist()
    edges = [(-1, 0, 3)] + [(0, 1 + i, 2) for i in range(len(perm))]
    return st.build_network("transshipment", 0, 1, len(perm), 2, edges, [0.5] + [1.0] * len(perm),
                            [9.0] * len(perm), mean, std, False, base.demand, ship_all=True)


def test_gnn_is_permutation_equivariant_over_stores():
    torch.manual_seed(0)
    perm = [2, 0, 3, 1]
    net, net_p = permuted_transshipment(list(range(4))), permuted_transshipment(perm)
    gnn = GNN(net)
    x = random_state(net)
    x_p = torch.cat([x[:, :1], x[:, 1:][:, perm]], 1)
    with torch.no_grad():
        q = gnn(x, 0)
        q_p = gnn.set_network(net_p)(x_p, 0)
    assert torch.allclose(q_p[:, 1:], q[:, 1:][:, perm], atol=1e-5)   # store edges follow the stores
    assert torch.allclose(q_p[:, 0], q[:, 0], atol=1e-5)              # warehouse order is invariant
    assert not torch.allclose(q[:, 1], q[:, 2])                        # and stores are not all alike


def test_same_gnn_runs_on_3_and_10_stores():
    gnn = GNN(st.one_warehouse(3))
    n_params = sum(p.numel() for p in gnn.parameters())
    for stores in (3, 10):
        net = st.one_warehouse(stores)
        gnn.set_network(net)
        scen, _ = st.make_train_dev(net, 8, 4, 6, 1, 6, 1)
        costs = rollout(net, gnn, scen)
        assert costs.shape == (8, 6) and torch.isfinite(costs).all()
        training_loss(net, costs).backward()
    assert sum(p.numel() for p in gnn.parameters()) == n_params


def test_vanilla_mlp_size_depends_on_stores_but_symmetry_aware_store_net_does_not():
    small, big = st.one_warehouse(3), st.one_warehouse(10)
    assert VanillaMLP(small, [8]).body[0].in_features != VanillaMLP(big, [8]).body[0].in_features
    assert SymmetryAware(small).store_net[0].in_features == SymmetryAware(big).store_net[0].in_features


TINY_S2 = ["--env", "lost_sales", "--lead-time", "1", "--underage-cost", "4", "--policy", "mlp",
           "--n-train", "128", "--n-envs", "64", "--eval-episodes", "64", "--n-test", "64", "--train-periods", "20",
           "--train-ignore", "5", "--dev-periods", "30", "--dev-ignore", "10", "--test-periods", "60",
           "--test-ignore", "20", "--no-progress", "--device", "cpu"]
EPOCH = 128 * 20   # path-periods per epoch of TINY_S2


def test_cli_writes_run_directory_with_curves_and_gap(tmp_path, capsys):
    args = [*TINY_S2, "--total-steps", str(4 * EPOCH), "--eval-every", str(2 * EPOCH), "--test-curve",
            "--run-dir", str(tmp_path)]
    assert run_cli(hdpo.main, args) == 0
    run = next(Path(tmp_path, "hdpo", "lost_sales-L1-p4").iterdir())
    assert f"run directory: {run}" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reference"] == pytest.approx(4.04, abs=0.006)
    assert summary["test_gap_pct"] == pytest.approx(100 * (summary["test_cost"] / summary["reference"] - 1))
    assert summary["headline"] == "test_cost" and summary["headline_value"] == summary["test_cost"]
    assert summary["higher_is_better"] is False and summary["env_steps"] == 4 * EPOCH
    assert summary["grad_steps"] == 8 and summary["epochs"] == 4   # 2 gradient steps of 64 paths per epoch
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert {"train_loss", "train_cost", "epoch"} <= set(metrics[0].split(",")) and len(metrics) == 1 + 4
    evals = (run / "eval.csv").read_text().splitlines()      # initial policy, 2 and 4 epochs
    assert {"dev_cost", "test_cost", "dev_gap_pct", "best_dev_cost"} <= set(evals[0].split(",")) and len(evals) == 4
    assert summary["rounded_test_actions"] is True and summary["lr"] == 1e-2 and summary["grad_clip"] == 0.0


def test_far_test_cost_is_flagged_in_summary(tmp_path, monkeypatch):
    real = hdpo.evaluate

    def exploding_test(net, policy, scen, route, round_actions=False, chunk=8192):
        cost = real(net, policy, scen, route, round_actions, chunk)
        return cost * 1e8 if scen.periods == 60 else cost     # the test horizon of TINY_S2

    monkeypatch.setattr(hdpo, "evaluate", exploding_test)
    summary = hdpo.train(hdpo.parse_config(hdpo.HDPOConfig, [*TINY_S2, "--total-steps", str(EPOCH),
                                                             "--no-reference", "--run-dir", str(tmp_path)]))
    assert summary["status"] == "done"
    assert any("far from its dev cost" in w for w in summary["warnings"]), summary["warnings"]


def test_early_stopped_run_cannot_be_resumed(tmp_path, capsys):
    args = [*TINY_S2, "--total-steps", str(40 * EPOCH), "--eval-every", str(EPOCH), "--patience", str(EPOCH),
            "--lr", "1e-9", "--no-reference", "--run-dir", str(tmp_path)]
    summary = hdpo.train(hdpo.parse_config(hdpo.HDPOConfig, args))
    assert summary["stopped_early"] and summary["env_steps"] < 40 * EPOCH
    assert run_cli(hdpo.main, ["--resume", summary["run_dir"], "--total-steps", str(80 * EPOCH)]) == 2
    assert "stopped early" in capsys.readouterr().err


def test_cli_bad_input_is_a_clean_error(tmp_path, capsys):
    mismatch = ["--env", "serial", "--policy", "base_stock", "--total-steps", "400", "--n-train", "8", "--n-envs",
                "8", "--eval-episodes", "8", "--n-test", "8", "--run-dir", str(tmp_path), "--no-progress",
                "--no-reference"]
    assert run_cli(hdpo.main, mismatch) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())   # nothing written
    for args, word in ((["--n-envs", "100", "--n-train", "10"], "n-envs"), (["--env", "nope"], "env"),
                       (["--epochs", "3"], "unrecognized"), (["--lr", "0"], "--lr")):
        with pytest.raises(SystemExit) as exit_info:   # argparse-level errors: usage line + exit status 2
            hdpo.main(args)
        assert exit_info.value.code == 2 and word in capsys.readouterr().err


def test_same_seed_same_numbers_on_cpu(tmp_path):
    kw = dict(env="one_warehouse", stores=3, policy="mlp", hidden_sizes=[16], n_train=64, n_envs=32,
              eval_episodes=32, n_test=32, train_periods=10, train_ignore=2, dev_periods=10, dev_ignore=2,
              test_periods=20, test_ignore=5, total_steps=2 * 64 * 10, eval_every=64 * 10, progress=False,
              device="cpu", run_dir=str(tmp_path))
    first, second = hdpo.train(hdpo.HDPOConfig(**kw)), hdpo.train(hdpo.HDPOConfig(**kw))
    third = hdpo.train(hdpo.HDPOConfig(**{**kw, "seed": 2}))
    assert first["test_cost"] == second["test_cost"] and first["run_dir"] != second["run_dir"]
    assert third["test_cost"] != first["test_cost"]


@pytest.mark.slow
def test_hdpo_lost_sales_reaches_one_percent_of_optimum(tmp_path):
    """S2 (L = 4, p = 9): HDPO with a vanilla MLP within 1% of the DP optimum 6.84 (rounded test actions)."""
    epoch = 4096 * 50
    cfg = hdpo.HDPOConfig(env="lost_sales", lead_time=4, underage_cost=9.0, n_train=4096, n_envs=1024,
                          eval_episodes=2048, n_test=2048, test_periods=1000, test_ignore=300,
                          total_steps=300 * epoch, eval_every=10 * epoch, lr=1e-2, progress=False, device="cpu",
                          run_dir=str(tmp_path))
    summary = hdpo.train(cfg)
    assert summary["test_gap_pct"] < 1.0


def test_target_gap_stops_once_dev_and_test_of_the_best_dev_policy_are_within_it(tmp_path):
    args = [*TINY_S2, "--total-steps", str(40 * EPOCH), "--eval-every", str(EPOCH), "--run-dir", str(tmp_path)]
    summary = hdpo.train(hdpo.parse_config(hdpo.HDPOConfig, [*args, "--target-gap", "1e6"]))
    assert "--target-gap" in summary["stopped_early"] and summary["env_steps"] == 0   # the initial policy
    assert summary["target_wall_time"] is not None and summary["test_gap_pct"] <= 1e6
    summary = hdpo.train(hdpo.parse_config(hdpo.HDPOConfig, [*args, "--total-steps", str(2 * EPOCH),
                                                             "--target-gap", "1e-9"]))
    assert summary["stopped_early"] is None and summary["target_wall_time"] is None
    with pytest.raises(SystemExit):
        hdpo.main([*args, "--target-gap", "1", "--no-reference"])
