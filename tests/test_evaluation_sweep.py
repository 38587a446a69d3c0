"""Evaluation harness splits episodes evenly and is repeatable; the sweep runner reports run dirs and failures."""
import torch

from classic_rl.evaluation import Evaluator
from classic_rl.sweep import Job, run_sweep
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
    ok = Job("algos.ppo", ["--env", "CartPole", "--total-steps", "64", "--n-steps", "64", "--batch-size", "32",
                           "--n-epochs", "1", "--eval-every", "0", "--eval-episodes", "1", "--no-progress",
                           "--run-dir", str(tmp_path)])
    bad = Job("algos.ppo", ["--env", "NoSuchEnv"])
    good, failed = run_sweep([ok, bad], workers=2, verbose=False)
    assert good.returncode == 0 and good.run_dir is not None and (good.run_dir / "eval.csv").is_file()
    assert failed.returncode == 2 and failed.run_dir is None
    assert "unknown environment" in capsys.readouterr().err
