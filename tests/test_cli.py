"""End-to-end CLI behaviour of `python -m algos.bpo` / `algos.ppo`: smoke runs, run directory contract,
determinism, exact resume, and clean failures on bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from algos import bpo, ppo
from classic_rl.config import run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY_MUJOCO = ["--n-envs", "1", "--n-steps", "128", "--batch-size", "64", "--n-epochs", "2",
               "--eval-every", "128", "--eval-episodes", "2", "--eval-envs", "2", "--eval-max-steps", "40",
               "--no-progress", "--torch-threads", "1"]
TINY_ATARI = ["--n-envs", "2", "--n-steps", "32", "--batch-size", "32", "--n-epochs", "1",
              "--eval-every", "64", "--eval-episodes", "1", "--eval-envs", "1", "--eval-max-steps", "25",
              "--no-progress", "--torch-threads", "1"]
LEARNING_COLUMNS = ["policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", "train_return_mean"]


def only_run(root: Path) -> Path:
    runs = [p.parent for p in root.rglob("config.json")]
    assert len(runs) == 1, runs
    return runs[0]


def read_rows(path: Path) -> list[dict]:
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("module,env,extra", [
    (bpo, "Hopper", TINY_MUJOCO), (ppo, "Hopper", TINY_MUJOCO),
    (bpo, "Pong", TINY_ATARI), (ppo, "Pong", TINY_ATARI)])
def test_smoke_run_writes_complete_run_directory(module, env, extra, run_root):
    steps = "256" if env == "Hopper" else "128"
    assert run_cli(module.main, ["--env", env, "--total-steps", steps, "--run-dir", str(run_root), *extra]) == 0
    run = only_run(run_root)
    algo = module.__name__.split(".")[-1]
    assert run.parent.parent.name == algo and run.parent.name == env
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == algo and cfg["device"] == "cpu" and "git_commit" in cfg and cfg["version"]
    assert cfg["config"]["total_steps"] == int(steps)
    metrics = read_rows(run / "metrics.csv")
    per_update = 128 if env == "Hopper" else 64
    assert [int(r["env_steps"]) for r in metrics] == list(range(per_update, int(steps) + 1, per_update))
    for col in ("fps", "wall_time", "policy_loss", "value_loss"):
        assert col in metrics[0]
    if algo == "bpo":
        assert "median_loss" in metrics[0]
    evals = read_rows(run / "eval.csv")
    assert int(evals[0]["env_steps"]) == 0 and int(evals[-1]["env_steps"]) == int(steps)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == int(steps)
    assert (run / "checkpoints" / "latest.pt").stat().st_size > 0
    assert (run / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("env", ["Hopper", "InventoryLostSales-v0", "LotSizing-15x5"])
def test_same_seed_same_numbers_and_resume_continues_the_same_run(env, tmp_path):
    """MuJoCo state and the project's own simulators (get_sim_state) are restored exactly on resume."""
    base = ["--env", env, *TINY_MUJOCO]
    full, first, other = tmp_path / "full", tmp_path / "first", tmp_path / "other"
    assert run_cli(ppo.main, [*base, "--total-steps", "384", "--run-dir", str(full)]) == 0
    assert run_cli(ppo.main, [*base, "--total-steps", "384", "--run-dir", str(other)]) == 0
    a, b = only_run(full), only_run(other)
    rows_a, rows_b = read_rows(a / "metrics.csv"), read_rows(b / "metrics.csv")
    for col in LEARNING_COLUMNS:
        assert [r[col] for r in rows_a] == [r[col] for r in rows_b], col
    assert [r["returns"] for r in read_rows(a / "eval.csv")] == [r["returns"] for r in read_rows(b / "eval.csv")]

    # stop after 2 of 3 updates, then resume: the third update must equal the uninterrupted run's
    assert run_cli(ppo.main, [*base, "--total-steps", "256", "--run-dir", str(first)]) == 0
    c = only_run(first)
    assert run_cli(ppo.main, ["--resume", str(c), "--total-steps", "384", "--no-progress"]) == 0
    rows_c = read_rows(c / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows_c] == [128, 256, 384]
    for col in LEARNING_COLUMNS:
        assert rows_c[2][col] == rows_a[2][col], col
    assert read_rows(c / "eval.csv")[-1]["returns"] == read_rows(a / "eval.csv")[-1]["returns"]
    assert json.loads((c / "summary.json").read_text())["env_steps"] == 384


def run_module(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def test_unknown_flag_and_negative_steps_exit_cleanly(tmp_path):
    out = run_module("algos.bpo", "--env", "Hopper", "--bogus-flag", "1", "--run-dir", str(tmp_path))
    assert out.returncode == 2 and "unrecognized arguments: --bogus-flag" in out.stderr
    assert "Traceback" not in out.stderr
    with pytest.raises(SystemExit) as exc:
        bpo.main(["--env", "Hopper", "--total-steps", "-5", "--run-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert not tmp_path.joinpath("bpo").exists()


def test_unknown_env_lists_close_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ppo.main(["--env", "Hoper", "--run-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown environment 'Hoper'" in err and "Hopper" in err


def test_help_documents_every_flag():
    out = run_module("algos.bpo", "--env", "Hopper", "--help")
    assert out.returncode == 0
    from dataclasses import fields

    for f in fields(bpo.BPOConfig):
        assert "--" + f.name.replace("_", "-") in out.stdout, f.name
    assert "sigmoid temperature" in out.stdout and "(default: 10.0)" in out.stdout  # Hopper's lambda_T


def test_missing_resume_dir_and_corrupted_checkpoint(tmp_path, capsys):
    assert run_cli(bpo.main, ["--resume", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err

    assert run_cli(bpo.main, ["--env", "Hopper", "--total-steps", "128", "--run-dir", str(tmp_path),
                              *TINY_MUJOCO]) == 0
    run = only_run(tmp_path)
    (run / "checkpoints" / "latest.pt").write_bytes(b"this is not a checkpoint")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert run_cli(bpo.main, ["--resume", str(run), "--total-steps", "256"]) == 2
    assert "corrupted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_async_envs_train_and_resume_restarts_episodes(tmp_path):
    args = ["--env", "CartPole", "--n-envs", "2", "--n-steps", "32", "--batch-size", "32", "--n-epochs", "1",
            "--eval-every", "0", "--eval-episodes", "1", "--no-progress", "--async-envs"]
    assert run_cli(ppo.main, [*args, "--total-steps", "64", "--run-dir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    assert run_cli(ppo.main, ["--resume", str(run), "--total-steps", "128", "--no-progress"]) == 0
    assert [int(r["env_steps"]) for r in read_rows(run / "metrics.csv")] == [64, 128]
