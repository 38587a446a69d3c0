"""BPO vs PPO on MuJoCo (Ao et al. 2026, project-page figure; spec bpo_ppo.md §1(f)).

    python -m paper_figs.bpo_mujoco --scale smoke     # ~1-2 minutes on 2 cores: proves the pipeline only
    python -m paper_figs.bpo_mujoco --scale small     # Hopper-v5, 1M steps x 3 seeds (hours on 2 cores)
    python -m paper_figs.bpo_mujoco --scale paper --env Ant --workers 10   # 20M steps x 10 seeds

Runs both algorithms under identical wrappers (no normalization, the BPO paper's setting) and, with
--ppo-setting zoo, PPO also with rl-zoo's normalization. Draws training-return curves (the paper's metric:
mean of the last 100 training episodes, stochastic policy) and deterministic-evaluation curves, with 95%
bootstrap bands over seeds, and prints final returns beside the paper's numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from analysis.plot import plot_curves
from analysis.runs import load_runs
from analysis.stats import bootstrap_ci
from classic_rl.config import run_cli
from classic_rl.sweep import RunSpec, run_sweep

# Final means read off the project-page figures (spec §1(f), [fig], v4 envs; ours are v5).
PAPER = {"Hopper": {"bpo": 3500, "ppo": 2400, "steps": "20M"}, "Ant": {"bpo": 5000, "ppo": 4100, "steps": "20M"},
         "Humanoid": {"bpo": 1700, "ppo": 700, "steps": "35M"}, "Swimmer": {"bpo": 355, "ppo": 362, "steps": "20M"}}
SCALES = {"smoke": dict(steps=4096, seeds=2, eval_every=2048, eval_episodes=2),
          "small": dict(steps=1_000_000, seeds=3, eval_every=50_000, eval_episodes=10),
          "paper": dict(steps=20_000_000, seeds=10, eval_every=500_000, eval_episodes=10)}
# The BPO paper ran SB3 PPO without VecNormalize, with [256, 256] ReLU, orthogonal init, log-std 0.
PAPER_PPO = ["--no-normalize-obs", "--no-normalize-reward", "--hidden-sizes", "256", "256", "--activation", "relu",
             "--ortho-init", "--log-std-init", "0"]


def final_train_returns(runs) -> np.ndarray:
    out = []
    for r in runs:
        col = r.metrics.get("train_return_mean")
        if col is not None and np.isfinite(col).any():
            out.append(col[np.isfinite(col)][-1])
    return np.array(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paper_figs.bpo_mujoco", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--env", default="Hopper", help="MuJoCo short name (Hopper, Ant, Humanoid, Swimmer, ...)")
    parser.add_argument("--workers", type=int, default=1, help="parallel training processes")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ppo-setting", choices=["paper", "zoo", "both"], default="paper",
                        help="paper: PPO exactly as in the BPO paper; zoo: rl-zoo normalization; both")
    parser.add_argument("--out", default=None, help="output folder (default paper_figs/out/bpo_mujoco_<env>_<scale>)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="override the scale's env steps per run")
    parser.add_argument("--seeds", type=int, default=None, help="override the scale's number of seeds")
    args = parser.parse_args(argv)
    scale = dict(SCALES[args.scale])
    if args.steps is not None:
        scale["steps"] = args.steps
        scale["eval_every"] = min(scale["eval_every"], max(args.steps // 10, 1))
    if args.seeds is not None:
        scale["seeds"] = args.seeds
    out = Path(args.out or f"paper_figs/out/bpo_mujoco_{args.env}_{args.scale}")
    # every run through the sweep runner: deterministic slots under out/runs, so a rerun skips finished runs
    # and resumes interrupted ones from their checkpoints
    common = ("--eval-every", str(scale["eval_every"]), "--eval-episodes", str(scale["eval_episodes"]),
              "--device", args.device, "--torch-threads", "1")
    gpus = 1.0 if args.device == "cuda" else 0.0
    specs = []
    for seed in range(1, scale["seeds"] + 1):
        specs.append(RunSpec("bpo", args.env, seed, scale["steps"], extra_args=common, num_gpus=gpus))
        if args.ppo_setting in ("paper", "both"):
            specs.append(RunSpec("ppo", args.env, seed, scale["steps"], extra_args=(*common, *PAPER_PPO),
                                 num_gpus=gpus))
        if args.ppo_setting in ("zoo", "both"):
            specs.append(RunSpec("ppo", args.env, seed, scale["steps"], extra_args=common, num_gpus=gpus))
    report = run_sweep(specs, out / "runs", workers=args.workers, backend=args.backend)
    dirs = [str(d) for d in report.run_dirs()]
    if not dirs:
        raise SystemExit("every run failed; see the messages above")
    runs = load_runs(dirs)
    for r in runs:  # distinguish the PPO variants in the legend
        if r.algo == "ppo" and r.config.get("normalize_obs"):
            r.algo = "ppo (zoo, normalized)"
    fig_train = plot_curves(runs, out / "train_return.png", source="train",
                            title=f"{args.env}-v5: training return, mean and 95% CI over seeds")
    fig_eval = plot_curves(runs, out / "eval_return.png", source="eval",
                           title=f"{args.env}-v5: deterministic evaluation, mean and 95% CI over seeds")
    paper = PAPER.get(args.env, {})
    print(f"\n{args.env}-v5, {scale['steps']:,} steps x {scale['seeds']} seeds (paper: v4, {paper.get('steps', '?')} steps)")
    print(f"{'algorithm':<24}{'final train return (95% CI)':<34}{'paper':>8}")
    groups: dict[str, list] = {}
    for r in runs:
        groups.setdefault(r.algo, []).append(r)
    for algo, group in sorted(groups.items()):
        finals = final_train_returns(group)
        if finals.size:
            point, lo, hi = bootstrap_ci(finals)
            ours = f"{float(point):9.1f} [{float(lo):.1f}, {float(hi):.1f}] n={finals.size}"
        else:
            ours = "no finished episodes"
        print(f"{algo:<24}{ours:<34}{paper.get(algo.split()[0], float('nan')):>8}")
    print(f"figures: {fig_train} {fig_eval}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
