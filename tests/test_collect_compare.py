"""Results table (analysis.collect, incremental) and aggregate statistics (analysis.compare) against hand
computations of rliable's definitions."""
from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from analysis import compare
from analysis.collect import collect, load_results
from classic_rl import UserError


def make_run(root: Path, algo: str, env: str, seed: int, returns: list[float], steps: list[int] | None = None,
             status: str = "done", summary: bool = True, lr: float = 3e-4) -> Path:
    d = root / algo / env / f"{seed}-20260101-000000"
    d.mkdir(parents=True)
    steps = steps or [1000 * i for i in range(len(returns))]
    (d / "config.json").write_text(json.dumps({"algo": algo, "env": env, "seed": seed,
                                               "config": {"env": env, "seed": seed, "lr": lr,
                                                          "hidden_sizes": [64, 64], "total_steps": steps[-1]}}))
    with open(d / "eval.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["env_steps", "return_mean", "return_std"])
        for s, r in zip(steps, returns):
            w.writerow([s, r, 1.0])
    with open(d / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["env_steps", "train_return_mean", "loss"])
        for s, r in zip(steps[1:], returns[1:]):
            w.writerow([s, r - 1, 0.5])
    if summary:
        (d / "summary.json").write_text(json.dumps({
            "algo": algo, "env": env, "seed": seed, "status": status, "env_steps": steps[-1], "iterations": 3,
            "wall_time": 1.0, "fps": 100.0, "headline": "final_eval_return", "headline_value": returns[-1],
            "higher_is_better": True, "final_eval_return": returns[-1], "warnings": []}))
    return d


def test_collect_is_incremental_and_reads_back(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "ppo", "Hopper", 0, [0.0, 10.0, 20.0])
    make_run(runs, "bpo", "Hopper", 0, [0.0, 15.0, 30.0])
    make_run(runs, "bpo", "Hopper", 1, [0.0, 5.0], summary=False)  # still running: skipped
    db = tmp_path / "results.sqlite"
    first = collect([str(runs)], db, verbose=False)
    assert (first["added"], first["incomplete"], first["total"]) == (2, 1, 2)
    second = collect([str(runs)], db, verbose=False)
    assert (second["added"], second["unchanged"], second["total"]) == (0, 2, 2)
    new = make_run(runs, "ppo", "Hopper", 1, [0.0, 12.0, 24.0])
    third = collect([str(runs)], db, verbose=False)
    assert (third["added"], third["unchanged"], third["total"]) == (1, 2, 3)
    # a resumed run (new summary) is replaced, not duplicated
    summary = json.loads((new / "summary.json").read_text())
    (new / "summary.json").write_text(json.dumps({**summary, "env_steps": 3000}))
    os.utime(new / "summary.json", (1e9, 1e9))
    fourth = collect([str(runs)], db, verbose=False)
    assert (fourth["updated"], fourth["total"]) == (1, 3)

    con = sqlite3.connect(db)
    rows = con.execute("SELECT algo, env, seed, status, env_steps, headline_value, cfg_lr, cfg_hidden_sizes, "
                       "final_train_return FROM runs ORDER BY algo, seed").fetchall()
    assert rows[0] == ("bpo", "Hopper", 0, "done", 2000, 30.0, 3e-4, "[64, 64]", 29.0)
    assert rows[2][4] == 3000
    n_eval = con.execute("SELECT COUNT(*) FROM evals WHERE metric = 'return_mean'").fetchone()[0]
    assert n_eval == 9  # 3 runs x 3 evaluations, no duplicates after the update
    curve = con.execute("SELECT e.env_steps, e.value FROM evals e JOIN runs r USING (run_id) WHERE r.algo='bpo' "
                        "AND e.metric='return_mean' ORDER BY e.env_steps").fetchall()
    assert curve == [(0.0, 0.0), (1000.0, 15.0), (2000.0, 30.0)]
    con.close()

    back = load_results(db)
    assert [(r.algo, r.seed) for r in back] == [("bpo", 0), ("ppo", 0), ("ppo", 1)]
    assert back[0].eval["return_mean"].tolist() == [0.0, 15.0, 30.0]
    assert back[0].metrics["train_return_mean"].tolist() == [14.0, 29.0]
    with pytest.raises(UserError, match="SQLite"):
        collect([str(runs)], tmp_path / "results.parquet", verbose=False)


def test_statistics_match_hand_computations():
    a = np.array([0.1, 0.5, 0.9, 1.3])
    b = np.array([0.2, 0.4, 0.6, 2.0])
    pooled = np.concatenate([a, b])
    # IQM: sorted 0.1 0.2 | 0.4 0.5 0.6 0.9 | 1.3 2.0 -> mean of the middle half
    assert compare.aggregate_iqm(pooled) == pytest.approx(0.6)
    assert compare.aggregate_iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)
    assert compare.aggregate_mean([a, b]) == pytest.approx(0.75)   # task means 0.7 and 0.8
    assert compare.aggregate_median([a, b, np.array([3.0])]) == pytest.approx(0.8)
    # optimality gap at 1: min(x, 1) sums to 2.5 + 2.2 = 4.7 over 8 runs
    assert compare.optimality_gap(pooled, 1.0) == pytest.approx(1 - 4.7 / 8)
    # probability of improvement: task 1 pairs: x=1 beats 0 (1); x=2 ties 2, 2 and beats 0 (2); x=3 beats all
    # (3) -> 6/9; task 2: 5 > 4 -> 1; averaged over tasks
    x = [np.array([1.0, 2.0, 3.0]), np.array([5.0])]
    y = [np.array([2.0, 2.0, 0.0]), np.array([4.0])]
    assert compare.probability_of_improvement(x, y) == pytest.approx((6 / 9 + 1) / 2)
    assert compare.probability_of_improvement(y, x) == pytest.approx((3 / 9 + 0) / 2)
    assert compare.probability_of_improvement([a], [a]) == pytest.approx(0.5)
    assert compare.performance_profile(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5])).tolist() == \
        pytest.approx([2 / 3, 1 / 3])


def test_bootstrap_intervals_are_stratified_and_reproducible():
    const = [np.full(5, 0.3), np.full(5, 0.7)]
    est = compare.interval_estimates(const, reps=500)
    for name in ("IQM", "median", "mean"):
        p, lo, hi = est[name]
        assert lo == pytest.approx(p) and hi == pytest.approx(p)  # resampling within a task changes nothing
    assert est["mean"][0] == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    tasks = [rng.normal(0.5, 0.2, 10), rng.normal(1.0, 0.3, 10)]
    one = compare.interval_estimates(tasks, reps=1000, seed=3)
    assert one == compare.interval_estimates(tasks, reps=1000, seed=3)
    for p, lo, hi in one.values():
        assert lo <= p <= hi
    p, lo, hi = compare.poi_interval([np.array([2.0, 3.0])], [np.array([0.0, 1.0])], reps=300)
    assert p == lo == hi == 1.0
    try:  # cross-check against rliable itself where it happens to be installed
        from rliable import metrics as rl_metrics
    except ImportError:
        return
    m = np.stack(tasks, axis=1)
    assert compare.aggregate_iqm(m.ravel()) == pytest.approx(rl_metrics.aggregate_iqm(m))
    assert compare.optimality_gap(m.ravel()) == pytest.approx(rl_metrics.aggregate_optimality_gap(m))


def test_compare_cli_normalizes_and_writes_tables_and_figures(tmp_path, capsys):
    runs = tmp_path / "runs"
    ref = compare.REFERENCE_SCORES
    for seed in range(3):
        for env in ("Hopper", "Walker2d"):
            r, R = ref[env]["random"], ref[env]["reference"]
            make_run(runs, "bpo", env, seed, [r, r + 0.5 * (R - r), r + (0.8 + 0.1 * seed) * (R - r)])
            make_run(runs, "ppo", env, seed, [r, r + 0.2 * (R - r), r + (0.4 + 0.1 * seed) * (R - r)])
    db = tmp_path / "results.sqlite"
    collect([str(runs)], db, verbose=False)
    out = tmp_path / "cmp"
    res = compare.main(["--results", str(db), "--normalize", "random,reference", "--reps", "300", "-o", str(out)])
    # normalized final scores: bpo 0.8, 0.9, 1.0 on both envs -> IQM over 6 runs = mean(0.8, 0.9, 0.9, 1.0)
    np.testing.assert_allclose(np.sort(np.concatenate(res["scores"]["bpo"])), [0.8, 0.8, 0.9, 0.9, 1.0, 1.0])
    assert res["aggregates"]["bpo"]["IQM"][0] == pytest.approx(0.9)
    assert res["aggregates"]["ppo"]["optimality gap"][0] == pytest.approx(0.5)
    assert res["poi"][("bpo", "ppo")][0] == pytest.approx(1.0)
    grid, point, lo, hi = res["curves"]["bpo"]
    assert grid[0] == 0 and grid[-1] == 2000 and point[0] == pytest.approx(0.0) and point[-1] == pytest.approx(0.9)
    text = (out / "compare.md").read_text()
    assert "| bpo | 6 | 0 | 0.9 [" in text and "P(X > Y)" in text and "D4RL" in text
    for stem in ("aggregates", "performance_profile", "probability_of_improvement", "sample_efficiency"):
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000
    with pytest.raises(UserError, match="no reference scores"):
        make_run(runs, "bpo", "Swimmer", 0, [0.0, 1.0])
        make_run(runs, "ppo", "Swimmer", 0, [0.0, 1.0])
        collect([str(runs)], db, verbose=False)
        compare.main(["--results", str(db), "--normalize", "random,reference", "-o", str(out)])


def test_sample_complexity_takes_the_results_table(tmp_path, capsys):
    from analysis import sample_complexity

    runs = tmp_path / "runs"
    for seed in range(2):
        make_run(runs, "bpo", "Hopper", seed, [0.0, 500.0, 1500.0])
        make_run(runs, "ppo", "Hopper", seed, [0.0, 200.0, 900.0])
    db = tmp_path / "results.sqlite"
    collect([str(runs)], db, verbose=False)
    res = sample_complexity.run([str(db)], str(tmp_path / "sc.png"), targets=[400.0], baseline="ppo")
    rows = {r["algo"]: r for r in res["Hopper"]["rows"]}
    assert rows["bpo"]["median"] == 1000 and rows["ppo"]["median"] == 2000
    assert rows["bpo"]["ratio"] == pytest.approx(0.5)
