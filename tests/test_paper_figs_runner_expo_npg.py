"""paper_figs.expo_sample_efficiency and paper_figs.npg_sample_complexity launch their training runs through
the sweep runner: one slot per run, commands the algorithms accept, diverged runs kept as censored runs, and a
second invocation that skips every finished run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from classic_rl.config import parse_config
from classic_rl.sweep import RunSpec
from paper_figs import expo_sample_efficiency as expo_fig
from paper_figs import npg_sample_complexity as npg_fig


def _outcomes(root: Path) -> list[str]:
    return [r["outcome"] for r in json.loads((root / "sweep.json").read_text())["runs"]]


def _fake_run(spec: RunSpec, root: Path, summary: dict | None, name: str = "1-20250101-000000") -> Path:
    """A run directory inside the spec's slot, as the run session leaves it."""
    run_dir = spec.slot(root) / spec.algo / spec.env / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


# ------------------------------------------------------------------------------------------- EXPO vs SAC
@pytest.mark.parametrize("scale", sorted(expo_fig.SCALES))
def test_expo_specs_one_slot_per_algo_env_seed(scale, tmp_path):
    sc = expo_fig.SCALES[scale]
    specs = expo_fig.run_specs(sc)
    keys = {(s.algo, s.env, s.seed) for s in specs}
    assert keys == {(a, env, seed) for env, _ in sc["envs"] for a in ("expo", "sac") for seed in sc["seeds"]}
    assert len(keys) == len(specs)
    assert len({s.slot(tmp_path) for s in specs}) == len(specs)
    for s in specs:
        cmd = s.fresh_command(tmp_path)
        assert cmd[1:3] == ["-m", f"algos.{s.algo}"]
        assert cmd[cmd.index("--env") + 1] == s.env
        dataset = dict(sc["envs"])[s.env]
        assert cmd[cmd.index("--dataset") + 1] == dataset  # the data, not only the algorithm's default
        assert cmd[cmd.index("--torch-threads") + 1] == "1"
        assert cmd[cmd.index("--total-steps") + 1] == str(sc["steps"])
        assert cmd[cmd.index("--eval-every") + 1] == str(sc["eval_every"])
        assert s.num_gpus == (1.0 if scale == "paper" else 0.0)


def test_expo_commands_parse_with_the_algorithms_configs(tmp_path):
    import algos.expo as expo
    import algos.sac as sac

    for s in expo_fig.run_specs(expo_fig.SCALES["smoke"])[::2]:
        argv = s.fresh_command(tmp_path)[3:]
        if s.algo == "expo":
            cfg = parse_config(expo.EXPOConfig, argv, presets=lambda env: expo.presets_for(env, "cpu"),
                               preset_field="env")
            assert cfg.n_edit == 2 and cfg.denoiser_width == 32  # the smoke flags win over the CPU preset
        else:
            cfg = parse_config(sac.SACConfig, argv, presets=sac.presets, preset_field="dataset")
            assert cfg.actor_hidden == [32, 32]
        assert (cfg.env, cfg.dataset, cfg.seed, cfg.torch_threads) == ("Hopper", "hopper-random", s.seed, 1)
        assert cfg.checkpoint_every == 100 and cfg.device == "cpu" and cfg.total_steps == 300


def test_expo_finished_dirs_use_only_finished_slots(tmp_path):
    specs = expo_fig.run_specs(expo_fig.SCALES["smoke"])  # expo seeds 1, 2, then sac seeds 1, 2
    done = _fake_run(specs[1], tmp_path, {"status": "done", "env_steps": 300})
    _fake_run(specs[0], tmp_path, {"status": "done", "env_steps": 200})  # short of the target: resumed
    _fake_run(specs[2], tmp_path, {"status": "diverged", "env_steps": 50})
    assert expo_fig.finished_dirs(specs, tmp_path) == {("expo", "Hopper"): [done]}


def test_expo_smoke_end_to_end_second_invocation_skips_every_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "unused"))  # main() points it at out/minari
    out = tmp_path / "expo"
    argv = ["--scale", "smoke", "--out", str(out), "--seeds", "1", "--steps", "200", "--workers", "2"]
    assert expo_fig.main(argv) == 0
    root = out / "runs"
    assert sorted(_outcomes(root)) == ["done", "done"]
    table = (out / "expo_sample_efficiency_smoke.md").read_text()
    assert table.startswith("| env | dataset |") and "| Hopper | hopper-random |" in table
    assert (out / "expo_sample_efficiency_smoke.png").stat().st_size > 1000
    assert "| Hopper | hopper-random |" in capsys.readouterr().out  # the table is printed
    assert expo_fig.main(argv) == 0
    assert _outcomes(root) == ["skipped", "skipped"]
    assert (out / "expo_sample_efficiency_smoke.md").read_text() == table


# ------------------------------------------------------------------------------------------- N-PG-IGT / HARPG
@pytest.mark.parametrize("scale", sorted(npg_fig.SCALES))
@pytest.mark.parametrize("env", ["LQR", "CartPole"])
def test_npg_specs_one_slot_per_method_seed(scale, env, tmp_path):
    cfg = npg_fig.FigConfig(scale=scale)
    plan = npg_fig.SCALES[scale][env]
    specs = npg_fig.run_specs(cfg, env)
    assert len(specs) == len(plan["methods"]) * plan["seeds"]
    assert len({s.slot(tmp_path) for s in specs}) == len(specs)  # e.g. harpg vs n_harpg, sgd vs nsgdm
    assert {s.seed for s in specs} == set(range(1000, 1000 + plan["seeds"]))
    assert all(s.total_steps == plan["total_steps"] and s.env == env for s in specs)
    for s in specs:
        cmd = s.fresh_command(tmp_path)
        assert cmd.count("--total-steps") == 1 and cmd[cmd.index("--torch-threads") + 1] == "1"
    # the same settings as before the runner: LQR 80 steps per trajectory
    assert npg_fig.SCALES["smoke"]["LQR"]["total_steps"] == 12_000
    assert npg_fig.SCALES["small"]["CartPole"]["total_steps"] == 150_000


def test_npg_commands_parse_into_each_method(tmp_path):
    import importlib

    cfg = npg_fig.FigConfig(scale="small", seeds=1)
    specs = npg_fig.run_specs(cfg, "LQR")
    names = []
    for s in specs:
        module = importlib.import_module(f"algos.{s.algo}")
        parsed = module.parse(s.fresh_command(tmp_path)[3:])
        assert (parsed.env, parsed.seed, parsed.total_steps, parsed.torch_threads) == ("LQR", 1000, 160_000, 1)
        assert parsed.checkpoint_every == 16_000 and parsed.device == "cpu"
        names.append((s.algo, getattr(parsed, "variant", None), getattr(parsed, "normalized", None)))
    assert names == [("vanilla_pg", "sgd", None), ("vanilla_pg", "nsgdm", None), ("npg_igt", None, None),
                     ("harpg", None, True), ("harpg", None, False)]


def test_npg_diverged_runs_are_kept_as_censored_runs(tmp_path):
    specs = npg_fig.run_specs(npg_fig.FigConfig(scale="smoke"), "LQR")[:4]
    total = specs[0].total_steps
    done = _fake_run(specs[0], tmp_path, {"status": "done", "env_steps": total})
    diverged = _fake_run(specs[1], tmp_path, {"status": "diverged", "env_steps": 160, "diverged": "nan"})
    _fake_run(specs[2], tmp_path, {"status": "done", "env_steps": total // 2})  # interrupted: not counted
    # specs[3]: never started
    assert npg_fig.analysed_runs(specs, tmp_path) == [str(done), str(diverged)]
    assert "DIVERGED (nan) at 160 steps" in npg_fig.describe(str(diverged), "LQR")


def test_npg_lqr_smoke_end_to_end_second_invocation_skips_every_run(tmp_path, capsys):
    argv = ["--scale", "smoke", "--envs", "LQR", "--seeds", "2", "--workers", "2",
            "--run-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    npg_fig.main(argv)
    root = tmp_path / "runs" / "smoke"
    first = _outcomes(root)
    assert len(first) == 8 and set(first) <= {"done", "diverged"}  # (vanilla PG seed 1001 diverges here)
    specs = npg_fig.run_specs(npg_fig.FigConfig(scale="smoke", seeds=2), "LQR")
    assert len(npg_fig.analysed_runs(specs, root)) == 8  # diverged runs stay in, as censored runs
    assert capsys.readouterr().out.count("DIVERGED (") == first.count("diverged")
    out = tmp_path / "out" / "npg_sample_complexity-smoke"
    tables = {name: (out / name).read_text() for name in ("comparison.md", "LQR-trajectories.md", "LQR-env_steps.md")}
    assert "npg_igt" in tables["comparison.md"]
    npg_fig.main(argv)
    assert _outcomes(root) == ["skipped" if o == "done" else "diverged" for o in first]  # nothing ran again
    assert {name: (out / name).read_text() for name in tables} == tables  # the same runs, the same tables
