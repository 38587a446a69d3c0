"""Sweep runner: grid expansion, deterministic slots, and skip / resume / restart / failure / divergence
semantics with tiny real PPO runs on CartPole."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from classic_rl import UserError
from classic_rl import sweep
from classic_rl.sweep import RunSpec, expand, parse_overrides, parse_seeds, plan, run_sweep

TINY = parse_overrides(["n_steps=64", "batch_size=32", "n_epochs=1", "eval_every=64", "eval_episodes=1",
                        "eval_envs=1"])


def test_seeds_and_overrides_parse():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("1,3,7") == [1, 3, 7]
    assert parse_seeds("0-2,9,1") == [0, 1, 2, 9]
    assert parse_seeds([2, 5]) == [2, 5]
    with pytest.raises(UserError):
        parse_seeds("4-1")
    with pytest.raises(UserError):
        parse_seeds("a")
    assert parse_overrides(["lr=1e-4", "--n-envs=8"]) == (("lr", "1e-4"), ("n_envs", "8"))
    assert parse_overrides({"normalize_obs": False, "hidden_sizes": [64, 64]}) == (
        ("hidden_sizes", "64 64"), ("normalize_obs", "false"))
    with pytest.raises(UserError):
        parse_overrides(["lr"])


def test_expansion_order_and_deterministic_slots(tmp_path):
    specs = expand(["bpo", "ppo"], ["Hopper", "Walker2d"], [0, 1], 1000, parse_overrides(["lr=1e-4"]))
    assert [(s.algo, s.env, s.seed) for s in specs] == [
        (a, e, s) for a in ("bpo", "ppo") for e in ("Hopper", "Walker2d") for s in (0, 1)]
    a = RunSpec("ppo", "Hopper", 3, 1000, parse_overrides(["lr=1e-4", "n_envs=2"]))
    b = RunSpec("ppo", "Hopper", 3, 5000, parse_overrides(["n_envs=2", "lr=1e-4"]))
    c = RunSpec("ppo", "Hopper", 3, 1000, parse_overrides(["lr=3e-4", "n_envs=2"]))
    assert a.slot(tmp_path) == b.slot(tmp_path)  # order of --set and the step budget do not move the slot
    assert a.slot(tmp_path) != c.slot(tmp_path)
    assert a.slot(tmp_path) == tmp_path / "ppo" / "Hopper" / a.config_hash / "seed3"
    d = RunSpec("ppo", "Hopper", 3, 1000, parse_overrides(["normalize_obs=false", "hidden_sizes=64 64",
                                                           "ortho_init=true"]))
    cmd = d.fresh_command(tmp_path)
    assert cmd[1:3] == ["-m", "algos.ppo"] and "--no-normalize-obs" in cmd and "--ortho-init" in cmd
    i = cmd.index("--hidden-sizes")
    assert cmd[i + 1:i + 3] == ["64", "64"]
    assert cmd[cmd.index("--run-dir") + 1] == str(d.slot(tmp_path))
    gpu = expand(["ppo"], ["Pong"], [0], 10, parse_overrides(["device=cuda"]))[0]
    assert gpu.num_gpus == 1.0


def test_toml_file_and_flags(tmp_path, capsys):
    f = tmp_path / "sweep.toml"
    f.write_text('algos = ["ppo", "bpo"]\nenvs = "CartPole"\nseeds = "0-1"\ntotal_steps = 640\n'
                 f'root = "{tmp_path / "root"}"\n[set]\nlr = 1e-4\nnormalize_obs = false\n')
    assert sweep.main(["--file", str(f), "--dry-run", "--seeds", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.startswith("start") for line in out)
    assert "--lr 0.0001" in out[0] and "--no-normalize-obs" in out[0] and "--seed 5" in out[0]
    f.write_text('algos = ["ppo"]\nbogus = 1\n')
    assert sweep.cli(["--file", str(f)]) == 2
    assert "unknown keys" in capsys.readouterr().err


def _write_run(slot: Path, name: str, summary: dict | None = None, checkpoint: bool = False) -> Path:
    d = slot / "ppo" / "CartPole" / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"algo": "ppo", "env": "CartPole", "seed": 0, "config": {}}))
    if summary is not None:
        (d / "summary.json").write_text(json.dumps(summary))
    if checkpoint:
        (d / "checkpoints").mkdir()
        (d / "checkpoints" / "latest.pt").write_bytes(b"x")
    return d


def test_plan_reads_each_slot_state(tmp_path):
    spec = RunSpec("ppo", "CartPole", 0, 1000)
    assert plan(spec, tmp_path) == ("start", None)
    started = _write_run(spec.slot(tmp_path), "0-a")
    assert plan(spec, tmp_path) == ("restart", started)
    aside = sweep.move_aside(started, tmp_path)
    assert not started.exists() and aside.parent == tmp_path / "_aside" and (aside / "config.json").is_file()
    assert plan(spec, tmp_path) == ("start", None)
    ckpt = _write_run(spec.slot(tmp_path), "0-b", checkpoint=True)
    assert plan(spec, tmp_path) == ("resume", ckpt)
    (ckpt / "summary.json").write_text(json.dumps({"status": "done", "env_steps": 500}))
    assert plan(spec, tmp_path) == ("resume", ckpt)  # done at fewer steps than asked: extended
    (ckpt / "summary.json").write_text(json.dumps({"status": "done", "env_steps": 500, "stopped_early": "patience"}))
    assert plan(spec, tmp_path) == ("skip", ckpt)  # stopped early on purpose: finished, not resumable
    assert sweep.finished_summary(spec, tmp_path)["run_dir"] == str(ckpt)
    (ckpt / "summary.json").write_text(json.dumps({"status": "done", "env_steps": 1000}))
    assert plan(spec, tmp_path) == ("skip", ckpt)
    (ckpt / "summary.json").write_text(json.dumps({"status": "diverged", "env_steps": 64}))
    assert plan(spec, tmp_path) == ("diverged", ckpt)


def test_sweep_done_failed_diverged_then_skip_then_resume(tmp_path, capsys):
    """Real runs: one finishes, one fails (bad env: command and stderr reported, the others go on), one
    diverges (exit 3: finished, not failed); a second invocation skips; a larger budget resumes."""
    good = RunSpec("ppo", "CartPole", 0, 64, TINY)
    bad = RunSpec("ppo", "NoSuchEnv", 0, 64, TINY)
    nan = RunSpec("ppo", "CartPole", 0, 128, TINY + (("lr", "1e38"),))
    restart = RunSpec("ppo", "CartPole", 1, 64, TINY)
    abandoned = _write_run(restart.slot(tmp_path), "1-old")  # started before, died before its first checkpoint

    report = run_sweep([good, bad, nan, restart], tmp_path, workers=2)
    outcomes = [r["outcome"] for r in report.results]
    assert outcomes == ["done", "failed", "diverged", "done"], report.results
    failed = report.results[1]
    assert failed["returncode"] == 2 and "NoSuchEnv" in " ".join(failed["command"])
    assert "unknown environment" in failed["stderr_tail"]
    assert report.results[2]["returncode"] == 3
    assert not abandoned.exists() and any((tmp_path / "_aside").iterdir())
    out, err = capsys.readouterr()
    assert "FAILED" in err and "unknown environment" in err
    assert "| 2 | 0 | 0 | 1 | 1 | 4 |" in out  # done resumed skipped diverged failed total
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["outcome"] for r in manifest["runs"]] == outcomes
    run_dir = Path(report.results[0]["run_dir"])
    assert run_dir.parent.parent.parent == good.slot(tmp_path)

    again = run_sweep([good, bad, nan, restart], tmp_path, workers=2, verbose=False)
    assert [r["outcome"] for r in again.results] == ["skipped", "failed", "diverged", "skipped"]

    longer = RunSpec("ppo", "CartPole", 0, 128, TINY)
    resumed = run_sweep([longer], tmp_path, verbose=False)
    assert resumed.results[0]["outcome"] == "resumed" and Path(resumed.results[0]["run_dir"]) == run_dir
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 128


def test_ray_backend_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match="pip install"):
        run_sweep([RunSpec("ppo", "CartPole", 0, 64)], tmp_path, backend="ray", verbose=False)
