"""A2PR vs TD3+BC on the toolkit's D4RL look-alike datasets, beside the paper's D4RL -v2 numbers.

    python -m paper_figs.a2pr_d4rl --scale smoke      # ~2 min: pipeline check on a tiny random dataset
    python -m paper_figs.a2pr_d4rl --scale small      # ~1 h on 2 cores (--workers 2): Hopper's 3 datasets
    python -m paper_figs.a2pr_d4rl --scale paper      # 9 datasets x 5 seeds x 1M steps (GPU / cluster)

Every run goes through the sweep runner (deterministic slots under OUT/runs), so re-running the command
after an interruption skips finished runs and resumes the others from their checkpoints. The score of a run
is the mean normalized score of its last `last_k` evaluations (100 (R - R_min) / (R_max - R_min) with the
dataset's own reference returns); the table shows mean +- std over seeds.

Scales. `small` keeps the algorithms' update rules and per-dataset settings but cuts the budget to fit a
2-core CPU in about an hour with 2 workers: 20k gradient steps (the paper: 1M), 3 seeds (5), evaluation
every 1k steps with 5 episodes (5k / 10), and A2PR's networks narrowed to TD3+BC's size (actor and critics 256-256, V
256-256, VAE 256-256 instead of 256x3 / 256x4 / 750x2: the paper's A2PR costs ~10x TD3+BC per step on a
CPU). At that budget both methods are early in training: the table shows the direction, not the paper's
converged numbers (measured: at 5k steps neither method had left the random-policy level on Hopper, while
pure behaviour cloning, --alpha 0, reached the medium dataset's level within 1k steps: TD3+BC's Q term
dominates until the critic is learned). A finished run is extended, not restarted, when --steps grows. The datasets are the toolkit's gymnasium-v5 look-alikes (envs/offline), not D4RL's -v2
files, so the paper's numbers are a reference, not a target.

Which datasets to read. Our Hopper expert mostly balances in place (return ~1067 over 1000 steps), so on the
Hopper scale a policy that stands still scores ~95 and any forward-moving policy that falls scores ~-1: the
Hopper rows test staying upright (docs/offline_datasets.md). HalfCheetah has no termination and a real
expert (5790), so its rows are the meaningful check at small scale:
    python -m paper_figs.a2pr_d4rl --scale small --datasets halfcheetah-medium,halfcheetah-medium-replay
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from classic_rl.config import run_cli
from classic_rl.runlog import atomic_write_text
from classic_rl.sweep import RunSpec, run_sweep

# D4RL -v2 normalized scores: TD3+BC and A2PR as tabulated "from the original papers" (A2PR, ICML 2024).
PAPER = {
    "halfcheetah-medium": (48.3, 68.6), "hopper-medium": (59.3, 100.8), "walker2d-medium": (83.7, 89.7),
    "halfcheetah-medium-replay": (44.6, 56.6), "hopper-medium-replay": (60.9, 101.5),
    "walker2d-medium-replay": (81.8, 94.4), "halfcheetah-medium-expert": (90.7, 98.3),
    "hopper-medium-expert": (98.0, 112.1), "walker2d-medium-expert": (110.1, 114.6),
}
ENV_OF = {"hopper": "Hopper", "halfcheetah": "HalfCheetah", "walker2d": "Walker2d"}
SMALL_A2PR_NETS = ("--actor-hidden-sizes", "256", "256", "--hidden-sizes", "256", "256",
                   "--vae-hidden-sizes", "256", "256")
SCALES = {
    "smoke": dict(datasets=["hopper-random"], seeds=2, steps=300, eval_every=100, eval_episodes=2, last_k=2,
                  a2pr_args=("--actor-hidden-sizes", "32", "32", "--hidden-sizes", "32", "32",
                             "--vae-hidden-sizes", "32", "32"), common=("--hidden-sizes", "32", "32")),
    "small": dict(datasets=["hopper-medium", "hopper-medium-replay", "hopper-medium-expert"], seeds=3,
                  steps=20_000, eval_every=1000, eval_episodes=5, last_k=3, a2pr_args=SMALL_A2PR_NETS, common=()),
    "paper": dict(datasets=list(PAPER), seeds=5, steps=1_000_000, eval_every=5000, eval_episodes=10, last_k=10,
                  a2pr_args=(), common=()),
}


def specs_for(scale: dict, datasets: list[str], seeds: list[int], device: str) -> list[RunSpec]:
    specs = []
    for dataset in datasets:
        env = ENV_OF[dataset.split("-")[0]]
        common = ("--eval-every", str(scale["eval_every"]), "--eval-episodes", str(scale["eval_episodes"]),
                  "--checkpoint-every", str(scale["eval_every"]), "--device", device, "--torch-threads", "1")
        gpus = 1.0 if device == "cuda" else 0.0
        for seed in seeds:
            specs.append(RunSpec("td3_bc", env, seed, scale["steps"], overrides=(("dataset", dataset),),
                                 extra_args=(*common, *scale["common"]), num_gpus=gpus))
            specs.append(RunSpec("a2pr", env, seed, scale["steps"], overrides=(("dataset", dataset),),
                                 extra_args=(*common, *scale["a2pr_args"]), num_gpus=gpus))
    return specs


def run_score(run, last_k: int) -> float:
    scores = np.asarray(run.eval.get("normalized_score", []), float)
    return float(np.mean(scores[-last_k:])) if scores.size else float("nan")


def table(runs, datasets: list[str], last_k: int, steps: int, seeds: int) -> str:
    lines = [f"Normalized score, mean of the last {last_k} evaluations per seed, mean +- std over seeds "
             f"({steps:,} gradient steps, {seeds} seeds). Paper: D4RL -v2, 1M steps, 5 seeds.", "",
             "| dataset | TD3+BC (ours) | A2PR (ours) | A2PR - TD3+BC | TD3+BC (paper) | A2PR (paper) |",
             "|---|---|---|---|---|---|"]
    for dataset in datasets:
        cells, means = [], {}
        for algo in ("td3_bc", "a2pr"):
            scores = [run_score(r, last_k) for r in runs if r.algo == algo and r.config.get("dataset") == dataset]
            scores = [s for s in scores if np.isfinite(s)]
            means[algo] = float(np.mean(scores)) if scores else float("nan")
            cells.append(f"{np.mean(scores):.1f} +- {np.std(scores):.1f} (n={len(scores)})" if scores else "-")
        paper = PAPER.get(dataset, (float("nan"), float("nan")))
        lines.append(f"| {dataset} | {cells[0]} | {cells[1]} | {means['a2pr'] - means['td3_bc']:+.1f} | "
                     f"{paper[0]} | {paper[1]} |")
    return "\n".join(lines)


def plot(runs, datasets: list[str], out: Path) -> Path:
    import matplotlib.pyplot as plt

    from analysis.stats import bootstrap_ci

    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for algo, color, label in (("td3_bc", "tab:blue", "TD3+BC"), ("a2pr", "tab:red", "A2PR")):
            group = [r for r in runs if r.algo == algo and r.config.get("dataset") == dataset
                     and len(r.eval.get("normalized_score", []))]
            if not group:
                continue
            n = min(len(r.eval["normalized_score"]) for r in group)
            x = np.asarray(group[0].eval["env_steps"][:n], float)
            y = np.stack([np.asarray(r.eval["normalized_score"][:n], float) for r in group])
            ci = [bootstrap_ci(y[:, i]) for i in range(n)] if len(group) > 1 else [(v, v, v) for v in y[0]]
            ax.plot(x, y.mean(0), color=color, label=f"{label} (n={len(group)})")
            ax.fill_between(x, [c[1] for c in ci], [c[2] for c in ci], color=color, alpha=0.2)
        ax.set_title(dataset)
        ax.set_xlabel("gradient steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized score")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("A2PR vs TD3+BC: mean and 95% bootstrap CI over seeds", fontsize=10)
    fig.tight_layout()
    png = out / "a2pr_vs_td3bc.png"
    fig.savefig(png)
    fig.savefig(out / "a2pr_vs_td3bc.pdf")
    plt.close(fig)
    return png


def main(argv=None) -> None:
    from analysis.runs import load_runs

    parser = argparse.ArgumentParser(prog="python -m paper_figs.a2pr_d4rl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--datasets", default=None, help="comma-separated dataset ids (default: the scale's)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 1..N (default: the scale's)")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps per run (default: the scale's)")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one CPU each)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", default=None, help="output folder (default paper_figs/out/a2pr_d4rl-<scale>)")
    args = parser.parse_args(argv)
    scale = dict(SCALES[args.scale])
    datasets = args.datasets.split(",") if args.datasets else scale["datasets"]
    seeds = list(range(1, (args.seeds or scale["seeds"]) + 1))
    if args.steps:
        scale["steps"] = args.steps
    out = Path(args.out or f"paper_figs/out/a2pr_d4rl-{args.scale}")
    out.mkdir(parents=True, exist_ok=True)
    if args.scale == "smoke":  # a tiny random dataset: no behaviour policy to train
        from envs.offline.generate import generate
        generate("hopper", "random", transitions=2000, seed=1, progress=False)
    report = run_sweep(specs_for(scale, datasets, seeds, args.device), out / "runs", workers=args.workers,
                       backend=args.backend)
    dirs = [str(d) for d in report.run_dirs()]
    if not dirs:
        raise SystemExit("every run failed; see the messages above")
    runs = load_runs(dirs)
    text = table(runs, datasets, scale["last_k"], scale["steps"], len(seeds))
    atomic_write_text(out / "table.md", text + "\n")
    print("\n" + text)
    print(f"\nfigure: {plot(runs, datasets, out)}\ntable: {out / 'table.md'}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
