"""HDPO vs PPO comparison: the unit conversions against hand computations, the PPO policy in the batched
simulator against the gym env it was trained in, and a tiny end-to-end run that writes the figure."""
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from algos import hdpo
from classic_rl.config import run_cli
from classic_rl.networks import ActorCritic
from classic_rl.normalize import ObsNormalizer
from envs.inventory import optimal, settings as st
from envs.inventory.simulator import routing
from paper_figs import hdpo_vs_ppo as hvp


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def hand_lost_sales_costs(initial, demands, orders, lead_time, p, h=1.0):
    """Independent lost-sales recursion in plain Python: pipeline[j] arrives in j periods, pipeline[0] is
    on hand; an order placed now lands L periods later (serves the demand of period t + L)."""
    pipe = list(initial)
    costs = []
    for d, q in zip(demands, orders):
        left = pipe[0] - d
        costs.append(h * max(left, 0.0) + p * max(-left, 0.0))
        pipe = [pipe[1] + max(left, 0.0)] + pipe[2:] + [0.0]
        pipe[lead_time - 1] += q
    return np.array(costs)


@pytest.mark.parametrize("lead_time,p", [(4, 9.0), (2, 19.0)])
def test_episode_return_to_cost_matches_hand_recursion(lead_time, p):
    """-return / length of a gym episode == mean per-period cost of a hand recursion on its demands."""
    env = gym.make(hvp.gym_env_id(lead_time, p))
    assert env.unwrapped.net.edge_lead.tolist() == [lead_time]  # the registered kwargs reach the env
    obs, _ = env.reset(seed=3)
    order, demands, ret, length, done = 4.5, [], 0.0, 0, False
    while not done:
        obs_next, reward, terminated, truncated, info = env.step(np.array([order], np.float32))
        demands.append(float(info["demand"][0]))
        ret, length, done = ret + reward, length + 1, terminated or truncated
    hand = hand_lost_sales_costs(obs.astype(float), demands, [order] * length, lead_time, p)
    cost = hvp.episode_return_to_cost(np.array([ret]), np.array([length]))[0]
    assert length == env.unwrapped.periods
    assert cost == pytest.approx(hand.mean(), rel=1e-5)
    # and the plain arithmetic of the conversion
    assert hvp.episode_return_to_cost(np.array([-700.0, -50.0]), np.array([100, 10])).tolist() == [7.0, 5.0]


def make_ppo_like_policy(lead_time, p, seed=0):
    env = gym.make(hvp.gym_env_id(lead_time, p))
    torch.manual_seed(seed)
    model = ActorCritic(env.observation_space, env.action_space, [16, 16], "tanh", True, 0.0, [])
    with torch.no_grad():  # orders around the mean demand, some of them clipped at 0 or max_order
        model.mean_head.weight.normal_(0, 3.0)
        model.mean_head.bias.fill_(5.0)
    obs_norm = ObsNormalizer(env.observation_space.shape, True, "cpu")
    obs_norm(torch.rand(64, *env.observation_space.shape) * 10, update=True)  # non-trivial statistics
    return env, model, obs_norm


@pytest.mark.parametrize("round_orders", [False, True])
def test_ppo_policy_in_simulator_equals_gym_rollout(round_orders):
    """The simulator evaluation of a PPO actor == stepping the gym env (PPO's own path: normalize the
    observation, deterministic mean, env clipping) on the same demands and initial states."""
    lead_time, p, n, periods, ignore = 3, 9.0, 4, 25, 5
    env, model, obs_norm = make_ppo_like_policy(lead_time, p)
    policy = hvp.PPOOrderPolicy(model, obs_norm, env.unwrapped.max_order)
    net = st.make_network("lost_sales", lead_time, p)
    scen = st.make_test(net, n, periods, ignore)
    sim = hdpo.evaluate(net, policy, scen, routing(net), round_actions=round_orders)

    inner = env.unwrapped
    gym_costs, n_clipped = [], 0
    for i in range(n):
        env.reset(seed=i)
        inner._x = scen.initial[i:i + 1].clone()
        demands = iter(scen.demand[i, :, :].T.numpy())
        inner._demand = lambda: next(demands).astype(np.float64)
        obs = inner._obs()
        for t in range(periods):
            with torch.no_grad():
                action = model.act(obs_norm(torch.as_tensor(obs)[None]), deterministic=True)[0][0].numpy()
            n_clipped += int(action[0] < 0 or action[0] > inner.max_order)
            if round_orders:
                action = np.round(np.clip(action, 0, inner.max_order))
            obs, reward, *_ = env.step(action)
            if t >= ignore:
                gym_costs.append(-reward)
    assert n_clipped > 0  # the clipping path is exercised
    assert sim == pytest.approx(np.mean(gym_costs), rel=1e-5)


def test_tiny_end_to_end_writes_figure_and_consistent_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(hvp.SCALES, "smoke", dict(
        hdpo=dict(n_train=128, n_envs=64, eval_episodes=64, n_test=64, train_periods=30, train_ignore=10,
                  dev_periods=30, dev_ignore=10, test_periods=60, test_ignore=20, epochs=4, dev_every=2),
        ppo=dict(total_steps=1024, stages=2, eval_every=512, eval_episodes=1, n_steps=256)))
    out = tmp_path / "out"
    hvp.main(["--scale", "smoke", "--lead-time", "2", "--underage-cost", "4", "--run-dir", str(tmp_path / "runs"),
              "--out", str(out)])
    assert (out / "hdpo_vs_ppo.png").stat().st_size > 10_000
    saved = json.loads((out / "results.json").read_text())
    assert saved["reference"] == pytest.approx(optimal.lost_sales_rvi(2, 4.0))
    runs = {r["method"]: r for r in saved["runs"]}
    assert set(runs) == {"HDPO", "PPO"}
    # HDPO: its own summary; samples are epochs x paths x periods
    summary = json.loads((Path(runs["HDPO"]["run_dir"]) / "summary.json").read_text())
    assert runs["HDPO"]["final_cost"] == summary["test_cost"]
    assert runs["HDPO"]["final_samples"] == 4 * 128 * 30
    # PPO: trained on the L=2, p=4 env; its final cost is its checkpoint on HDPO's test scenarios
    ppo_dir = Path(runs["PPO"]["run_dir"])
    assert json.loads((ppo_dir / "config.json").read_text())["config"]["env"] == "InventoryLostSales-L2-p4-v0"
    assert runs["PPO"]["samples"] == [512, 1024] and runs["PPO"]["final_samples"] == 1024  # 2 chunks, one run
    assert runs["PPO"]["wall"][0] < runs["PPO"]["wall"][1]  # the resumed run's clock goes on
    net = st.make_network("lost_sales", 2, 4.0)
    test = st.make_test(net, 64, 60, 20)
    policy = hvp.load_ppo_policy(ppo_dir, "InventoryLostSales-L2-p4-v0", "cpu")
    assert runs["PPO"]["final_cost"] == pytest.approx(hdpo.evaluate(net, policy, test, routing(net), True))
    assert runs["PPO"]["cost"][-1] == runs["PPO"]["final_cost"]
    eval_csv = np.genfromtxt(ppo_dir / "eval.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert eval_csv["env_steps"].tolist() == [0, 512, 1024]
    assert runs["PPO"]["episode_cost"] == pytest.approx((-eval_csv["return_mean"] / eval_csv["length_mean"]).tolist())
    table = (out / "table.md").read_text()
    gap = 100 * (runs["PPO"]["final_cost"] - saved["reference"]) / saved["reference"]
    assert f"| PPO | 1 | {runs['PPO']['final_cost']:.4f} | {gap:.2f} |" in table


@pytest.mark.parametrize("argv,message", [(["--seeds", "0"], "--seeds must be >= 1"),
                                          (["--lead-time", "0"], "--lead-time must be >= 1"),
                                          (["--scale", "paper"], "invalid choice")])
def test_bad_input_is_a_clean_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(hvp.main, argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
