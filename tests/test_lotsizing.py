"""Lot-sizing env: hand-computed steps on a tiny plant, a loop-based reference, the batched env against
the single env, the heuristic, and the FrozenLake post-decision wrapper."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

import envs.lotsizing  # noqa: F401 - registers the ids
from classic_rl import UserError
from envs.frozen_lake import BatchedFrozenLake, FrozenLakePD, intended_cell, lake_map
from envs.lotsizing.batched import BatchedLotSizing
from envs.lotsizing.heuristic import campaign_action
from envs.lotsizing.instances import INSTANCES, generate_instance, instance_from_dict, load_instance
from envs.lotsizing.plant import LotSizingEnv

# 2 machines x 3 items. Machine 0 cannot make item 2, machine 1 cannot make item 3.
TINY = {
    "time_horizon": 3, "n_items": 3, "n_machines": 2, "initial_setup": [1, 0],
    "machine_production": [[5, 0, 3], [4, 6, 0]],
    "setup_costs": [[10, 20, 30], [40, 50, 60]],
    "setup_loss": [[1, 2, 1], [2, 1, 3]],
    "holding_costs": [0.5, 0.25, 1.0], "lost_sales_costs": [2.0, 3.0, 1.1],
    "max_inventory_level": [10, 10, 10], "initial_inventory": [2, 3, 4],
    "demand_distribution": {"name": "binomial", "n": 20, "p": 0.4},
}


def tiny_env(**kw) -> LotSizingEnv:
    return LotSizingEnv(instance_from_dict("tiny", TINY), **kw)


def step_from(env, inventory, setups, demand, action):
    env.set_state(inventory, setups, np.array([demand] * 4))
    return env.step(np.array(action))


def test_switch_cost_loss_and_two_machines_on_one_item():
    env = tiny_env(observe_setups=True)
    # m0 stays on item 1 (+5, free); m1 switches 0 -> 1 (K = 40, +4 - loss 2). I^x = [2+5+2, 3, 4].
    obs, reward, term, trunc, info = step_from(env, [2, 3, 4], [1, 0], [3, 5, 1], [1, 1])
    assert info["post_decision_inventory"].tolist() == [9, 3, 4]
    assert info["post_decision_setups"].tolist() == [1, 1]
    assert info["setup_cost"] == 40
    # demand [3, 5, 1]: stock [6, -2, 3] -> 2 units of item 2 lost at 3.0; holding 6*0.5 + 3*1.0
    assert info["lost_sales_cost"] == pytest.approx(6.0)
    assert info["holding_cost"] == pytest.approx(6.0)
    assert reward == pytest.approx(-52.0)
    assert obs.tolist() == [6, 0, 3, 1, 1]
    assert not term and not trunc


def test_idle_machine_loses_setup_and_pays_again():
    env = tiny_env()
    _, r1, _, _, info = step_from(env, [2, 3, 4], [1, 2], [0, 0, 0], [0, 2])
    assert info["post_decision_setups"].tolist() == [0, 2] and info["setup_cost"] == 0
    assert info["post_decision_inventory"].tolist() == [2, 9, 4]
    _, _, _, _, info = env.step(np.array([1, 2]))  # m0 restarts item 1: K = 10, loss 1
    assert info["setup_cost"] == 10
    assert info["post_decision_inventory"].tolist() == [2 + 5 - 1, 9 + 6, 4]  # the cap acts after demand


def test_negative_production_quirk_and_flag():
    env = tiny_env()  # quirk on: m0 on item 2 (P = 0) pays K = 20 and loses 2 units
    _, _, _, _, info = step_from(env, [2, 3, 4], [1, 0], [0, 0, 0], [2, 0])
    assert info["setup_cost"] == 20 and info["post_decision_inventory"].tolist() == [2, 1, 4]
    assert info["post_decision_setups"].tolist() == [2, 0]
    env = tiny_env(negative_production=False)  # flag off: the machine idles
    _, _, _, _, info = step_from(env, [2, 3, 4], [1, 0], [0, 0, 0], [2, 0])
    assert info["setup_cost"] == 0 and info["post_decision_inventory"].tolist() == [2, 3, 4]
    assert info["post_decision_setups"].tolist() == [0, 0]


def test_negative_post_decision_stock_counts_as_lost_sales():
    env = tiny_env()  # item 2 stock 1, m0 forced onto it: I^x = 1 - 2 = -1, demand 2 -> 3 lost at 3.0
    _, reward, _, _, info = step_from(env, [0, 1, 0], [1, 0], [0, 2, 0], [2, 0])
    assert info["post_decision_inventory"][1] == -1
    assert info["lost_sales_cost"] == pytest.approx(9.0) and info["holding_cost"] == 0
    assert reward == pytest.approx(-29.0)


def test_cap_and_holding_cost():
    env = tiny_env()
    # item 1: 9 + 5 = 14, demand 1 -> 13, capped at 10 at no cost; holding 10*0.5 + 3*0.25 + 4*1.0
    obs, reward, _, _, info = step_from(env, [9, 3, 4], [1, 0], [1, 0, 0], [1, 0])
    assert obs.tolist() == [10, 3, 4]
    assert info["holding_cost"] == pytest.approx(5 + 0.75 + 4) and info["lost_sales_cost"] == 0
    assert reward == pytest.approx(-9.75)


def test_stored_lost_sales_flag_maps_to_intended_range():
    env = tiny_env(stored_lost_sales=False)  # b = [2, 3, 1.1] -> 0.1 + (b - 0.1) * 0.2
    _, _, _, _, info = step_from(env, [0, 0, 0], [0, 0], [1, 1, 1], [0, 0])
    assert info["lost_sales_cost"] == pytest.approx(sum(0.1 + (b - 0.1) * 0.2 for b in (2.0, 3.0, 1.1)))
    assert env.config()["stored_lost_sales"] is False


def reference_step(inst, inventory, setups, action, demand, b):
    """The authors' plant rules written as plain loops, independent of the vectorized implementation."""
    inventory, setups, setup_cost = list(inventory), list(setups), 0.0
    for m, a in enumerate(action):
        if a == 0:
            setups[m] = 0
            continue
        produced = inst.production[m][a - 1]
        if setups[m] != a:
            setup_cost += inst.setup_costs[m][a - 1]
            produced -= inst.setup_loss[m][a - 1]
            setups[m] = a
        inventory[a - 1] += produced
    post = list(inventory)
    lost = hold = 0.0
    for i in range(inst.n_items):
        z = inventory[i] - demand[i]
        if z < 0:
            lost += b[i] * -z
            inventory[i] = 0
        else:
            inventory[i] = min(z, inst.max_inventory[i])
        hold += inst.holding_costs[i] * inventory[i]
    return post, setups, inventory, setup_cost, lost, hold


def test_matches_loop_reference_on_random_steps():
    env = LotSizingEnv("15x5", observe_setups=True)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(env.inst.horizon):
        action = rng.integers(0, env.inst.n_items + 1, env.inst.n_machines)
        before_inv, before_set, t = env.inventory.copy(), env.setups.copy(), env.t
        expected_post_obs = env.post_decision_obs(action)
        obs, reward, _, trunc, info = env.step(action)
        post, setups, inv, c, lost, hold = reference_step(env.inst, before_inv, before_set, action,
                                                          env.demand[t], env.lost_sales_costs)
        assert info["post_decision_inventory"].tolist() == post and info["post_decision_setups"].tolist() == setups
        assert obs.tolist() == inv + setups
        assert np.array_equal(info["post_decision_obs"], expected_post_obs)
        assert (info["setup_cost"], info["lost_sales_cost"], info["holding_cost"]) == pytest.approx((c, lost, hold))
        assert reward == pytest.approx(info["reward_decision"] + info["reward_exogenous"])
        assert info["reward_decision"] == -info["setup_cost"]
    assert trunc and env.t == env.inst.horizon


def test_post_decision_state_is_the_state_before_demand():
    # With zero demand, no stock-destroying assignment and no overflow the random half is the identity,
    # so the next observation must equal the post-decision observation exactly.
    env = LotSizingEnv("15x5", observe_setups=True, negative_production=False)
    env.reset(seed=3)
    env.inventory[:] = 0
    env.demand[:] = 0
    action = np.random.default_rng(0).permutation(15)[:5] + 1  # distinct items: at most 40 units each
    expected = env.post_decision_obs(action)
    obs, _, _, _, info = env.step(action)
    assert np.array_equal(obs, info["post_decision_obs"]) and np.array_equal(obs, expected)
    assert obs[:15].sum() > 0
    assert info["reward_exogenous"] == pytest.approx(-(0.01 * obs[:15]).sum())


def test_reset_distribution_and_gymnasium_api():
    env = gym.make("LotSizing-15x5")
    inst = env.unwrapped.inst
    obs, _ = env.reset(seed=5)
    assert obs.shape == (15,) and (obs >= 0).all() and (obs < 100).all()
    setups = env.unwrapped.setups
    assert all(inst.production[m, s - 1] > 0 for m, s in enumerate(setups))
    again, _ = env.reset(seed=5)
    assert np.array_equal(obs, again)
    fixed = LotSizingEnv("15x5", random_start=False)
    obs, _ = fixed.reset(seed=0)
    assert obs.tolist() == inst.initial_inventory.tolist()
    from gymnasium.utils.env_checker import check_env
    check_env(LotSizingEnv("15x5"), skip_render_check=True)


def test_instances_load_and_bad_input_is_a_user_error(tmp_path):
    for name, (n, m, _) in INSTANCES.items():
        inst = load_instance(name)
        assert (inst.n_items, inst.n_machines) == (n, m)
        assert set(np.unique(inst.lost_sales_costs)) <= {0.1, 1.1}
    assert load_instance("15x5").production[0].tolist()[:5] == [12, 11, 0, 0, 11]
    with pytest.raises(UserError, match="unknown lot-sizing instance"):
        load_instance("99x9")
    bad = dict(TINY, setup_costs=[[1, 2], [3, 4]])
    with pytest.raises(UserError, match="setup_costs"):
        instance_from_dict("bad", bad)
    env = tiny_env()
    env.reset(seed=0)
    with pytest.raises(UserError, match="0..3"):
        env.step(np.array([4, 0]))


def test_generator_structure():
    raw = generate_instance(25, 15, seed=7)
    prod = np.array(raw["machine_production"])
    assert prod.shape == (15, 25) and prod.max() <= 40 and (prod > 0).any(axis=1).all()
    assert 0.3 < (prod == 0).mean() < 0.5      # p0 = 0.4 for "cannot produce"
    assert np.array(raw["setup_costs"]).min() >= 15 and np.array(raw["setup_costs"]).max() <= 30
    assert raw == generate_instance(25, 15, seed=7)


@pytest.mark.parametrize("flags", [{}, {"observe_setups": True, "negative_production": False,
                                         "stored_lost_sales": False}])
def test_batched_env_matches_single_envs(flags):
    seeds = [11, 12, 13, 14, 15, 16]
    singles = [LotSizingEnv("15x5", **flags) for _ in seeds]
    for env, seed in zip(singles, seeds):
        env.reset(seed=seed)
    batched = BatchedLotSizing("15x5", len(seeds), **flags)
    batched.set_state(np.stack([e.inventory for e in singles]), np.stack([e.setups for e in singles]),
                      np.stack([e.demand for e in singles]))
    rng = np.random.default_rng(1)
    for t in range(100):
        actions = rng.integers(0, 16, (len(seeds), 5))
        post_before = batched.post_decision_obs(torch.as_tensor(actions))
        obs, reward, term, trunc, info = batched.step(torch.as_tensor(actions))
        if t == 99:
            obs = info["final_obs"]
        out = [e.step(a) for e, a in zip(singles, actions)]
        assert np.array_equal(obs.numpy(), np.stack([o[0] for o in out]))
        assert np.allclose(reward.numpy(), [o[1] for o in out], atol=1e-3)
        for key in ("post_decision_obs", "setup_cost", "lost_sales_cost", "holding_cost", "reward_decision"):
            assert np.allclose(info[key].numpy(), np.stack([o[4][key] for o in out]), atol=1e-3), key
        assert torch.equal(post_before, info["post_decision_obs"])
        assert bool(trunc.all()) == (t == 99) and not term.any()


def test_batched_reset_distribution_and_determinism():
    env = BatchedLotSizing("15x5", 256, seed=0)
    obs = env.reset()
    assert obs.min() >= 0 and obs.max() <= 99 and abs(obs.mean().item() - 49.5) < 1.0
    feasible = env.production[env.machine_index, env.setups] > 0
    assert feasible.all()
    d = env.demand.double()
    assert abs(d.mean().item() - 8.0) < 0.05 and abs(d.var().item() - 4.8) < 0.1
    assert torch.equal(BatchedLotSizing("15x5", 256, seed=0).reset(), obs)


def test_heuristic_campaigns_and_beats_random():
    env = BatchedLotSizing("15x5", 1)
    env.set_state([[5] + [90] * 14], [[1, 1, 1, 1, 1]], np.zeros((1, 101, 15)))
    # every machine is on item 1 whose stock 5 is low: all keep producing item 1 (campaign, no switch)
    assert campaign_action(env, 16, 90).tolist() == [[1, 1, 1, 1, 1]]
    env.set_state([[95] + [90] * 14], [[1, 1, 1, 1, 1]], np.zeros((1, 101, 15)))
    # item 1 is full and every other stock is above the reorder point: all machines idle
    assert campaign_action(env, 16, 90).tolist() == [[0, 0, 0, 0, 0]]
    env = BatchedLotSizing("15x5", 32)
    from envs.lotsizing.heuristic import evaluate
    heuristic = evaluate(env, 16, 90, seed=1).mean()
    env.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    total = sum(env.step(torch.randint(0, 16, (32, 5), generator=g))[1] for _ in range(100))
    assert heuristic > total.mean() + 3000


def test_frozen_lake_post_decision_is_intended_cell():
    desc = lake_map(0)
    plain = FrozenLakeEnv(desc=desc, is_slippery=False)
    slippery = FrozenLakeEnv(desc=desc, is_slippery=True)
    batched = BatchedFrozenLake(1, map_seed=0)
    for s in range(64):
        for a in range(4):
            (_, det_next, _, _), = plain.P[s][a]
            assert intended_cell(s, a, 8) == det_next or desc[s // 8][s % 8] in "HG"
            if desc[s // 8][s % 8] in "HG":
                continue
            gym_probs = {}
            for p, nxt, _, _ in slippery.P[s][a]:
                gym_probs[nxt] = gym_probs.get(nxt, 0) + p
            ours = {}
            for d in ((a - 1) % 4, a, (a + 1) % 4):
                nxt = int(batched.next_cell[s, d])
                ours[nxt] = ours.get(nxt, 0) + 1 / 3
            assert ours.keys() == gym_probs.keys()
            assert all(abs(ours[k] - gym_probs[k]) < 1e-9 for k in ours)
    env = FrozenLakePD(map_seed=0)
    env.reset(seed=0)
    _, r, _, _, info = env.step(2)
    assert info["post_decision_obs"] == 1 and info["reward_exogenous"] == r


def test_batched_frozen_lake_slips_uniformly():
    env = BatchedFrozenLake(3000, seed=0)
    env.reset()
    env.step(torch.full((3000, 1), 2))                 # RIGHT from the start corner
    moved = env.cell                                   # 1 (right), 8 (down), 0 (up -> wall)
    freq = torch.bincount(moved, minlength=64)[[0, 1, 8]].float() / 3000
    assert torch.allclose(freq, torch.full((3,), 1 / 3), atol=0.03)


@pytest.mark.parametrize("make", [lambda: BatchedLotSizing("15x5", 3, seed=4),
                                  lambda: BatchedFrozenLake(3, seed=4)])
def test_batched_state_dict_resumes_exactly(make):
    """A copy loaded from state_dict() mid-episode (and across an episode end) steps exactly like the original."""
    env, copy = make(), make()
    env.reset(seed=4)
    copy.reset(seed=99)
    g = torch.Generator().manual_seed(0)
    nvec = env.action_nvec
    act = lambda: torch.stack([torch.randint(0, n, (3,), generator=g) for n in nvec], 1)
    for _ in range(37):
        env.step(act())
    copy.load_state_dict(env.state_dict())
    for _ in range(150):
        a = act()
        out, out_copy = env.step(a), copy.step(a)
        for x, y in zip(out[:4], out_copy[:4]):
            assert torch.equal(x, y)
