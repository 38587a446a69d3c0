"""Learning checks (minutes each): run with `pytest -m slow`."""
import json

import pytest

from algos import bpo, ppo
from classic_rl.config import run_cli


@pytest.mark.slow
@pytest.mark.parametrize("module", [ppo, bpo])
def test_cartpole_is_learned(module, tmp_path):
    args = ["--env", "CartPole", "--total-steps", "100000", "--eval-every", "0", "--eval-episodes", "10",
            "--no-progress", "--run-dir", str(tmp_path), "--torch-threads", "1"]
    if module is bpo:  # CartPole returns are O(100): a unit temperature keeps the target smooth
        args += ["--lambda-t", "1.0", "--lr", "3e-4", "--hidden-sizes", "64", "64"]
    assert run_cli(module.main, args) == 0
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["final_eval_return"] >= 195.0, summary
