"""Run directories are never overwritten, files are written atomically; IQM/bootstrap against hand values."""
import json

import numpy as np
import pytest

from analysis.plot import main as plot_main
from analysis.runs import load_runs
from analysis.stats import bootstrap_ci, iqm, steps_to_threshold
from classic_rl import UserError
from classic_rl.runlog import RunLogger, new_run_dir


def test_new_run_dirs_never_collide(tmp_path):
    dirs = {new_run_dir(tmp_path, "ppo", "ALE/Pong-v5", 3) for _ in range(5)}
    assert len(dirs) == 5 and all(d.parent.name == "ALE-Pong-v5" for d in dirs)


def test_logger_rows_columns_and_resume_truncation(tmp_path):
    log = RunLogger.create(str(tmp_path), "algo", "Env", 0, {"lr": 1.0}, "cpu")
    log.log(10, loss=1.5)
    log.log(20, loss=1.0, extra=3)
    log.log_eval(20, [1.0, 3.0], [5, 7])
    text = (log.path / "metrics.csv").read_text().splitlines()
    assert text[0] == "env_steps,wall_time,loss,extra" and len(text) == 3
    assert json.loads((log.path / "config.json").read_text())["config"] == {"lr": 1.0}
    assert not list(log.path.glob(".*.tmp"))  # no temp files left behind
    again = RunLogger.reopen(log.path, 10, 1.0)
    assert [r["env_steps"] for r in again.metrics.rows] == ["10"] and again.evals.rows == []


def test_iqm_and_bootstrap():
    assert iqm(np.array([0.0, 1, 2, 3, 4, 5, 6, 100])) == pytest.approx(np.mean([2, 3, 4, 5]))
    samples = np.random.default_rng(0).normal(5.0, 1.0, size=(400, 1))
    point, lo, hi = bootstrap_ci(samples)
    assert lo[0] < 5.0 < hi[0]
    assert hi[0] - lo[0] == pytest.approx(2 * 1.96 / 20, rel=0.2)  # ~ 2 * 1.96 * sigma / sqrt(n)
    assert steps_to_threshold(np.array([1, 2, 3]), np.array([0, 5, 9]), 4) == 2
    assert steps_to_threshold(np.array([1, 2, 3]), np.array([0, 1, 2]), 4) == float("inf")


def test_plot_cli_draws_a_band_per_algorithm(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for algo in ("bpo", "ppo"):
        for seed in range(3):
            log = RunLogger.create(str(tmp_path / "runs"), algo, "Hopper", seed, {}, "cpu")
            for step in range(0, 5000, 1000):
                log.log_eval(step, rng.normal(step / 10, 5, size=4))
    out = tmp_path / "fig.png"
    plot_main([str(tmp_path / "runs"), "-o", str(out), "--agg", "iqm"])
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "6 runs" in capsys.readouterr().out
    assert {r.algo for r in load_runs([str(tmp_path / "runs")])} == {"bpo", "ppo"}
    with pytest.raises(UserError, match="no run directory"):
        load_runs([str(tmp_path / "missing*")])


def test_numpy_scalars_are_written_as_plain_numbers(tmp_path):
    log = RunLogger.create(str(tmp_path), "algo", "Env", 0, {}, "cpu")
    log.log(1, value=np.float64(1.5), count=np.int64(3))
    assert (log.path / "metrics.csv").read_text().splitlines()[1].endswith(",1.5,3")


def test_csv_table_appends_rows_grows_columns_and_truncates(tmp_path):
    from classic_rl.runlog import CsvTable

    table = CsvTable(tmp_path / "m.csv")
    table.append({"env_steps": 1, "loss": 0.5})
    table.append({"env_steps": 2, "loss": 0.25})
    table.append({"env_steps": 3, "loss": 0.125, "extra": 7})  # a new column rewrites the file
    table.append({"env_steps": 4, "loss": 1.0})
    again = CsvTable(tmp_path / "m.csv")
    again.load()
    assert again.columns == ["env_steps", "loss", "extra"]
    assert [(r["env_steps"], r["loss"], r["extra"]) for r in again.rows] == \
        [("1", "0.5", ""), ("2", "0.25", ""), ("3", "0.125", "7"), ("4", "1.0", "")]
    again.truncate_after(2)
    third = CsvTable(tmp_path / "m.csv")
    third.load()
    assert [r["env_steps"] for r in third.rows] == ["1", "2"]
