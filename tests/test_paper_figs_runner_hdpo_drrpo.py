"""paper_figs.hdpo_vs_ppo and paper_figs.dr_rpo_robustness launch their runs through classic_rl.sweep: the flags
of every run give the config the scripts used to build in-process, every run has a slot of its own (PPO's
chunks share one), and a second invocation trains nothing and writes the same results."""
import dataclasses
import json
from pathlib import Path

import pytest

from algos import dr_rpo, hdpo
from algos.ppo import PPOConfig, presets as ppo_presets
from classic_rl import UserError
from classic_rl.config import parse_config, run_cli
from paper_figs import dr_rpo_robustness as drr
from paper_figs import hdpo_vs_ppo as hvp


def cli_config(cls, spec, root, presets=None):
    """The config the run's own process parses from the runner's command line (python -m algos.X ...)."""
    cmd = spec.fresh_command(root)
    assert cmd[1:3] == ["-m", f"algos.{spec.algo}"]
    return parse_config(cls, cmd[3:], presets=presets)


def without(cfg, *keys):
    d = dataclasses.asdict(cfg)
    for k in keys:
        d.pop(k)
    return d


class SweepRecorder:
    """Wraps run_sweep: keeps every call's specs and report."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, specs, root, **kw):
        report = self.real(specs, root, **kw)
        self.calls.append((list(specs), report))
        return report


# ---------------------------------------------------------------- hdpo_vs_ppo
@pytest.mark.parametrize("scale", ["smoke", "small"])
@pytest.mark.parametrize("lead_time,p", [(4, 9.0), (2, 19.0)])
def test_hdpo_vs_ppo_flags_give_the_in_process_configs(scale, lead_time, p, tmp_path):
    cfg = hvp.CompareConfig(scale=scale, lead_time=lead_time, underage_cost=p, seeds=2)
    root = hvp.run_root(cfg)
    for seed in (1, 2):
        spec = hvp.hdpo_spec(cfg, seed)
        got = cli_config(hdpo.HDPOConfig, spec, root)
        assert got.run_dir == str(spec.slot(root)) and got.progress is False
        assert without(got, "run_dir") == without(hvp.hdpo_config(cfg, seed), "run_dir")
        assert got.torch_threads == 1 and got.test_curve and got.seed == seed
        # PPO: what the script used to parse in-process (its base argv + the chunk's --total-steps)
        ppo = dict(hvp.SCALES[scale]["ppo"])
        stages, total = ppo.pop("stages"), ppo.pop("total_steps")
        env_id = hvp.gym_env_id(lead_time, p)
        old = ["--env", env_id, "--seed", str(seed), "--run-dir", "runs", "--device", cfg.device,
               "--torch-threads", "1", "--no-progress"]
        for key, value in ppo.items():
            old += [f"--{key.replace('_', '-')}", str(value)]
        chunks = hvp.ppo_chunks(cfg)
        assert chunks == [k * total // stages for k in range(1, stages + 1)]
        for steps in (chunks[0], chunks[-1]):
            want = parse_config(PPOConfig, old + ["--total-steps", str(steps)], presets=ppo_presets)
            got = cli_config(PPOConfig, hvp.ppo_spec(cfg, seed, steps), root, presets=ppo_presets)
            assert without(got, "run_dir") == without(want, "run_dir")


def test_hdpo_vs_ppo_slots_distinct_per_run_and_shared_by_ppo_chunks():
    cfg = hvp.CompareConfig(scale="small", seeds=3)
    root = hvp.run_root(cfg)
    chunks = hvp.ppo_chunks(cfg)
    slots = [hvp.hdpo_spec(cfg, s).slot(root) for s in (1, 2, 3)] + \
            [hvp.ppo_spec(cfg, s, chunks[0]).slot(root) for s in (1, 2, 3)]
    assert len(set(slots)) == 6
    for s in (1, 2, 3):  # every chunk of a seed extends the same run
        assert {hvp.ppo_spec(cfg, s, steps).slot(root) for steps in chunks} == {slots[3 + s - 1]}
    other = hvp.CompareConfig(scale="small", seeds=3, lead_time=2, underage_cost=4.0)
    assert hvp.hdpo_spec(other, 1).slot(root) != slots[0] and hvp.ppo_spec(other, 1, 10).slot(root) != slots[3]
    assert hvp.run_root(hvp.CompareConfig(scale="smoke")) != root


def test_hdpo_vs_ppo_instance_outside_the_registered_grid_is_a_clean_error(capsys):
    with pytest.raises(SystemExit) as exit_info:   # the config's validation: argparse's exit status 2
        run_cli(hvp.main, ["--lead-time", "2", "--underage-cost", "9.5"])
    assert exit_info.value.code == 2
    assert "not one of them" in capsys.readouterr().err


def test_hdpo_run_stopped_early_counts_as_finished(tmp_path, monkeypatch):
    """A --patience / --time-limit stop is done below the budget and cannot be resumed: never re-launched."""
    cfg = hvp.CompareConfig(scale="small", run_dir=str(tmp_path))
    root = hvp.run_root(cfg)
    spec = hvp.hdpo_spec(cfg, 1)
    run_dir = spec.slot(root) / "hdpo" / "lost_sales-L4-p9" / "1-x"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"")
    (run_dir / "config.json").write_text("{}")
    summary = {"status": "done", "env_steps": 1000, "stopped_early": "--time-limit 2.5 min reached"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    recorder = SweepRecorder(hvp.run_sweep)
    monkeypatch.setattr(hvp, "run_sweep", recorder)
    hvp.train_hdpo(cfg, root)
    assert recorder.calls == []
    assert hvp.finished_summary(spec, root)["run_dir"] == str(run_dir)
    summary["stopped_early"] = None  # done below the budget without a stop: it must be resumed
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert hvp.finished_summary(spec, root) is None


def test_hdpo_vs_ppo_second_invocation_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(hvp.SCALES, "smoke", dict(
        hdpo=dict(n_train=128, n_envs=64, eval_episodes=64, n_test=64, train_periods=30, train_ignore=10,
                  dev_periods=30, dev_ignore=10, test_periods=60, test_ignore=20, epochs=4, dev_every=2),
        ppo=dict(total_steps=1024, stages=2, eval_every=512, eval_episodes=1, n_steps=256)))
    recorder = SweepRecorder(hvp.run_sweep)
    monkeypatch.setattr(hvp, "run_sweep", recorder)
    argv = ["--scale", "smoke", "--lead-time", "2", "--underage-cost", "4", "--run-dir", str(tmp_path / "runs")]
    hvp.main(argv + ["--out", str(tmp_path / "a")])
    # one HDPO sweep, then one PPO sweep per chunk, each launching its run
    assert [[(s.algo, s.total_steps) for s in specs] for specs, _ in recorder.calls] == \
        [[("hdpo", 4 * 128 * 30)], [("ppo", 512)], [("ppo", 1024)]]
    assert [[r["outcome"] for r in report.results] for _, report in recorder.calls] == \
        [["done"], ["done"], ["resumed"]]
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    ppo_slot = Path(first["runs"][1]["run_dir"]).parents[2]
    assert ppo_slot == hvp.ppo_spec(hvp.CompareConfig(lead_time=2, underage_cost=4.0), 1, 1).slot(
        tmp_path / "runs" / "smoke").resolve()
    book = json.loads((ppo_slot / hvp.CHUNK_COSTS).read_text())
    assert sorted(book["chunks"]) == ["1024", "512"]

    recorder.calls.clear()
    hvp.main(argv + ["--out", str(tmp_path / "b")])
    assert recorder.calls == []  # every run finished: nothing launched, the chunk costs read back
    second = json.loads((tmp_path / "b" / "results.json").read_text())
    assert second["runs"] == first["runs"]
    assert (tmp_path / "b" / "table.md").read_text() == (tmp_path / "a" / "table.md").read_text()

    # HDPO through the runner == HDPO in-process with the config the script used to build
    cfg = hvp.CompareConfig(scale="smoke", lead_time=2, underage_cost=4.0)
    inproc = hdpo.train(dataclasses.replace(hvp.hdpo_config(cfg, 1), run_dir=str(tmp_path / "inproc")))
    assert first["runs"][0]["final_cost"] == inproc["test_cost"]

    # a chunk whose checkpoint is gone and was never evaluated is an error, not a silently wrong point
    (ppo_slot / hvp.CHUNK_COSTS).unlink()
    with pytest.raises(UserError, match="never evaluated"):
        hvp.main(argv + ["--out", str(tmp_path / "c")])


# ---------------------------------------------------------------- dr_rpo_robustness
@pytest.mark.parametrize("scale", sorted(drr.SCALES))
def test_dr_rpo_flags_give_the_in_process_configs_and_distinct_slots(scale):
    cfg = drr.FigConfig(scale=scale)
    sc = drr.SCALES[scale]
    root = drr.run_root(cfg)
    # the keyword arguments the script passed to DRRPOConfig in-process, per run
    old = [dict(env="LinearMDP", method=a, rho=r, n_envs=sc["reps"], total_steps=sc["episodes"],
                eval_episodes=sc["test_episodes"]) for a, r in drr.LINEAR_RUNS]
    old += [dict(env="AmericanPut", method=a, rho=r, n_envs=sc["put_reps"], total_steps=sc["put_episodes"],
                 eval_episodes=sc["test_episodes"]) for a, r in drr.PUT_RUNS]
    old += [dict(env="LinearMDP", method="dr_rpo", rho=0.6, beta=beta, n_envs=sc["regret_reps"],
                 total_steps=sc["regret_episodes"], eval_episodes=1) for beta in (0.3, 1.0)]
    specs = drr.all_specs(cfg, sc)
    assert len(specs) == len(old) == 11
    assert len({s.slot(root) for s in specs}) == len(specs)
    for spec, kw in zip(specs, old):
        want = dr_rpo.DRRPOConfig(seed=cfg.seed, device=cfg.device, run_dir="x", eval_every=0, progress=False, **kw)
        # train() gives the fields left at None the env's preset; the CLI does so while parsing
        want = dataclasses.replace(want, **{k: v for k, v in dr_rpo.presets(want.env).items()
                                            if getattr(want, k) is None})
        got = cli_config(dr_rpo.DRRPOConfig, spec, root, presets=dr_rpo.presets)
        assert without(got, "run_dir") == without(want, "run_dir")


def test_dr_rpo_robustness_end_to_end_second_invocation_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(drr.SCALES, "smoke", dict(reps=2, episodes=6, test_episodes=2, put_reps=2, put_episodes=4,
                                                  regret_reps=2, regret_episodes=50))
    recorder = SweepRecorder(drr.run_sweep)
    monkeypatch.setattr(drr, "run_sweep", recorder)
    argv = ["--scale", "smoke", "--run-dir", str(tmp_path / "runs"), "--workers", "2"]
    first = drr.main(argv + ["--out", str(tmp_path / "a")])
    assert len(recorder.calls) == 1
    assert [r["outcome"] for r in recorder.calls[0][1].results] == ["done"] * 11
    out = tmp_path / "a" / "dr_rpo_robustness-smoke"
    for name in ("linear_mdp_return_vs_shift.png", "american_put_return_vs_p.png", "linear_mdp_regret.png"):
        assert (out / name).stat().st_size > 5_000
    assert "| 0.3 |" in first and "| oppo |" in first

    recorder.calls.clear()
    second = drr.main(argv + ["--out", str(tmp_path / "b")])
    assert recorder.calls == []
    # the tables hold train seconds read from the runs: identical, since nothing was trained again
    assert second == first

    # a run through the runner == the same run in-process (what the script used to do)
    cfg = drr.FigConfig(scale="smoke", run_dir=str(tmp_path / "runs"))
    spec = drr.regret_specs(cfg, drr.SCALES["smoke"])[0.3]
    via_runner = drr.result(spec, drr.run_root(cfg))
    inproc = dr_rpo.train(dr_rpo.DRRPOConfig(env="LinearMDP", method="dr_rpo", rho=0.6, beta=0.3, n_envs=2,
                                             total_steps=50, eval_episodes=1, eval_every=0, progress=False,
                                             run_dir=str(tmp_path / "inproc")))
    for key in ("cumulative_regret_per_replication", "shifts", "p_robust_action_at_x1", "headline_value"):
        assert via_runner[key] == inproc[key]
