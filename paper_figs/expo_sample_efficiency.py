"""EXPO vs the RLPD-style SAC baseline, same offline data: normalized return vs env steps (mean and 95% CI
over seeds), the env steps each needs to reach a common level, and their ratio (the paper claims 2-3x fewer
for EXPO, on AntMaze/robomimic/Adroit; here the toolkit's own gymnasium-MuJoCo v5 datasets).

    python -m paper_figs.expo_sample_efficiency --scale smoke    # pipeline check, tiny generated dataset, ~30 s
    python -m paper_figs.expo_sample_efficiency --scale small    # Hopper medium-replay, 3 seeds, CPU presets
    python -m paper_figs.expo_sample_efficiency --scale paper    # 3 envs x 5 seeds x 250k steps, --device cuda
    python -m paper_figs.expo_sample_efficiency --scale small --workers 2   # two training processes at a time

Every training run is a plain `python -m algos.expo` or `python -m algos.sac --dataset ...` process launched
through the sweep runner (classic_rl.sweep), in a deterministic slot
<out>/runs/<algo>/<env>/<flags hash>/seed<S> (the dataset is one of the flags; stdout.log and stderr.log
beside the run directory; <out>/runs/sweep.json lists the last invocation's outcome of every run). Running
the same command again skips the finished runs and resumes the interrupted ones from their latest checkpoint
(saved at every evaluation); a failed or diverged run is reported with its command and the tail of its
stderr and does not stop the others (the figure uses the runs that finished; the exit status is then 1).
`--workers N` runs N training processes at a time, each on one torch thread (--torch-threads 1).
Normalized return = the dataset's normalized score / 100 (toolkit reference returns). Common level
= 80% of the lower of the two final mean normalized returns; "steps to level" = the first evaluation at which
the seed-mean curve reaches it (the ratio is SAC's / EXPO's; > 1 means EXPO needed fewer env steps).
95% CI: mean +- t_{0.975, n-1} * std / sqrt(n) over seeds.

Scales:
  smoke -- a 2,000-transition hopper-random dataset generated into <out>/minari (the same generator code
           path as the toolkit's datasets), 2 seeds, 300 env steps, tiny networks; checks the pipeline only.
  small -- hopper-medium-replay (the small-set dataset, 100k transitions: python -m envs.offline.generate
           --env Hopper --level medium-replay --transitions 100000), 3 seeds, 4k env steps, eval every 500 with
           5 episodes; EXPO with its CPU preset, SAC/RLPD at the same UTD (2). Estimated ~1.5 h on the 2-core
           machine (EXPO ~2.6 env steps/s at the CPU preset): short for Hopper, so it shows the early rise only.
  paper -- hopper/halfcheetah/walker2d medium-replay (1M), 5 seeds, 250k env steps, eval every 5k, the paper's
           settings (UTD 20) on --device cuda.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from classic_rl.sweep import RunSpec, plan, run_sweep

ROOT = Path(__file__).resolve().parents[1]
ALGOS = (("expo", "EXPO", "tab:red"), ("sac", "RLPD-style SAC", "tab:blue"))

SCALES = {
    "smoke": dict(envs=[("Hopper", "hopper-random")], seeds=[1, 2], steps=300, eval_every=100, eval_episodes=1,
                  common=["--start-steps", "100", "--batch-size", "32", "--utd", "2", "--num-qs", "4",
                          "--critic-hidden", "32", "32", "--eval-max-steps", "100", "--eval-envs", "1",
                          "--log-every", "50", "--device", "cpu"],
                  expo=["--edit-hidden", "32", "--denoiser-width", "32", "--denoiser-blocks", "1",
                        "--diffusion-steps", "3", "--n-samples", "3", "--n-edit", "2"],
                  sac=["--actor-hidden", "32", "32"]),
    "small": dict(envs=[("Hopper", "hopper-medium-replay")], seeds=[1, 2, 3], steps=4000, eval_every=500,
                  eval_episodes=5, common=["--start-steps", "1000", "--utd", "2", "--batch-size", "128",
                                           "--device", "cpu", "--eval-envs", "5"],
                  expo=[], sac=[]),
    "paper": dict(envs=[("Hopper", "hopper-medium-replay"), ("HalfCheetah", "halfcheetah-medium-replay"),
                        ("Walker2d", "walker2d-medium-replay")], seeds=[1, 2, 3, 4, 5], steps=250_000,
                  eval_every=5000, eval_episodes=100, common=["--device", "cuda", "--eval-envs", "10"],
                  expo=[], sac=[]),
}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def run_specs(scale: dict) -> list[RunSpec]:
    """The figure's training runs as sweep entries, per env: EXPO's seeds, then SAC's. The dataset is an
    override (`--dataset`, next to the runner's `--env`) and the scale's flags are extra arguments, so both
    enter the slot's hash; each run uses one torch thread and checkpoints at every evaluation."""
    specs = []
    for env, dataset in scale["envs"]:
        for algo, _, _ in ALGOS:
            args = ("--eval-every", str(scale["eval_every"]), "--eval-episodes", str(scale["eval_episodes"]),
                    "--checkpoint-every", str(scale["eval_every"]), *scale["common"], *scale[algo],
                    "--torch-threads", "1")
            gpus = 1.0 if "cuda" in scale["common"] else 0.0
            specs.extend(RunSpec(algo, env, seed, scale["steps"], overrides=(("dataset", dataset),),
                                 extra_args=args, num_gpus=gpus) for seed in scale["seeds"])
    return specs


def finished_dirs(specs: Sequence[RunSpec], root: Path) -> dict[tuple[str, str], list[Path]]:
    """{(algo, env): run directories} of the specs whose slot holds a finished run (status done, at least the
    spec's env steps), in the specs' seed order."""
    out: dict[tuple[str, str], list[Path]] = {}
    for spec in specs:
        state, run_dir = plan(spec, root)
        if state == "skip" and run_dir is not None:
            out.setdefault((spec.algo, spec.env), []).append(run_dir)
    return out


def curves(run_dirs: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, normalized returns [seeds, evals]) on the evaluation steps all seeds share."""
    per = []
    for d in run_dirs:
        with open(d / "eval.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        per.append({int(float(r["env_steps"])): float(r["normalized_score"]) / 100.0 for r in rows
                    if r.get("normalized_score") not in (None, "")})
    steps = sorted(set.intersection(*(set(p) for p in per)))
    return np.array(steps), np.array([[p[s] for s in steps] for p in per])


def mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = values.shape[0]
    mean = values.mean(0)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, T975.get(n - 1, 1.96) * values.std(0, ddof=1) / math.sqrt(n)


def steps_to(steps: np.ndarray, mean: np.ndarray, level: float) -> int | None:
    hit = np.flatnonzero(mean >= level)
    return int(steps[hit[0]]) if hit.size else None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper_figs.expo_sample_efficiency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    p.add_argument("--out", default=None, help="output folder (default paper_figs/results/expo_<scale>)")
    p.add_argument("--workers", type=int, default=1, help="training processes at a time (one torch thread each)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the scale's seeds")
    p.add_argument("--steps", type=int, default=None, help="override the scale's env steps per run")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be positive, got {args.workers}")
    if args.steps is not None and args.steps <= 0:
        p.error(f"--steps must be positive, got {args.steps}")
    scale = dict(SCALES[args.scale])
    scale["seeds"] = args.seeds or scale["seeds"]
    scale["steps"] = args.steps or scale["steps"]
    out = Path(args.out or ROOT / "paper_figs" / "results" / f"expo_{args.scale}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.scale == "smoke":  # a private Minari root with a tiny dataset made by the toolkit's generator
        os.environ["MINARI_DATASETS_PATH"] = str(out / "minari")
        from envs.offline.generate import generate
        generate("hopper", "random", transitions=2000, seed=1, progress=False, log=lambda *a: None)
    specs = run_specs(scale)
    root = out / "runs"
    report = run_sweep(specs, root, workers=args.workers)  # the runs inherit MINARI_DATASETS_PATH
    unfinished = len(report.failed) + report.count("diverged")
    dirs = finished_dirs(specs, root)
    missing = [f"{algo} on {env}" for env, _ in scale["envs"] for algo, _, _ in ALGOS if not dirs.get((algo, env))]
    if missing:
        raise SystemExit(f"no finished runs for {', '.join(missing)} under {root}; see the messages above")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = ["| env | dataset | level | EXPO steps | SAC (RLPD) steps | ratio SAC/EXPO | EXPO final (95% CI) | SAC final (95% CI) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    fig, axes = plt.subplots(1, len(scale["envs"]), figsize=(5 * len(scale["envs"]), 3.6), squeeze=False)
    for ax, (env, dataset) in zip(axes[0], scale["envs"]):
        stats = {}
        for algo, label, color in ALGOS:
            runs = dirs[(algo, env)]
            steps, values = curves(runs)
            mean, ci = mean_ci(values)
            stats[algo] = (steps, mean, ci)
            ax.plot(steps, mean, color=color, label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(steps, mean - ci, mean + ci, color=color, alpha=0.2)
        level = 0.8 * min(stats["expo"][1][-1], stats["sac"][1][-1])
        se, ss = steps_to(stats["expo"][0], stats["expo"][1], level), steps_to(stats["sac"][0], stats["sac"][1], level)
        ratio = f"{ss / se:.2f}" if se and ss is not None else "n/a (EXPO at step 0 or a curve never reaches the level)"
        final = {a: f"{stats[a][1][-1]:.3f} +- {stats[a][2][-1]:.3f}" for a in stats}
        table.append(f"| {env} | {dataset} | {level:.3f} | {se} | {ss} | {ratio} | {final['expo']} | {final['sac']} |")
        ax.axhline(level, color="gray", ls=":", lw=1)
        ax.set_title(f"{env} ({dataset})")
        ax.set_xlabel("env steps")
        ax.set_ylabel("normalized return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    png = out / f"expo_sample_efficiency_{args.scale}.png"
    fig.savefig(png, dpi=120)
    fig.savefig(png.with_suffix(".pdf"))
    note = ("common level = 80% of the lower final mean; steps = first evaluation where the seed mean reaches it; "
            "step 0 counts when both start above it (then the ratio says nothing)")
    (out / f"expo_sample_efficiency_{args.scale}.md").write_text("\n".join(table) + f"\n\n{note}\n")
    print("\n".join(table))
    print(f"figure: {png}")
    if unfinished:
        print(f"{unfinished} training run(s) failed or diverged (see above); the figure shows the runs that "
              "finished", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
