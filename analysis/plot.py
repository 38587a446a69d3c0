"""Convergence plots from run directories.

    python -m analysis.plot runs/bpo/Hopper runs/ppo/Hopper -o hopper.png
    python -m analysis.plot 'runs/*/Hopper' -o hopper.png --agg iqm --source train

One curve per algorithm: the mean (or IQM) over seeds with a 95% percentile-bootstrap confidence band,
after interpolating every seed's curve onto a common step grid.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.runs import Run, group_runs, load_runs
from analysis.stats import bootstrap_ci, curves_on_grid, iqm
from classic_rl import UserError
from classic_rl.config import run_cli

SOURCES = {"eval": ("eval", "return_mean", "evaluation return (deterministic)"),
           "train": ("metrics", "train_return_mean", "training episode return (last 100)")}


def column_curve(run: Run, table: str, column: str, x: str) -> tuple[np.ndarray, np.ndarray] | None:
    cols = getattr(run, table)
    if x not in cols or column not in cols:
        return None
    xs, ys = cols[x].astype(float), cols[column].astype(float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    return (xs[keep], ys[keep]) if keep.sum() else None


def plot_curves(runs: Sequence[Run], out: str | Path, x: str = "env_steps", y: str = "return_mean",
                source: str = "eval", agg: str = "mean", title: str | None = None, ylabel: str | None = None,
                group_by: str = "algo", n_boot: int = 2000) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = SOURCES[source][0] if source in SOURCES else source
    if source in SOURCES and y == "return_mean":
        y = SOURCES[source][1]
    stat = np.mean if agg == "mean" else iqm
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    drawn = 0
    for name, group in sorted(group_runs(runs, group_by).items()):
        curves = [c for c in (column_curve(r, table, y, x) for r in group) if c is not None]
        if not curves:
            continue
        if len(curves) == 1 or any(len(c[0]) == 1 for c in curves):
            xs, ys = curves[0]
            ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, ms=3, label=f"{name} (n=1)")
        else:
            grid, stacked = curves_on_grid([c[0] for c in curves], [c[1] for c in curves])
            point, lo, hi = bootstrap_ci(stacked, stat, n_boot=n_boot)
            (line,) = ax.plot(grid, point, label=f"{name} ({agg}, n={len(curves)})")
            ax.fill_between(grid, lo, hi, alpha=0.25, color=line.get_color(), linewidth=0)
        drawn += 1
    if not drawn:
        plt.close(fig)
        raise UserError(f"none of the {len(runs)} runs has a '{y}' column in {table}.csv to plot")
    envs = sorted({r.env for r in runs})
    ax.set_title(title or f"{', '.join(envs)}: {SOURCES.get(source, (0, 0, y))[2]}")
    ax.set_xlabel("environment steps" if x == "env_steps" else x)
    ax.set_ylabel(ylabel or (SOURCES[source][2] if source in SOURCES else y))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_single_run(run: Run, out: str | Path) -> Path:
    """One run: deterministic evaluation (mean and +-1 std over its episodes) and the training return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    drawn = 0
    ev = column_curve(run, "eval", "return_mean", "env_steps")
    if ev is not None:
        xs, mean = ev
        std = run.eval.get("return_std", np.zeros_like(mean))[: len(mean)].astype(float)
        (line,) = ax.plot(xs, mean, marker="o", ms=3, label="evaluation (deterministic), mean +- std")
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2, color=line.get_color(), linewidth=0)
        drawn += 1
    tr = column_curve(run, "metrics", "train_return_mean", "env_steps")
    if tr is not None:
        ax.plot(*tr, linestyle="--", label="training episodes (stochastic, last 100)")
        drawn += 1
    if not drawn:
        plt.close(fig)
        raise UserError(f"{run.path} has no evaluation or training returns to plot yet")
    ax.set_title(f"{run.algo} on {run.env}, seed {run.seed}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def finish_run(run_dir: Path) -> Path:
    """Draw the run's convergence plot (evaluation and training return) and print the headline and the plot's
    path (the run session has printed the run directory)."""
    from analysis.runs import load_run

    run = load_run(Path(run_dir))
    png = plot_single_run(run, Path(run_dir) / "convergence.png")
    summary = run.summary
    if summary.get("headline") not in (None, "final_eval_return") and summary.get("headline_value") is not None:
        print(f"{summary['headline']}: {summary['headline_value']:.6g}")
    if summary.get("final_eval_return") is not None:
        print(f"final evaluation return: {summary['final_eval_return']:.2f}")
    print(f"convergence plot: {png}")
    return png


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis.plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories, folders containing runs, or globs")
    parser.add_argument("-o", "--out", default="convergence.png", help="output image (png, pdf, svg)")
    parser.add_argument("--source", default="eval", choices=sorted(SOURCES),
                        help="eval: deterministic evaluation returns; train: training-episode returns")
    parser.add_argument("--y", default="return_mean", help="column to plot (default: the source's return)")
    parser.add_argument("--agg", default="mean", choices=["mean", "iqm"], help="aggregate over seeds")
    parser.add_argument("--group-by", default="algo", help="algo, env, or a config field name")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    runs = load_runs(args.runs)
    out = plot_curves(runs, args.out, y=args.y, source=args.source, agg=args.agg, title=args.title,
                      group_by=args.group_by)
    print(f"wrote {out} ({len(runs)} runs)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
