"""Evaluation harness splits episodes evenly and is repeatable; the sweep runner reports run dirs and failures."""
from pathlib import Path

import torch

from classic_rl.evaluation import Evaluator
from classic_rl.sweep import RunSpec, run_sweep
from envs.registry import make_vec_env


def test_evaluator_runs_exactly_n_episodes_split_across_envs_and_repeats():
    evaluator = Evaluator(lambda k: make_vec_env("CartPole-v1", k, training=False), n_episodes=5,
                          max_envs=2, seed=123, device=torch.device("cpu"))
    calls = []

    def push_right(obs):
        calls.append(obs.shape[0])
        return torch.ones(obs.shape[0], dtype=torch.long)

    returns, lengths = evaluator.run(push_right)
    assert len(returns) == 5 and set(calls) == {2}
    assert returns == [float(n) for n in lengths]  # CartPole pays 1 per step
    again, _ = evaluator.run(push_right)
    assert again == returns  # fixed reset seeds: every evaluation sees the same start states
    evaluator.close()


def test_sweep_collects_run_dirs_and_reports_failures(tmp_path, capsys):
    tiny = (("batch_size", "32"), ("eval_every", "0"), ("eval_episodes", "1"), ("n_epochs", "1"), ("n_steps", "64"))
    ok = RunSpec("ppo", "CartPole", 0, 64, overrides=tiny)
    bad = RunSpec("ppo", "NoSuchEnv", 0, 64, overrides=tiny)
    report = run_sweep([ok, bad], tmp_path, workers=2)
    good, failed = report.results
    assert good["outcome"] == "done" and good["returncode"] == 0
    assert (Path(good["run_dir"]) / "eval.csv").is_file()
    assert failed["outcome"] == "failed" and failed["returncode"] == 2 and "algos.ppo" in failed["command"]
    assert "unknown environment" in failed["stderr_tail"]
    err = capsys.readouterr().err
    assert "unknown environment" in err and "NoSuchEnv" in err
