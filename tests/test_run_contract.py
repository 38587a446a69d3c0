"""The run contract, checked over every training entry point (like SB3's save/load tests over all algorithms).

For each entry point: a tiny run leaves a complete, parseable run directory with the shared summary schema;
the same seed gives the same metrics; stopping and resuming equals the uninterrupted run; bad input exits 2
with an `error:` line and changes no file; a forced NaN stops the run (exit 3) naming the quantity and the
step; a run killed with SIGKILL after its first checkpoint resumes to a complete directory.

Adding an entry point is one line in CASES. A case's `half` must be an update boundary, and its argv should
evaluate every `half` steps, so the stopped run's final evaluation is one the whole run also does.
"""
from __future__ import annotations

import ast
import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from classic_rl.config import run_cli
from classic_rl.session import RunSession

ROOT = Path(__file__).resolve().parents[1]
TIMING_COLUMNS = {"wall_time", "fps"}
SUMMARY_KEYS = {"algo", "env", "seed", "status", "env_steps", "iterations", "wall_time", "fps", "headline",
                "headline_value", "higher_is_better", "final_eval_return", "warnings"}


@dataclass
class Case:
    module: str
    argv: list[str]
    half: int           # --total-steps of the stopped run (an update boundary)
    full: int           # --total-steps of the whole run
    kill_total: int     # a run long enough to be killed after its first checkpoint
    checkpoint_every: int
    setup: Callable[[], None] | None = None  # makes what the run needs first (e.g. a tiny dataset)


CARTPOLE_ONPOLICY = ["--env", "CartPole", "--n-envs", "1", "--n-steps", "64", "--batch-size", "32",
                     "--n-epochs", "1", "--eval-every", "64", "--eval-episodes", "1", "--eval-envs", "1",
                     "--eval-max-steps", "20", "--no-progress", "--torch-threads", "1"]

def tiny_offline_dataset() -> None:
    """A ~300-transition hopper-random dataset in the tests' Minari root (conftest sets it), made once."""
    from envs.offline.generate import generate
    generate("hopper", "random", transitions=300, seed=1, progress=False, log=lambda *a: None)


TINY_OFFLINE = ["--dataset", "hopper-random", "--batch-size", "16", "--log-every", "10", "--eval-every", "20",
                "--eval-episodes", "1", "--n-envs", "1", "--eval-max-steps", "20", "--no-progress"]

CASES = {
    "ppo": Case("algos.ppo", CARTPOLE_ONPOLICY, 128, 192, 200_000, 64),
    "td3_bc": Case("algos.td3_bc", [*TINY_OFFLINE, "--hidden-sizes", "16", "16"], 40, 60, 10**8, 20,
                   tiny_offline_dataset),
    "a2pr": Case("algos.a2pr", [*TINY_OFFLINE, "--hidden-sizes", "16", "16", "--actor-hidden-sizes", "16",
                                "--vae-hidden-sizes", "16"], 40, 60, 10**8, 20, tiny_offline_dataset),
    "bpo": Case("algos.bpo", CARTPOLE_ONPOLICY, 128, 192, 200_000, 64),
    "sac": Case("algos.sac", ["--env", "Hopper", "--dataset", "hopper-random", "--utd", "2", "--num-qs", "4", "--critic-hidden", "16", "16", "--actor-hidden", "16", "16", "--batch-size", "16", "--start-steps", "10", "--eval-every", "20", "--eval-episodes", "1", "--eval-envs", "1", "--eval-max-steps", "20", "--log-every", "5", "--device", "cpu", "--no-progress"], 20, 40, 10**8, 20, tiny_offline_dataset),
    "expo": Case("algos.expo", ["--env", "Hopper", "--dataset", "hopper-random", "--utd", "2", "--num-qs", "4", "--critic-hidden", "16", "16", "--edit-hidden", "16", "--denoiser-width", "16", "--denoiser-blocks", "1", "--diffusion-steps", "3", "--n-samples", "3", "--n-edit", "2", "--batch-size", "16", "--start-steps", "10", "--eval-every", "20", "--eval-episodes", "1", "--eval-envs", "1", "--eval-max-steps", "20", "--log-every", "5", "--device", "cpu", "--no-progress"], 20, 40, 10**8, 20, tiny_offline_dataset),
    "npg_igt": Case("algos.npg_igt", ["--env", "LQR", "--eval-every", "400", "--eval-log-points", "0", "--eval-episodes", "2", "--no-progress"], 400, 800, 80 * 10**6, 400),
    "harpg": Case("algos.harpg", ["--env", "LQR", "--no-normalized", "--eval-every", "400", "--eval-log-points", "0", "--eval-episodes", "2", "--no-progress"], 400, 880, 80 * 10**6, 400),
    "vanilla_pg": Case("algos.vanilla_pg", ["--env", "CartPole", "--n-envs", "2", "--batch-size", "50", "--hidden-sizes", "8", "--max-episode-steps", "20", "--eval-every", "100", "--eval-episodes", "1", "--no-progress"], 100, 200, 10**9, 100),
    "hdpo": Case("algos.hdpo", ["--env", "lost_sales", "--lead-time", "1", "--underage-cost", "4", "--hidden-sizes", "8", "--n-train", "64", "--n-envs", "32", "--eval-episodes", "32", "--n-test", "32", "--train-periods", "10", "--train-ignore", "2", "--dev-periods", "20", "--dev-ignore", "5", "--test-periods", "40", "--test-ignore", "10", "--eval-every", "640", "--no-reference", "--device", "cpu", "--no-progress"], 1280, 1920, 10**9, 640),
    "ddp_deep": Case("algos.ddp_deep", ["--env", "CliffWalk", "--n-envs", "8", "--learning-starts", "200", "--batch-size", "16", "--buffer-size", "1000", "--updates-per-step", "1", "--hidden-sizes", "16", "--n-quantiles", "8", "--eval-every", "400", "--eval-episodes", "20", "--log-every", "16", "--device", "cpu", "--no-progress"], 800, 1200, 10**9, 400),
    "pdppo": Case("algos.pdppo", ["--env", "LotSizing-15x5", "--n-envs", "2", "--update-every", "200", "--n-epochs", "2", "--hidden-sizes", "16", "16", "--window-steps", "400", "--eval-every", "200", "--eval-episodes", "1", "--no-progress"], 400, 600, 10_000_000, 200),
    "parl": Case("algos.parl", ["--env", "ChainToy", "--eval-every", "2", "--no-progress"], 4, 6, 10**6, 2),
    "parl_deep": Case("algos.parl", ["--env", "Walker2d", "--start-steps", "20", "--num-interact", "100", "--segment", "5", "--queries-per-session", "2", "--max-feedback", "4", "--reward-updates", "2", "--reward-batch", "2", "--reward-ensemble", "2", "--reward-hidden", "8", "--hidden-sizes", "16", "--batch-size", "16", "--eval-every", "50", "--eval-episodes", "1", "--eval-envs", "1", "--eval-max-steps", "20", "--log-every", "10", "--checkpoint-every", "0", "--device", "cpu", "--no-progress"], 100, 160, 10**8, 50),
    "dr_rpo": Case("algos.dr_rpo", ["--env", "LinearMDP", "--n-envs", "2", "--eval-every", "5", "--eval-episodes", "5", "--no-progress"], 10, 15, 10**7, 5),
}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def only_run(root: Path) -> Path:
    runs = sorted({p.parent for p in root.rglob("config.json")})
    assert len(runs) == 1, runs
    return runs[0]


def call(case: Case, argv: list[str], capsys=None) -> int:
    """Run the entry point in this process; argparse's SystemExit counts as its exit code."""
    main = importlib.import_module(case.module).main
    try:
        return run_cli(main, argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    if CASES[request.param].setup is not None:
        CASES[request.param].setup()
    return CASES[request.param]


def test_tiny_run_leaves_complete_run_directory(case, tmp_path, capsys):
    assert call(case, [*case.argv, "--total-steps", str(case.half), "--run-dir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    assert f"run directory: {run}" in capsys.readouterr().out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg.get("module", "algos." + cfg["algo"]) == case.module and cfg["config"]["total_steps"] == case.half
    metrics, evals = read_rows(run / "metrics.csv"), read_rows(run / "eval.csv")
    assert metrics and evals
    steps = [int(r["env_steps"]) for r in metrics]
    assert steps == sorted(set(steps)) and steps[-1] >= case.half
    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary), SUMMARY_KEYS - set(summary)
    assert summary["status"] == "done" and summary["env_steps"] == steps[-1]
    assert summary["headline_value"] is not None and summary["headline"]
    assert (run / "checkpoints" / "latest.pt").stat().st_size > 0


def test_same_seed_same_numbers_and_resume_equals_uninterrupted(case, tmp_path):
    roots = {name: tmp_path / name for name in ("a", "b", "resumed")}
    for name in ("a", "b"):
        assert call(case, [*case.argv, "--total-steps", str(case.full), "--run-dir", str(roots[name])]) == 0
    a, b = only_run(roots["a"]), only_run(roots["b"])
    for table in ("metrics.csv", "eval.csv"):
        assert without_timing(read_rows(a / table)) == without_timing(read_rows(b / table)), table

    assert call(case, [*case.argv, "--total-steps", str(case.half), "--run-dir", str(roots["resumed"])]) == 0
    c = only_run(roots["resumed"])
    assert call(case, ["--resume", str(c), "--total-steps", str(case.full), "--no-progress"]) == 0
    for table in ("metrics.csv", "eval.csv"):
        assert without_timing(read_rows(c / table)) == without_timing(read_rows(a / table)), table
    sa, sc = (json.loads((r / "summary.json").read_text()) for r in (a, c))
    assert sc["headline_value"] == sa["headline_value"] and sc["env_steps"] == sa["env_steps"]


def test_bad_input_exits_2_and_changes_nothing(case, tmp_path, capsys):
    def refused(argv: list[str], expect: str) -> None:
        before = snapshot(tmp_path)
        capsys.readouterr()
        assert call(case, argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and expect in err, err
        assert err.strip().splitlines()[-1].split(":")[0].endswith("error") or "error:" in err
        assert snapshot(tmp_path) == before

    run_root = tmp_path / "runs"
    refused([*case.argv, "--bogus-flag", "1", "--run-dir", str(run_root)], "unrecognized arguments")
    refused([*case.argv, "--total-steps", "-5", "--run-dir", str(run_root)], "--total-steps")
    refused(["--resume", str(tmp_path / "missing")], "does not exist")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    refused([*case.argv, "--total-steps", str(case.half), "--run-dir", str(blocker / "runs")], "run directory")

    assert call(case, [*case.argv, "--total-steps", str(case.half), "--run-dir", str(run_root)]) == 0
    run = only_run(run_root)
    refused(["--resume", str(run), "--total-steps", str(case.half)], "already finished")
    refused(["--resume", str(run), "--total-steps", str(case.full), "--seed", "12345"], "--seed")
    other = "algos.bpo" if case.module != "algos.bpo" else "algos.ppo"
    refused_other = Case(other, [], 0, 0, 0, 0)
    before = snapshot(tmp_path)
    assert call(refused_other, ["--resume", str(run), "--total-steps", str(case.full)]) == 2
    assert f"resume it with python -m {case.module}" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    (run / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint")
    refused(["--resume", str(run), "--total-steps", str(case.full)], "corrupted")


def test_forced_nan_stops_the_run_naming_quantity_and_step(case, tmp_path, capsys, monkeypatch):
    real_advance = RunSession.advance

    def advance_with_nan(self, n_steps, **metrics):
        if self.iteration >= 1:  # from the second iteration on (a NaN persists; logging may be every k steps)
            metrics["forced_statistic"] = float("nan")
        return real_advance(self, n_steps, **metrics)

    monkeypatch.setattr(RunSession, "advance", advance_with_nan)
    assert call(case, [*case.argv, "--total-steps", str(case.full), "--run-dir", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "forced_statistic became non-finite" in err and "Traceback" not in err
    summary = json.loads((only_run(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "diverged" and "forced_statistic" in summary["diverged"]


def test_sigkill_after_first_checkpoint_then_resume(case, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", case.module, *case.argv, "--total-steps", str(case.kill_total),
            "--checkpoint-every", str(case.checkpoint_every), "--run-dir", str(tmp_path)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while not list(tmp_path.rglob("checkpoints/latest.pt")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        time.sleep(0.3)  # let it run on past the checkpoint, so rows after it must be dropped on resume
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = only_run(tmp_path)
    done_before = int(read_rows(run / "metrics.csv")[-1]["env_steps"]) if (run / "metrics.csv").exists() else 0
    resume_to = max(done_before, case.half) + case.half
    assert call(case, ["--resume", str(run), "--total-steps", str(resume_to), "--no-progress"]) == 0
    for table in ("metrics.csv", "eval.csv"):
        steps = [int(r["env_steps"]) for r in read_rows(run / table)]
        assert steps == sorted(set(steps)), (table, steps)  # no duplicated or reordered rows
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["env_steps"] >= resume_to
    assert not list(run.rglob("*.tmp"))


SHARED_FLAGS = ("--env", "--seed", "--device", "--total-steps", "--n-envs", "--eval-every", "--eval-episodes",
                "--run-dir", "--resume", "--track", "--checkpoint-every", "--torch-threads", "--no-progress")


def test_help_offers_every_shared_flag(case, capsys):
    """The README's sentence: every training entry point takes the shared flags (and documents them)."""
    assert call(case, ["--help"]) == 0
    out = capsys.readouterr().out
    missing = [flag for flag in SHARED_FLAGS if flag not in out]
    assert not missing, missing


def test_core_imports_nothing_above_it():
    """classic_rl/ is the bottom layer: envs/, algos/, analysis/ pass factories in."""
    offenders = []
    for path in (ROOT / "classic_rl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("envs", "algos", "analysis", "paper_figs", "benchmarks")]
    assert not offenders, offenders


def test_project_is_self_contained():
    """Code and docs never point at files a user who clones the project does not have."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    paths = [ROOT / p for p in listed.stdout.splitlines()] if listed.returncode == 0 else \
        [p for p in ROOT.rglob("*") if not {".venv", ".git", "runs", "out"} & set(p.parts)]
    hits = []
    for path in paths:
        if path.suffix not in (".py", ".md", ".sh", ".toml") or path == Path(__file__) or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        for needle in ("shared/specs", "DESIGN.md", "../shared"):
            if needle in text:
                hits.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not hits, hits
