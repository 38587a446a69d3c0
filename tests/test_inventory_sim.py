"""Inventory simulator vs hand-computed trajectories, and scenario generation vs the authors' seeds."""
import numpy as np
import pytest
import torch

from envs.inventory import settings as st
from envs.inventory.simulator import InfeasibleShipment, reported_cost, rollout, routing, step, training_loss


def one_store_net(lead, slots, lost, h=1.0, p=4.0):
    return st.build_network("t", 0, 0, 1, slots, [(-1, 0, lead)], [h], [p], [5.0], [1.0], lost,
                            {"kind": "normal"})


def run(net, x0, orders, demand):
    """Roll a scripted order sequence through `step`; returns per-period costs and final state."""
    route = routing(net)
    x = torch.tensor([x0], dtype=torch.float32)
    costs = []
    for q, d in zip(orders, demand):
        x, c, _ = step(net, route, x, torch.tensor([q], dtype=torch.float32), torch.tensor([d], dtype=torch.float32))
        costs.append(c.item())
    return costs, x[0].tolist()


# Hand computations (h = 1, p = 4), written out in the comments.
@pytest.mark.parametrize("lost, expected_costs, expected_final", [
    # backlog: on-hand 3,d4 -> post -1 (cost 4), x=-1+2=1; 1-1=0 (0), x=0; 0-2=-2 (8), x=-2+5=3
    (False, [4, 0, 8], [3]),
    # lost: 3-4 -> lost 1 (4), x=0+2=2; 2-1=1 (1), x=1; 1-2 -> lost 1 (4), x=0+5=5
    (True, [4, 1, 4], [5]),
])
def test_lead_time_one(lost, expected_costs, expected_final):
    costs, final = run(one_store_net(1, 1, lost), [[3.0]], [[2.0], [0.0], [5.0]], [[4.0], [1.0], [2.0]])
    assert costs == pytest.approx(expected_costs)
    assert np.allclose(final, [expected_final])


def test_lead_time_zero_serves_this_period():
    # order arrives before demand: 3+2-4 = 1 (cost 1); 1-1 = 0; 0+5-2 = 3 (cost 3)
    costs, final = run(one_store_net(0, 1, False), [[3.0]], [[2.0], [0.0], [5.0]], [[4.0], [1.0], [2.0]])
    assert costs == pytest.approx([1, 0, 3])
    assert np.allclose(final, [[3.0]])


@pytest.mark.parametrize("lost, expected", [
    # backlog: x=[2,1,0]; t0 post -1 (4), x=[0,0,5]; t1 post -3 (12), x=[-3,5,0];
    # t2 post -6 (24), x=[-1,0,0] (the t0 order of 5 is on hand at t0+3); t3 post -4 (16)
    (False, [4, 12, 24, 16]),
    # lost: t0 lose 1 (4), x=[1,0,5]; t1 lose 2 (8), x=[0,5,0]; t2 lose 3 (12), x=[5,0,0]; t3 keep 2 (2)
    (True, [4, 8, 12, 2]),
])
def test_lead_time_three(lost, expected):
    costs, _ = run(one_store_net(3, 3, lost), [[2.0, 1.0, 0.0]], [[5.0], [0.0], [0.0], [0.0]], [[3.0]] * 4)
    assert costs == pytest.approx(expected)


def warehouse_net():
    return st.build_network("t", 0, 1, 1, 1, [(-1, 0, 1), (0, 1, 1)], [0.5, 1.0], [4.0], [5.0], [1.0], False,
                            {"kind": "normal"})


def test_warehouse_ships_and_holds():
    # warehouse 4 ships 2 -> keeps 2 (cost 0.5*2); store 1 - d 2 = -1 (cost 4); arrivals: wh 2+3, store -1+2
    costs, final = run(warehouse_net(), [[4.0], [1.0]], [[3.0, 2.0]], [[2.0]])
    assert costs == pytest.approx([5.0])
    assert np.allclose(final, [[5.0], [1.0]])


def test_rollout_rejects_shipping_more_than_on_hand():
    net = warehouse_net()
    scen = st.Scenarios(torch.full((2, 1, 3), 2.0), torch.tensor([[[4.0], [1.0]]] * 2), 0)
    with pytest.raises(InfeasibleShipment):
        rollout(net, lambda x, t: torch.tensor([[0.0, 10.0]] * 2), scen)


def test_batched_paths_and_stores_equal_separate_runs():
    """Two independent stores with different lead times in one batch == each store simulated alone."""
    net2 = st.build_network("t", 0, 0, 2, 3, [(-1, 0, 1), (-1, 1, 3)], [1.0, 2.0], [4.0, 9.0], [5.0, 5.0],
                            [1.0, 1.0], True, {"kind": "normal"})
    gen = torch.Generator().manual_seed(0)
    demand = torch.randint(0, 9, (5, 2, 6), generator=gen).float()
    init = torch.rand(5, 2, 3, generator=gen) * 5
    orders = torch.rand(6, 5, 2, generator=gen) * 6
    joint = rollout(net2, lambda x, t: orders[t], st.Scenarios(demand, init, 0))
    for i, (lead, h, p) in enumerate([(1, 1.0, 4.0), (3, 2.0, 9.0)]):
        alone = st.build_network("t", 0, 0, 1, 3, [(-1, 0, lead)], [h], [p], [5.0], [1.0], True, {"kind": "normal"})
        single = rollout(alone, lambda x, t: orders[t][:, i:i + 1],
                         st.Scenarios(demand[:, i:i + 1], init[:, i:i + 1], 0))
        if i == 0:
            total = single
        else:
            total = total + single
    assert torch.allclose(joint, total, atol=1e-5)


def test_reported_cost_ignores_warm_up_but_training_loss_does_not():
    net = one_store_net(1, 1, False)
    costs = torch.tensor([[10.0, 1.0, 3.0], [20.0, 3.0, 5.0]])
    assert reported_cost(net, costs, 1).item() == pytest.approx(3.0)
    assert training_loss(net, costs).item() == pytest.approx(42 / 6)


def test_store_primitives_reproduce_the_authors_seeds():
    """The spec's sanity table (spec 1(b).1) for the first 10 stores."""
    prim = st.store_primitives(10, lead_range=(2, 6))
    assert prim["mean"].tolist() == [3.743, 4.75, 4.555, 3.801, 6.852, 3.425, 2.598, 7.266, 5.902, 4.933]
    assert prim["std"].tolist() == [1.765, 2.124, 1.622, 1.405, 1.714, 1.59, 0.879, 2.701, 2.127, 2.391]
    assert prim["lead"].tolist() == [2, 5, 2, 4, 2, 3, 5, 3, 5, 3]
    assert np.round(prim["holding"], 4).tolist()[:3] == [1.0856, 1.0232, 1.0071]
    assert np.round(prim["underage"], 4).tolist()[-2:] == [11.459, 11.6148]
    assert st.store_primitives(3)["mean"].tolist() == [3.743, 4.75, 4.555]  # re-seeded: prefix of S=10


def test_scenarios_split_and_moments():
    net = st.one_warehouse(5)
    train, dev = st.make_train_dev(net, 300, 200, 40, 10, 60, 20)
    test = st.make_test(net, 100, 30, 5)
    assert train.demand.shape == (300, 5, 40) and dev.demand.shape == (200, 5, 60)
    assert train.initial.shape == (300, net.n_locations, net.slots)
    assert (train.initial[:, 0] == 0).all() and (train.initial[:, 1:] > 0).any()
    # dev is the first 200 paths of the joint draw, train the rest: no path in both
    assert not torch.isclose(train.demand[:, :, :40].unsqueeze(1), dev.demand[:, :, :40].unsqueeze(0)).all(-1).all(-1).any()
    assert not torch.equal(test.demand[:100, :, :30], dev.demand[:100, :, :30])
    d = train.demand.permute(0, 2, 1).reshape(-1, 5).double().numpy()
    corr = np.corrcoef(d.T)[0, 1]
    # clipped N(mu, sigma^2) with rho = 0.5: the sample correlation stays close to 0.5
    assert 0.42 < corr < 0.56
    assert np.allclose(d.mean(0), net.demand_mean.numpy(), atol=0.1)


def test_one_store_demand_seed_depends_on_instance():
    a = st.sample_demand(st.one_store(4, 9.0, lost_sales=True), 4, 10, seed=57)
    b = st.sample_demand(st.one_store(2, 9.0, lost_sales=True), 4, 10, seed=57)
    np.random.seed(57 + 4 + 90)
    assert np.array_equal(a, np.random.poisson(5.0, (4, 1, 10)))
    assert not np.array_equal(a, b)


def test_gym_wrapper_matches_batched_simulator():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import envs.inventory  # noqa: F401 - registers the ids

    env = gym.make("InventoryLostSales-v0", lead_time=2, underage_cost=4.0, periods=12)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    x0 = obs.reshape(1, 1, -1)
    orders, demands, rewards, done = [], [], [], False
    while not done:
        action = np.array([max(14.0 - float(obs.sum()), 0.0)], dtype=np.float32)   # a base-stock rule
        obs, reward, term, trunc, info = env.step(action)
        orders.append(action), demands.append(info["demand"]), rewards.append(reward)
        done = term or trunc
    assert len(rewards) == 12
    net = st.one_store(2, 4.0, lost_sales=True)
    scen = st.Scenarios(torch.tensor(np.array(demands)).float().T.reshape(1, 1, -1), torch.tensor(x0), 0)
    sim = rollout(net, lambda x, t: torch.tensor(orders[t]).reshape(1, 1), scen)
    assert np.allclose(-sim[0].numpy(), rewards, atol=1e-5)


def test_real_data_loader(tmp_path):
    from classic_rl import UserError
    from envs.inventory import real_data

    with pytest.raises(UserError, match="does not exist"):
        real_data.load_weekly_sales(tmp_path / "weekly_sales.pt")
    sales = torch.arange(4 * 171, dtype=torch.float32).reshape(4, 171)
    torch.save(sales, tmp_path / "weekly_sales.pt")
    loaded = real_data.load_weekly_sales(tmp_path / "weekly_sales.pt")
    assert loaded.shape == (4, 1, 171)
    past, future = real_data.split_window(loaded, "test", n_samples=3)
    assert past.shape == (3, 1, 16) and future.shape == (3, 1, 37)   # test window [118, 171), 16 observed
    assert past[0, 0, 0].item() == 118 and future[0, 0, -1].item() == 170
    assert real_data.split_window(loaded, "train")[1].shape[-1] == 95
    torch.save(-sales, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="non-negative"):
        real_data.load_weekly_sales(tmp_path / "bad.pt")
    torch.save(sales[:, :100], tmp_path / "short.pt")
    with pytest.raises(UserError, match="weeks"):
        real_data.split_window(real_data.load_weekly_sales(tmp_path / "short.pt"), "dev")


@pytest.mark.parametrize("setting,stores", [("one_warehouse", 5), ("transshipment", 10), ("many_warehouses", 10)])
def test_demand_drawn_in_chunks_is_bit_identical_to_one_draw(setting, stores):
    """Chunked scenario generation (memory) gives exactly the authors' one-call numbers."""
    net = st.make_network(setting, stores=stores)
    spec = net.demand
    np.random.seed(57 + spec.get("seed_shift", 0))
    std = net.demand_std.double().numpy()
    rho = spec["correlation"]
    cov = rho * np.outer(std, std) + (1 - rho) * np.diag(std ** 2)
    one_call = np.random.multivariate_normal(net.demand_mean.double().numpy(), cov, size=(1000, 30)).transpose(0, 2, 1)
    if spec.get("clip"):
        one_call = np.clip(one_call, 0, None)
    for chunk in (97, 256, 5000):
        assert np.array_equal(st.sample_demand(net, 1000, 30, seed=57, chunk=chunk), one_call)
