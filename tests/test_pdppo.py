"""PDPPO: advantage combination and critic targets against hand computations on a fixed 3-step
trajectory, the per-head clipped actor loss against a hand computation, CLI errors, smoke runs and
determinism (resume and the run contract: tests/test_run_contract.py)."""
import csv
import json
import math
import statistics

import pytest
import torch

from algos.pdppo import (PDPPOConfig, actor_loss, advantages_and_targets, combine_advantages, main,
                         sample_actions, train)
from classic_rl import UserError
from classic_rl.config import parse_config

GAMMA = 0.5
# One env, 3 steps. The first episode ends at t = 1; the second starts at t = 2 and is cut by the rollout
# end, so t = 2 bootstraps from the last row of next_values (V(s_3) = 4, V^x(s^x_3) = 6).
R_DEC = [-2.0, 0.0, -4.0]
R_EXO = [-1.0, -3.0, -1.0]
END = [False, True, False]
V = [1.0, 2.0, 3.0]
V_NEXT = [2.0, 3.0, 4.0]
VX = [0.5, -1.0, 2.0]
VX_NEXT = [-1.0, 2.0, 6.0]


def column(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype).unsqueeze(1)  # [T, N=1]


def run(critics, how="max", lam=1.0):
    adv, tp, tx = advantages_and_targets(critics, how, column(R_DEC), column(R_EXO), column(V), column(V_NEXT),
                                         column(VX), column(VX_NEXT), column(END, torch.bool), GAMMA, lam)
    flat = lambda x: None if x is None else x.squeeze(1).tolist()
    return flat(adv), flat(tp), flat(tx)


def test_dual_split_targets_and_max_advantage():
    adv, target_pre, target_post = run("dual-split")
    # pre stream r^W: R_1 = -3 (episode end), R_0 = -1 + 0.5 * -3, R_2 = -1 + 0.5 * V(s_3)
    assert target_pre == pytest.approx([-2.5, -3.0, 1.0])
    # post stream r^x: R^x_1 = 0, R^x_0 = -2 + 0.5 * 0, R^x_2 = -4 + 0.5 * V^x(s^x_3)
    assert target_post == pytest.approx([-2.0, 0.0, -1.0])
    # A^pre = [-3.5, -5, -2], A^x = [-2.5, 1, -3] -> elementwise max
    assert adv == pytest.approx([-2.5, 1.0, -2.0])


@pytest.mark.parametrize("how,expected", [("min", [-3.5, -5.0, -3.0]), ("mean", [-3.0, -2.0, -2.5]),
                                          ("pre", [-3.5, -5.0, -2.0]), ("post", [-2.5, 1.0, -3.0])])
def test_other_combinations(how, expected):
    assert run("dual-split", how)[0] == pytest.approx(expected)


def test_gae_lambda_below_one():
    adv, target_pre, _ = run("dual-split", "pre", lam=0.5)
    # deltas of the pre stream: -1 + 0.5*2 - 1 = -1, -3 - 2 = -5 (terminal), -1 + 0.5*4 - 3 = -2
    expected = [-1 + GAMMA * 0.5 * -5, -5.0, -2.0]
    assert adv == pytest.approx(expected)
    assert target_pre == pytest.approx([a + v for a, v in zip(expected, V)])


def test_pre_only_is_the_authors_ppo_baseline():
    adv, target_pre, target_post = run("pre-only")
    # full reward [-3, -3, -5]: R = [-3 + 0.5 * -3, -3, -5 + 0.5 * 4]
    assert target_pre == pytest.approx([-4.5, -3.0, -3.0]) and target_post is None
    assert adv == pytest.approx([-5.5, -5.0, -6.0])


def normalised_full_return():
    returns = [-3 + GAMMA * -3, -3.0, -5.0]  # no bootstrap in the shared-return variant
    mean, sd = statistics.mean(returns), statistics.stdev(returns)
    return [(r - mean) / sd for r in returns]


def test_dual_shared_and_one_critic():
    z = normalised_full_return()
    adv, target_pre, target_post = run("dual-shared")
    assert target_pre == pytest.approx(z, abs=1e-5) and target_post == pytest.approx(z, abs=1e-5)
    # max(R~ - V, R~ - V^x) = R~ - min(V, V^x)
    assert adv == pytest.approx([r - min(a, b) for r, a, b in zip(z, V, VX)], abs=1e-5)
    adv, target_pre, target_post = run("one-critic")
    assert target_pre is None and target_post == pytest.approx(z, abs=1e-5)
    assert adv == pytest.approx([r - b for r, b in zip(z, VX)], abs=1e-5)


def test_unknown_combination_is_a_user_error():
    with pytest.raises(UserError, match="max, min"):
        combine_advantages(torch.zeros(1), torch.zeros(1), "median")


def test_actor_loss_per_head_and_joint_by_hand():
    # one state, 2 heads x 2 classes; actions (1, 0); old per-head log-probs chosen so that the ratios are
    # rho_0 = 1.5 (clipped to 1.2) and rho_1 = 0.7 (clipped to 0.8)
    logits = torch.tensor([[[0.0, 1.0], [2.0, 0.0]]], requires_grad=True)
    actions = torch.tensor([[1, 0]])
    p = [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-2.0))]  # pi_0(1), pi_1(0)
    old = torch.tensor([[math.log(p[0] / 1.5), math.log(p[1] / 0.7)]])
    ent = [-(q * math.log(q) + (1 - q) * math.log(1 - q)) for q in p]
    for adv, per_head in ((2.0, [1.2 * 2, 0.7 * 2]), (-2.0, [1.5 * -2, 0.8 * -2])):
        loss, stats = actor_loss(logits, actions, old, torch.tensor([adv]), 0.2, 0.1, True)
        assert loss.item() == pytest.approx(-sum(per_head) / 2 - 0.1 * sum(ent) / 2, rel=1e-5)
    # joint ratio 1.5 * 0.7 = 1.05 lies inside the clip range: loss = -1.05 * A
    loss, _ = actor_loss(logits, actions, old, torch.tensor([2.0]), 0.2, 0.0, False)
    assert loss.item() == pytest.approx(-1.05 * 2.0, rel=1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sample_actions_log_probs():
    torch.manual_seed(0)
    logits = torch.randn(64, 3, 5)
    actions, log_probs = sample_actions(logits)
    assert actions.shape == (64, 3) and actions.max() < 5
    expected = torch.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(log_probs, expected)


def test_cli_help_and_bad_input(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(PDPPOConfig, ["--help"])
    assert exc.value.code == 0 and "--critics" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        parse_config(PDPPOConfig, ["--env", "Hopper"])
    assert exc.value.code == 2 and "post-decision" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        parse_config(PDPPOConfig, ["--update-every", "401"])
    assert exc.value.code == 2


def tiny(tmp_path, *extra):
    argv = ["--total-steps", "800", "--update-every", "400", "--n-epochs", "2", "--window-steps", "400",
            "--eval-every", "0", "--eval-episodes", "2", "--run-dir", str(tmp_path), "--no-progress",
            "--device", "cpu", *extra]
    return train(parse_config(PDPPOConfig, argv), argv).path


def rows(path):
    with open(path / "metrics.csv") as fh:
        return [{k: v for k, v in r.items() if k not in ("wall_time", "fps")} for r in csv.DictReader(fh)]


def test_smoke_and_determinism(tmp_path):
    a = tiny(tmp_path / "a")
    b = tiny(tmp_path / "b")
    assert rows(a) == rows(b) and len(rows(a)) == 2
    assert float(rows(a)[0]["train_episodes"]) == 4  # 4 plants x 100 steps = 4 episodes per 400 steps
    assert rows(a)[0]["window_return"] == rows(a)[0]["train_return_mean"]  # window = one update here
    cfg = json.loads((a / "config.json").read_text())["config"]
    summary = json.loads((a / "summary.json").read_text())
    assert summary["env_config"]["negative_production"] is True and cfg["critics"] == "dual-split"
    assert summary["variant"] == "pdppo" and summary["windows"] == 2
    assert summary["headline"] == "final_eval_return" and summary["headline_value"] is not None
    assert (a / "eval.csv").exists()
    assert rows(tiny(tmp_path / "c", "--seed", "2")) != rows(a)


@pytest.mark.parametrize("extra", [["--critics", "pre-only"], ["--critics", "one-critic"],
                                   ["--critics", "dual-shared", "--combine", "mean", "--no-per-head-ratio"],
                                   ["--env", "FrozenLakePD-8x8", "--no-train-actor-trunk"],
                                   ["--observe-setups", "--no-negative-production", "--checkpoint-every", "400"]])
def test_variants_run(tmp_path, extra):
    path = tiny(tmp_path, *extra)
    assert len(rows(path)) == 2 and all(r["policy_loss"] not in ("", "nan") for r in rows(path))
    from classic_rl.utils import load_checkpoint
    state = load_checkpoint(path / "checkpoints" / "latest.pt")
    assert state["step"] == 800 and {"actor", "opt_actor", "env", "loop"} <= set(state["objects"])


def test_short_run_is_announced_and_every_update_writes_a_row(tmp_path, capsys):
    """--total-steps shorter than a window (and not a whole number of rollouts) still logs every update."""
    argv = ["--total-steps", "700", "--update-every", "400", "--n-epochs", "1", "--eval-every", "0",
            "--eval-episodes", "1", "--run-dir", str(tmp_path), "--no-progress"]
    train(parse_config(PDPPOConfig, argv), argv)
    assert "--total-steps 700 runs 800" in capsys.readouterr().err
    path = next(tmp_path.rglob("metrics.csv")).parent
    assert [r["env_steps"] for r in rows(path)] == ["400", "800"]
    assert all(r["window_return"] == "" for r in rows(path))  # the 4000-step window never closed


@pytest.mark.slow
def test_pdppo_learns_on_15x5(tmp_path):
    """A few minutes: the authors' curves (and ours) first fall towards the random policy's return (about
    -12 800) while the critics catch up with returns of order -500, then climb; after 40k steps the last
    logged return must be well above the worst one."""
    main(["--total-steps", "40000", "--eval-every", "0", "--eval-episodes", "1", "--run-dir", str(tmp_path),
          "--no-progress", "--device", "cpu"])
    curve = [float(r["window_return"]) for r in rows(next(tmp_path.rglob("metrics.csv")).parent)
             if r["window_return"] != ""]
    assert len(curve) == 10
    assert curve[-1] > min(curve) + 2000 and curve[-1] > -9000


def test_paper_metrics_and_welch_by_hand():
    import numpy as np
    from scipy import stats

    from analysis.runs import Run
    from paper_figs.pdppo_lotsizing import paper_metrics, welch_greater

    run = Run(path=None, algo="pdppo", env="LotSizing-15x5", seed=1, config={},
              metrics={"env_steps": np.array([4000.0, 8000.0, 12000.0]),
                       "window_return": np.array([-9000.0, np.nan, -7000.0])},
              summary={"final_eval_return": -6500.0})
    m = paper_metrics([run], max_steps=8000)      # the point at 12000 lies beyond the budget
    assert m["max"].tolist() == [-9000.0] and m["cumulative"].tolist() == [-9000.0]
    m = paper_metrics([run], max_steps=12000)
    assert m["max"].tolist() == [-7000.0] and m["cumulative"].tolist() == [-16000.0]
    a, b = np.array([3.0, 5.0, 4.0, 6.0]), np.array([1.0, 2.0, 4.0])
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)   # Welch-Satterthwaite
    assert welch_greater(a, b) == pytest.approx((t, stats.t.sf(t, dof)))
    assert all(math.isnan(x) for x in welch_greater(a[:1], b))


def test_lotsizing_figure_runs_go_through_the_sweep_runner(tmp_path):
    """paper_figs.pdppo_lotsizing at the smoke scale: 2 seeds x (pdppo, ppo-authors) sweep entries, each in a
    slot of its own, each a command algos.pdppo parses into the figure's settings; a finished run in a slot
    is the one analysed, and a larger budget makes it unfinished again (the runner then extends it)."""
    from algos.ppo import PPOConfig
    from classic_rl.sweep import plan
    from paper_figs.pdppo_lotsizing import SCALES, FigConfig, finished_runs, method, run_specs

    specs = run_specs(FigConfig(), dict(SCALES["smoke"]))
    assert [(s.algo, s.env, s.seed, s.total_steps) for s in specs] == \
        [("pdppo", "LotSizing-15x5", seed, 4000) for seed in (1, 1, 2, 2)]
    assert len({s.slot(tmp_path) for s in specs}) == 4
    for spec, critics in zip(specs, ["dual-split", "pre-only"] * 2):
        cmd = spec.fresh_command(tmp_path)
        assert cmd[1:3] == ["-m", "algos.pdppo"]
        cfg = parse_config(PDPPOConfig, cmd[3:])
        assert (cfg.critics, cfg.seed, cfg.total_steps, cfg.window_steps, cfg.eval_every, cfg.eval_episodes,
                cfg.checkpoint_every, cfg.train_actor_trunk, cfg.device, cfg.run_dir) == \
            (critics, spec.seed, 4000, 800, 0, 4, 800, True, "cpu", str(spec.slot(tmp_path)))
    more = run_specs(FigConfig(frozen_trunk=True, instance="25x15"), dict(SCALES["smoke"], seeds=[3]),
                     generic_ppo=True)
    assert [(s.algo, s.env, s.seed) for s in more] == [("pdppo", "LotSizing-25x15", 3)] * 2 + \
        [("ppo", "LotSizing-25x15", 3)]
    assert not parse_config(PDPPOConfig, more[0].fresh_command(tmp_path)[3:]).train_actor_trunk
    assert parse_config(PPOConfig, more[2].fresh_command(tmp_path)[3:]).eval_episodes == 4

    run_dir = specs[2].slot(tmp_path) / "2-20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"algo": "pdppo", "env": "LotSizing-15x5", "seed": 2}))
    (run_dir / "summary.json").write_text(json.dumps({"status": "done", "env_steps": 4000, "variant": "pdppo"}))
    assert [plan(s, tmp_path)[0] for s in specs] == ["start", "start", "skip", "start"]
    assert [(method(r), r.seed) for r in finished_runs(specs, tmp_path)] == [("pdppo", 2)]
    assert finished_runs(run_specs(FigConfig(), dict(SCALES["smoke"], total_steps=8000)), tmp_path) == []


def test_frozen_lake_pre_only_resume_equals_uninterrupted(tmp_path):
    """The contract test resumes lot-sizing dual-split; here the other env and the one-critic layout."""
    extra = ["--env", "FrozenLakePD-8x8", "--critics", "pre-only", "--hidden-sizes", "16", "--eval-every", "400"]
    whole = tiny(tmp_path / "whole", *extra)
    half = tiny(tmp_path / "half", *extra, "--total-steps", "400")
    main(["--resume", str(half), "--total-steps", "800", "--no-progress"])
    assert rows(half) == rows(whole)
    with open(half / "eval.csv") as a, open(whole / "eval.csv") as b:
        drop = lambda fh: [{k: v for k, v in r.items() if k != "wall_time"} for r in csv.DictReader(fh)]
        assert drop(a) == drop(b)
