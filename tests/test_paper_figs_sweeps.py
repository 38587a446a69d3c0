"""The comparison scripts in paper_figs launch through the sweep runner with the slots its CLI would use."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.runs import Run
from classic_rl.sweep import expand, parse_overrides
from paper_figs import bpo_vs_ppo_suite, pong_bpo_vs_ppo


def test_pong_script_shares_slots_with_the_equivalent_sweep_cli_call():
    # The README's command: classic_rl.sweep --algos bpo,ppo --envs Pong --seeds 0 --total-steps 270000 --set ...
    cli = expand(["bpo", "ppo"], ["Pong"], [0], 270_000,
                 parse_overrides(["eval_every=27000", "eval_episodes=3", "checkpoint_every=9000", "torch_threads=1"]))
    script = pong_bpo_vs_ppo.specs_for(pong_bpo_vs_ppo.SCALES["small"])
    assert [s.slot("R") for s in script] == [s.slot("R") for s in cli]
    assert [s.total_steps for s in script] == [270_000, 270_000]
    # a GPU run is a different setting, so it gets its own slot and asks Ray for a GPU
    gpu = pong_bpo_vs_ppo.specs_for(pong_bpo_vs_ppo.SCALES["small"], device="cuda")
    assert gpu[0].slot("R") != script[0].slot("R") and gpu[0].num_gpus == 1.0


def test_suite_is_every_env_seed_and_algo_with_the_papers_ppo_setting():
    specs = bpo_vs_ppo_suite.specs_for(bpo_vs_ppo_suite.SCALES["small"])
    assert len(specs) == 3 * 5 * 2
    assert {(s.algo, s.env, s.seed) for s in specs} == {(a, e, k) for a in ("bpo", "ppo")
                                                        for e in bpo_vs_ppo_suite.ENVS for k in range(5)}
    ppo = [s for s in specs if s.algo == "ppo"]
    assert all("--no-normalize-obs" in s.extra_args and "--ortho-init" in s.extra_args for s in ppo)
    assert len({s.slot("R") for s in specs}) == len(specs)  # no two runs share a folder


def _run(algo: str, summary: dict, evals: list[tuple[int, float]], train: list[tuple[int, float]]) -> Run:
    return Run(path=Path("x"), algo=algo, env="Pong", seed=0, config={},
               eval={"env_steps": np.array([e[0] for e in evals], float),
                     "return_mean": np.array([e[1] for e in evals], float)},
               metrics={"env_steps": np.array([t[0] for t in train], float),
                        "train_return_mean": np.array([t[1] for t in train], float)},
               summary=summary)


def test_pong_table_reports_finished_and_unfinished_runs(tmp_path):
    done = _run("bpo", {"env_steps": 2048, "wall_time": 61.4, "fps": 33.2}, [(0, -21.0), (2048, -20.0)],
                [(1024, np.nan), (2048, -20.5)])
    cut = _run("ppo", {}, [(0, -21.0)], [(1024, -20.9)])
    text = pong_bpo_vs_ppo.table([cut, done])
    rows = text.strip().splitlines()[2:]
    assert rows[0] == "| BPO | 0 | 2,048 | 61 | 33 | -20.5 | 0: -21.0, 2,048: -20.0 |"
    assert rows[1].startswith("| PPO | 0 | 1,024 | unfinished |") and rows[1].endswith("| -20.9 | 0: -21.0 |")
    paths = pong_bpo_vs_ppo.plot([done, cut], tmp_path)
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
