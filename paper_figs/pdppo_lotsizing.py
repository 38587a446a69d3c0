"""PDPPO vs PPO on stochastic lot-sizing (Felizardo et al., 2025, arXiv 2504.05150), paper values beside ours.

    python -m paper_figs.pdppo_lotsizing --scale smoke     # about a minute: proves the pipeline, not the claim
    python -m paper_figs.pdppo_lotsizing --scale small     # 5 seeds x 48k steps per method (~30 min, 2 free CPUs)
    python -m paper_figs.pdppo_lotsizing --scale paper     # 20 seeds x 1M steps (the paper's budget)
    python -m paper_figs.pdppo_lotsizing --scale small --no-train   # re-analyse the runs already there

Both methods run in algos.pdppo's loop with the authors' latest settings: "pdppo" (two critics, A = max) and
"ppo-authors" (`--critics pre-only`: the authors' PPO baseline, same actor, buffer and optimisers), so they
differ in the critics only (both are algos.pdppo runs, in slots of their own; summary.json's `variant` tells
them apart).
`--generic-ppo` also runs the toolkit's algos.ppo (its own GAE/minibatch settings; its train_return_mean is
a 100-episode mean logged every rollout, so only its max is compared).
`--frozen-trunk` reproduces the authors' optimisers exactly (actor trunk frozen at its random init).
Metrics as the authors' generate_tables.py: the mean training return of the episodes in each window of 40
episodes (4 000 steps; algos.pdppo's `window_return`); "max reward" = its maximum over the run,
"cumulative reward" = the sum of the window values; mean +/- sd over seeds and one-sided Welch t-tests
(PDPPO > the other method). A campaign heuristic
(envs/lotsizing/heuristic.py, tuned on its own seeds) gives an absolute yardstick.
Every training run is a plain `python -m algos.pdppo` (or `algos.ppo`) process launched through the sweep
runner `classic_rl.sweep`, in a deterministic slot <run-dir>/<scale>/<algo>/<env>/<flags hash>/seed<S>
(its stdout.log and stderr.log beside the run directory; <run-dir>/<scale>/sweep.json lists the last
invocation's outcome of every run). Re-running the same command skips the finished runs and resumes the
interrupted ones from their latest checkpoint (saved every `checkpoint_every` env steps of the scale); a
larger --total-steps extends finished runs. A failed run is reported with its command and the tail of its
stderr and does not stop the others (the figure uses the runs that finished; the exit status is then 1).
`--workers N` runs N training processes at a time (`--jobs` is its old name).
The figure and table go to <out>/<scale>-<instance>.{png,md}.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from analysis.runs import Run, load_runs
from analysis.stats import bootstrap_ci, curves_on_grid
from classic_rl import UserError
from classic_rl.config import parse_config, require, run_cli
from classic_rl.runlog import atomic_write_text
from classic_rl.sweep import RunSpec, plan, run_sweep

SCALES = {  # total env steps, logging window, seeds, evaluation episodes at the end, resumable checkpoints
    "smoke": dict(total_steps=4000, window_steps=800, seeds=[1, 2], eval_episodes=4, checkpoint_every=800),
    "small": dict(total_steps=48_000, window_steps=4000, seeds=[1, 2, 3, 4, 5], eval_episodes=40,
                  checkpoint_every=8000),
    "paper": dict(total_steps=1_000_000, window_steps=4000, seeds=list(range(1, 21)), eval_episodes=40,
                  checkpoint_every=50_000),
}
METHODS = {"pdppo": ["--critics", "dual-split"], "ppo-authors": ["--critics", "pre-only"]}
# The authors' logged training return (40-episode mean every 4 000 steps), best value within the first
# 48k / 100k / 1M steps, for the runs we read of their 20: runs 1-3 of
# code/Lot-sizing/logs/15items_5machines_t100_i100_{PDPPO,PPO}/*_log_{1,2,3}.csv (read, not shipped), and
# run 1 of their 25items_15machines log. Their 20-run tables were not found.
PAPER_LOGS = {
    "15x5": {"pdppo": {48_000: [-5593.3, -5288.7, -6868.2], 100_000: [-4189.5, -4647.0, -4837.6],
                       1_000_000: [-2687.8, -3290.6, -4003.2]},
             "ppo-authors": {48_000: [-7803.3, -8979.2, -10217.1], 100_000: [-4868.9, -8484.4, -4582.8],
                             1_000_000: [-2991.1, -3261.0, -2969.0]}},
    "25x15": {"pdppo": {1_000_000: [-6363.0]}, "ppo-authors": {1_000_000: [-9370.0]}},
}


@dataclasses.dataclass
class FigConfig:
    """Reproduce the PDPPO-vs-PPO lot-sizing comparison (max and cumulative reward, Welch t-tests)."""

    scale: Literal["smoke", "small", "paper"] = "smoke"
    """smoke (about a minute), small (5 seeds x 48k steps), paper (20 seeds x 1M steps)"""
    instance: Literal["15x5", "20x10", "25x10", "25x15"] = "15x5"
    """lot-sizing instance (15x5 is the authors' data; the others are regenerated, see envs/lotsizing)"""
    seeds: Optional[list[int]] = None
    """override the scale's seeds"""
    total_steps: Optional[int] = None
    """override the scale's env steps per run"""
    workers: int = 1
    """training processes run at once (each uses one CPU thread)"""
    jobs: Optional[int] = None
    """old name of --workers (overrides it when given)"""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """device of every training run"""
    train: bool = True
    """train the runs that are missing; --no-train only analyses what is already under --run-dir"""
    generic_ppo: bool = False
    """also run the toolkit's algos.ppo (GAE, minibatches, normalisation: not the authors' baseline)"""
    frozen_trunk: bool = False
    """reproduce the authors' optimisers exactly: actor trunk frozen at init (runs go to <scale>-frozen-trunk)"""
    run_dir: str = "runs/paper_figs/pdppo_lotsizing"
    """root of the run directories (one sub-folder per scale)"""
    out: str = "figs/pdppo_lotsizing"
    """folder for the figure and the markdown table"""

    def validate(self) -> None:
        require(self.workers > 0, f"--workers must be positive, got {self.workers}")
        require(self.jobs is None or self.jobs > 0, f"--jobs must be positive, got {self.jobs}")
        require(self.total_steps is None or self.total_steps > 0, "--total-steps must be positive")
        require(not self.seeds or all(s >= 0 for s in self.seeds), "--seeds must be non-negative")


# ----------------------------------------------------------------------------- training


def method(run: Run) -> str:
    """The method a run belongs to: algos.pdppo's variant (pdppo, ppo-authors, ...) or the algorithm."""
    return run.summary.get("variant", run.algo)


def run_specs(cfg: FigConfig, scale: dict, generic_ppo: bool = False) -> list[RunSpec]:
    """The figure's training runs as sweep entries, seed by seed: algos.pdppo as "pdppo" and "ppo-authors"
    (METHODS), and algos.ppo when `generic_ppo`. The flags enter each slot's hash, so the two methods (and a
    frozen trunk) never share a slot; total_steps does not, so a larger --total-steps extends a run."""
    env = f"LotSizing-{cfg.instance}"
    common = ("--eval-every", "0", "--eval-episodes", str(scale["eval_episodes"]),
              "--checkpoint-every", str(scale["checkpoint_every"]), "--device", cfg.device)
    trunk = ("--no-train-actor-trunk",) if cfg.frozen_trunk else ()
    specs = []
    for seed in scale["seeds"]:
        for flags in METHODS.values():
            specs.append(RunSpec("pdppo", env, seed, scale["total_steps"],
                                 extra_args=(*common, "--window-steps", str(scale["window_steps"]), *flags, *trunk)))
        if generic_ppo:
            specs.append(RunSpec("ppo", env, seed, scale["total_steps"], extra_args=(*common, "--torch-threads", "1")))
    return specs


def finished_runs(specs: list[RunSpec], root: Path) -> list[Run]:
    """The finished run (status done, at least the spec's env steps) in each spec's slot, where there is one."""
    dirs = [str(run_dir) for state, run_dir in (plan(spec, root) for spec in specs) if state == "skip"]
    return load_runs(dirs) if dirs else []


# ----------------------------------------------------------------------------- metrics


def logged_curve(run: Run, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, window training return) up to `max_steps`; for algos.ppo its 100-episode train_return_mean."""
    column = "window_return" if "window_return" in run.metrics else "train_return_mean"
    x, y = run.metrics.get("env_steps", np.zeros(0)), run.metrics.get(column, np.zeros(0))
    keep = np.isfinite(y) & (x <= max_steps)
    return x[keep], y[keep]


def paper_metrics(runs: list[Run], max_steps: int) -> dict[str, np.ndarray]:
    """Per seed: max and sum of the logged returns (the authors' "max" and "cumulative" reward)."""
    curves = [logged_curve(r, max_steps) for r in runs]
    curves = [c for c in curves if len(c[1])]
    return {"max": np.array([c[1].max() for c in curves]), "cumulative": np.array([c[1].sum() for c in curves]),
            "final_eval": np.array([r.summary["final_eval_return"] for r in runs
                                    if r.summary.get("final_eval_return") is not None])}


def welch_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """One-sided Welch t-test of mean(a) > mean(b): (t, p); nan when a group has fewer than 2 seeds."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    return float(res.statistic), float(res.pvalue)


def heuristic_baseline(instance: str) -> tuple[float, float, float, float]:
    """Campaign heuristic tuned on 64 plants (seed 12345), scored on 400 fresh plants: (mean, sd, s, S)."""
    from envs.lotsizing.batched import BatchedLotSizing
    from envs.lotsizing.heuristic import evaluate, tune

    _, s, big_s = tune(BatchedLotSizing(instance, 64), seed=12345)
    returns = evaluate(BatchedLotSizing(instance, 400), s, big_s, seed=777).numpy()
    return float(returns.mean()), float(returns.std(ddof=1)), s, big_s


def fmt(x: np.ndarray) -> str:
    if len(x) == 0:
        return "n/a"
    return f"{x.mean():.0f} +/- {x.std(ddof=1):.0f} (n={len(x)})" if len(x) > 1 else f"{x[0]:.0f} (n=1)"


def report(groups: dict[str, list[Run]], steps: int, instance: str, heuristic: tuple) -> str:
    metrics = {algo: paper_metrics(runs, steps) for algo, runs in groups.items()}
    paper = PAPER_LOGS.get(instance, {})
    lines = [f"## PDPPO vs PPO, lot-sizing {instance}, {steps:,} env steps per run", "",
             "| method | max reward (ours) | max reward, authors' logs, same budget | cumulative reward (ours) "
             "| final greedy eval (ours) |",
             "|---|---|---|---|---|"]
    for algo, m in sorted(metrics.items()):
        ref = paper.get(algo, {}).get(steps)
        cumulative = "n/a (logged every rollout)" if algo == "ppo" else fmt(m["cumulative"])
        lines.append(f"| {algo} | {fmt(m['max'])} | {fmt(np.array(ref)) if ref else 'not found'} | "
                     f"{cumulative} | {fmt(m['final_eval'])} |")
    lines.append(f"| campaign heuristic (s={heuristic[2]:g}, S={heuristic[3]:g}) | {heuristic[0]:.0f} +/- "
                 f"{heuristic[1]:.0f} per episode (400 episodes) | | | |")
    for other in sorted(k for k in metrics if k != "pdppo"):
        if "pdppo" not in metrics:
            break
        lines += ["", f"One-sided Welch t-tests, H1: pdppo > {other}:", ""]
        for key in ("max", "cumulative", "final_eval"):
            if other == "ppo" and key == "cumulative":  # algos.ppo logs every rollout, not every 40 episodes
                continue
            t, p = welch_greater(metrics["pdppo"][key], metrics[other][key])
            name = "final greedy evaluation" if key == "final_eval" else f"{key} reward"
            lines.append(f"* {name}: t = {t:.2f}, p = {p:.3g}")
    lines.append("")
    for budget in sorted(paper.get("pdppo", {})):
        if budget != steps:
            lines.append(f"* authors' logs at {budget:,} steps, max reward: PDPPO {fmt(np.array(paper['pdppo'][budget]))}"
                         f", PPO {fmt(np.array(paper['ppo-authors'][budget]))}")
    return "\n".join(lines) + "\n"


def plot(groups: dict[str, list[Run]], steps: int, heuristic: tuple, title: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    for algo, runs in sorted(groups.items()):
        curves = [c for c in (logged_curve(r, steps) for r in runs) if len(c[1]) > 1]
        if not curves:
            continue
        grid, stacked = curves_on_grid([c[0] for c in curves], [c[1] for c in curves])
        point, lo, hi = bootstrap_ci(stacked)
        (line,) = ax.plot(grid, point, label=f"{algo} (mean, n={len(curves)})")
        ax.fill_between(grid, lo, hi, alpha=0.25, color=line.get_color(), linewidth=0)
    ax.axhline(heuristic[0], color="k", ls="--", lw=1, label="campaign heuristic")
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training return (stochastic policy, mean per window)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    cfg = parse_config(FigConfig, argv, prog="python -m paper_figs.pdppo_lotsizing")
    scale = dict(SCALES[cfg.scale])
    scale["seeds"] = cfg.seeds or scale["seeds"]
    scale["total_steps"] = cfg.total_steps or scale["total_steps"]
    tag = cfg.scale + ("-frozen-trunk" if cfg.frozen_trunk else "")
    root = Path(cfg.run_dir) / tag
    failed = 0
    if cfg.train:
        workers = cfg.jobs if cfg.jobs is not None else cfg.workers
        failed = len(run_sweep(run_specs(cfg, scale, cfg.generic_ppo), root, workers=workers).failed)
    # every finished run of the figure's slots, algos.ppo's too where an earlier --generic-ppo left them
    runs = finished_runs(run_specs(cfg, scale, generic_ppo=True), root)
    if not runs:
        raise UserError(f"no finished runs under {root}: " + ("every run failed, see the messages above"
                                                             if cfg.train else "run without --no-train first"))
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(method(r), []).append(r)
    heuristic = heuristic_baseline(cfg.instance)
    table = report(groups, scale["total_steps"], cfg.instance, heuristic)
    out = Path(cfg.out)
    png = plot(groups, scale["total_steps"], heuristic, f"lot-sizing {cfg.instance} ({tag})",
               out / f"{tag}-{cfg.instance}.png")
    atomic_write_text(out / f"{tag}-{cfg.instance}.md", table + f"\n![curves]({png.name})\n")
    print(table)
    print(f"figure: {png}\ntable: {out / f'{tag}-{cfg.instance}.md'}")
    if failed:
        print(f"{failed} training run(s) failed (see above); the figure shows the runs that finished",
              file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
