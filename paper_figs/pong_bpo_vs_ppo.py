"""BPO vs PPO on Pong (NoFrameskip-v4, standard Atari preprocessing) at a fixed CPU budget.

    python -m paper_figs.pong_bpo_vs_ppo --scale smoke    # pipeline check, ~1 min (numbers mean nothing)
    python -m paper_figs.pong_bpo_vs_ppo --scale small    # 270k env steps (~1.1M frames) per algorithm, seed 0:
                                                          # ~30-40 min per algorithm on one CPU thread
    python -m paper_figs.pong_bpo_vs_ppo --scale small --device cuda --steps 10000000   # on a GPU machine

Both runs go through the sweep runner (classic_rl.sweep), one worker per algorithm, into deterministic slots
under OUT/runs; the same command skips a finished run and resumes an interrupted one from its checkpoint
(`checkpoint_every` 9k steps, so a cut loses at most a few minutes). The small scale's slots are the ones
`python -m classic_rl.sweep --algos bpo,ppo --envs Pong --seeds 0 --total-steps 270000 --set eval_every=27000
--set eval_episodes=3 --set checkpoint_every=9000 --set torch_threads=1 --root OUT/runs` makes, so runs started
either way are shared.

Writes OUT/pong_bpo_vs_ppo.{png,pdf} (training return, the mean of the last 100 training episodes with the
stochastic policy, and deterministic evaluation return, against env steps) and OUT/table.md (steps reached,
wall time, throughput, the evaluations). Pong scores run from -21 (loses every point) to +21; the BPO paper
reports Atari at 10M steps, far beyond a 30-minute CPU budget, where both methods are expected to sit near -21.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from analysis.plot import column_curve
from analysis.runs import Run, load_runs
from classic_rl.config import run_cli
from classic_rl.sweep import expand, parse_overrides, run_sweep

SCALES = {"smoke": dict(steps=2048, eval_every=1024, eval_episodes=1, checkpoint_every=1024),
          "small": dict(steps=270_000, eval_every=27_000, eval_episodes=3, checkpoint_every=9_000)}
ALGOS = ("bpo", "ppo")


def specs_for(scale: dict, seeds=(0,), device: str = "cpu", algos=ALGOS):
    """The sweep's runs. Overrides (not raw args) so the slots match the equivalent `classic_rl.sweep` CLI call."""
    sets = {"eval_every": scale["eval_every"], "eval_episodes": scale["eval_episodes"],
            "checkpoint_every": scale["checkpoint_every"], "torch_threads": 1}
    if device != "cpu":
        sets["device"] = device
    return expand(list(algos), ["Pong"], list(seeds), scale["steps"], parse_overrides(sets))


def _column(run: Run, table: str, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, values) of one logged column; empty arrays where the run has not logged it yet."""
    return column_curve(run, table, col, "env_steps") or (np.array([]), np.array([]))


def plot(runs: list[Run], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=150, sharey=True)
    panels = (("metrics", "train_return_mean", "training return (last 100 episodes)"),
              ("eval", "return_mean", "evaluation return (deterministic)"))
    for ax, (table, col, title) in zip(axes, panels):
        for run in sorted(runs, key=lambda r: (r.algo, r.seed)):
            xs, ys = _column(run, table, col)
            if len(xs):
                # distinct markers and dashes: at this budget both evaluation curves sit on -21, one over the other
                ax.plot(xs, ys, marker=("o" if run.algo == "bpo" else "x") if len(xs) < 20 else None, ms=5,
                        ls="-" if run.algo == "bpo" else "--", label=f"{run.algo.upper()} seed {run.seed}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("env steps (x4 frames)")
        ax.axhline(-21, color="grey", lw=0.6, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Pong return")
    axes[0].legend(fontsize=8)
    fig.suptitle("BPO vs PPO on Pong at a CPU budget", fontsize=11)
    fig.tight_layout()
    paths = [out / "pong_bpo_vs_ppo.png", out / "pong_bpo_vs_ppo.pdf"]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def table(runs: list[Run]) -> str:
    lines = ["| algo | seed | env steps reached | wall time (s) | train fps | final training return | "
             "evaluation returns (step: mean) |", "|---|---|---|---|---|---|---|"]
    for run in sorted(runs, key=lambda r: (r.algo, r.seed)):
        s = run.summary
        steps = int(s.get("env_steps", run.metrics.get("env_steps", [0])[-1] if len(run.metrics) else 0))
        _, train = _column(run, "metrics", "train_return_mean")
        ex, ey = _column(run, "eval", "return_mean")
        evals = ", ".join(f"{int(x):,}: {y:.1f}" for x, y in zip(ex, ey))
        wall = s.get("wall_time")
        fps = s.get("fps")
        lines.append(f"| {run.algo.upper()} | {run.seed} | {steps:,} | {wall:.0f} | {fps:.0f} | "
                     f"{train[-1]:.1f} | {evals} |" if wall is not None and fps is not None and len(train) else
                     f"| {run.algo.upper()} | {run.seed} | {steps:,} | unfinished | - | "
                     f"{(f'{train[-1]:.1f}' if len(train) else '-')} | {evals} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m paper_figs.pong_bpo_vs_ppo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--steps", type=int, default=None, help="override the scale's env steps per run")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per algorithm (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (one CPU thread each)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--address", default=None, help="Ray cluster address (ray backend)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot-only", action="store_true", help="draw from the runs already there; launch nothing")
    parser.add_argument("--out", default=None, help="output folder (default paper_figs/out/pong_<scale>)")
    args = parser.parse_args(argv)
    scale = dict(SCALES[args.scale])
    if args.steps is not None:
        if args.steps <= 0:
            parser.error("--steps must be positive")
        scale["steps"] = args.steps
        scale["eval_every"] = max(args.steps // 10, 1)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    out = Path(args.out or f"paper_figs/out/pong_{args.scale}")
    if not args.plot_only:
        run_sweep(specs_for(scale, range(args.seeds), args.device), out / "runs", workers=args.workers,
                  backend=args.backend, address=args.address)
    runs = [r for r in load_runs([str(out / "runs")]) if r.env == "Pong"]
    out.mkdir(parents=True, exist_ok=True)
    paths = plot(runs, out)
    text = table(runs)
    (out / "table.md").write_text(text)
    print("\n" + text + "\n" + "\n".join(f"wrote {p}" for p in paths))
    return {"runs": len(runs), "figures": [str(p) for p in paths]}


if __name__ == "__main__":
    run_cli(main)
