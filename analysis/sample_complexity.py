"""How many samples each algorithm needs to reach a target, and (on LQR) the empirical convergence rate.

    python -m analysis.sample_complexity runs/*/LQR -o lqr.png
    python -m analysis.sample_complexity runs/*/CartPole-v1 --target 150 195 --x trajectories -o cartpole.png
    python -m analysis.sample_complexity results.sqlite --target 1000 2000 --baseline ppo -o mujoco.png

For every algorithm (runs grouped by the `algo` of their run directory) this
  * draws the evaluation curve against environment steps and against trajectories (two panels): the
    suboptimality J(K) - J* on LQR (log-log, median over seeds with a 95% bootstrap band), the mean
    deterministic return elsewhere (mean with a 95% bootstrap band);
  * prints, per target, the samples needed to first reach it: median over seeds with a 95% bootstrap CI.
    A run that never reaches the target is CENSORED (its value is +inf), not dropped, so a method that
    fails on half its seeds has an infinite median. "reached" counts the seeds that got there;
  * prints the ratio of medians against a baseline algorithm (default vanilla_pg) with a bootstrap CI; when
    exactly one of the two medians is censored the ratio is shown as a bound ("< 0.6": the method got
    there, the baseline had not by its budget);
  * on LQR, fits log(suboptimality) = a + slope * log(samples) per seed over the late part of the run and
    reports the mean slope with a bootstrap CI beside the slope the theory predicts: a sample complexity of
    O(eps^-p) trajectories means suboptimality ~ samples^(-1/p) (Fatkhullin et al. 2023, abstract: p = 3 for
    vanilla PG, 2.5 for N-PG-IGT, 2 for (N)-HARPG).
A run whose summary.json has `status: diverged` (the run session writes it when parameters or statistics become
non-finite) is censored from the point it stopped on.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.collect import is_results_table, load_results
from analysis.runs import Run, group_runs, load_runs
from analysis.stats import steps_to_threshold
from classic_rl import UserError
from classic_rl.config import run_cli

# Theory (the paper's abstract): trajectories to reach J* - J <= eps; the rate slope is -1/exponent.
THEORY_EXPONENT = {"vanilla_pg": 3.0, "npg_igt": 2.5, "n_harpg": 2.0, "harpg": 2.0}
DEFAULT_TARGETS = {"LQR": [1.0, 0.3, 0.1, 0.03], "CartPole-v1": [150.0, 195.0]}
X_LABELS = {"env_steps": "environment steps", "trajectories": "trajectories"}


def is_suboptimality(runs: Sequence[Run]) -> bool:
    return all("suboptimality" in r.eval for r in runs)


def run_curve(run: Run, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    if x not in run.eval or y not in run.eval:
        raise UserError(f"{run.path}/eval.csv has no {x!r} or {y!r} column (is it a policy-gradient run?)")
    xs, ys = run.eval[x].astype(float), run.eval[y].astype(float)
    keep = np.isfinite(xs) & ~np.isnan(ys)
    return xs[keep], ys[keep]


def samples_to_target(runs: Sequence[Run], x: str, y: str, target: float, lower_is_better: bool) -> np.ndarray:
    """Per run: the first x at which y reaches the target (inf = censored: never reached)."""
    out = []
    for r in runs:
        xs, ys = run_curve(r, x, y)
        out.append(steps_to_threshold(xs, ys, target, higher_is_better=not lower_is_better))
    return np.array(out)


def median(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median that is defined with censored (+inf) values: the ceil(n/2)-th order statistic."""
    return np.quantile(values, 0.5, axis=axis, method="inverted_cdf")


def median_ci(values: np.ndarray, n_boot: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    values = np.asarray(values, float)
    if len(values) < 2:
        v = float(median(values))
        return v, v, v
    rng = np.random.default_rng(seed)
    boots = median(values[rng.integers(0, len(values), (n_boot, len(values)))], axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975], method="inverted_cdf")
    return float(median(values)), float(lo), float(hi)


def _safe_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.asarray(a, float) / np.asarray(b, float)
    return np.where(np.isinf(a) & np.isinf(b), np.nan, r)


def ratio_ci(values: np.ndarray, baseline: np.ndarray, n_boot: int = 4000, seed: int = 1
             ) -> tuple[float, float, float]:
    """Ratio of medians (method / baseline) with a bootstrap CI, seeds resampled independently per group."""
    rng = np.random.default_rng(seed)
    point = float(_safe_ratio(median(values), median(baseline)))
    if len(values) < 2 or len(baseline) < 2:
        return point, point, point
    a = median(values[rng.integers(0, len(values), (n_boot, len(values)))], axis=1)
    b = median(baseline[rng.integers(0, len(baseline), (n_boot, len(baseline)))], axis=1)
    r = _safe_ratio(a, b)
    r = r[~np.isnan(r)]
    if not r.size:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(r, [0.025, 0.975], method="inverted_cdf")
    return point, float(lo), float(hi)


def fit_slope(xs: np.ndarray, ys: np.ndarray, fit_from: float) -> float:
    """Least-squares slope of log y on log x over x >= x_max^fit_from (the late part in log-space)."""
    keep = (xs > 0) & (ys > 0) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size < 3:
        return float("nan")
    late = xs >= xs.max() ** fit_from
    if late.sum() < 3:
        return float("nan")
    return float(np.polyfit(np.log(xs[late]), np.log(ys[late]), 1)[0])


def slope_ci(slopes: np.ndarray, n_boot: int = 4000, seed: int = 2) -> tuple[float, float, float]:
    slopes = slopes[np.isfinite(slopes)]
    if slopes.size == 0:
        return float("nan"), float("nan"), float("nan")
    if slopes.size < 2:
        return float(slopes[0]), float(slopes[0]), float(slopes[0])
    rng = np.random.default_rng(seed)
    boots = slopes[rng.integers(0, slopes.size, (n_boot, slopes.size))].mean(1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(slopes.mean()), float(lo), float(hi)


def analyse(runs: Sequence[Run], targets: Sequence[float], x: str, baseline: str, fit_from: float) -> dict:
    """All numbers of the table as a dict: {'targets': [...], 'rows': [...], 'slopes': {...}}."""
    subopt = is_suboptimality(runs)
    y = "suboptimality" if subopt else "return_mean"
    groups = group_runs(runs, "algo")
    hits = {a: {t: samples_to_target(g, x, y, t, subopt) for t in targets} for a, g in groups.items()}
    # budget = the largest final sample count among an algorithm's runs (runs that stopped early diverged and
    # would never reach a target): a censored median means at least half the runs did not reach it by then
    budget = {a: max(float(run_curve(r, x, y)[0].max()) for r in g) for a, g in groups.items()}
    rows = []
    for algo, group in sorted(groups.items()):
        for t in targets:
            vals = hits[algo][t]
            row = {"algo": algo, "target": t, "n": len(vals), "reached": int(np.isfinite(vals).sum()),
                   "budget": budget[algo]}
            row["median"], row["lo"], row["hi"] = median_ci(vals)
            if baseline in hits and algo != baseline:
                row["ratio"], row["ratio_lo"], row["ratio_hi"] = ratio_ci(vals, hits[baseline][t])
                base_median = float(median(hits[baseline][t]))
                # when exactly one median is censored the ratio is only bounded: report the bound
                if math.isfinite(row["median"]) and math.isinf(base_median):
                    row["ratio_bound"] = ("<", row["median"] / budget[baseline])
                elif math.isinf(row["median"]) and math.isfinite(base_median):
                    row["ratio_bound"] = (">", budget[algo] / base_median)
            rows.append(row)
    slopes = {}
    if subopt:
        for algo, group in sorted(groups.items()):
            per_seed = np.array([fit_slope(*run_curve(r, x, y), fit_from) for r in group])
            mean, lo, hi = slope_ci(per_seed)
            p = THEORY_EXPONENT.get(algo)
            slopes[algo] = {"slope": mean, "lo": lo, "hi": hi, "n": int(np.isfinite(per_seed).sum()),
                            "theory_slope": -1.0 / p if p else None, "theory_exponent": p}
    return {"y": y, "x": x, "targets": list(targets), "rows": rows, "slopes": slopes, "baseline": baseline}


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "inf"
    return f"{v:.3g}"


def format_table(result: dict, env: str) -> str:
    unit = X_LABELS[result["x"]]
    what = "suboptimality <=" if result["y"] == "suboptimality" else "return >="
    lines = [f"## {env}: {unit} to reach {what} target (median over seeds, 95% bootstrap CI; "
             f"never reached = censored = inf)", "",
             f"| algo | target | reached | median {unit} | 95% CI | ratio vs {result['baseline']} | 95% CI |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        point = f"{r['ratio_bound'][0]} {_fmt(r['ratio_bound'][1])}" if "ratio_bound" in r else _fmt(r.get("ratio"))
        ratio = f"{point} | [{_fmt(r['ratio_lo'])}, {_fmt(r['ratio_hi'])}]" if "ratio" in r else "- | -"
        lines.append(f"| {r['algo']} | {r['target']:g} | {r['reached']}/{r['n']} | {_fmt(r['median'])} | "
                     f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}] | {ratio} |")
    if result["slopes"]:
        lines += ["", f"Empirical rate: slope of log(suboptimality) vs log({unit}) (late part of each run), "
                      "mean over seeds with 95% bootstrap CI, beside the theory "
                      "(O(eps^-p) trajectories => slope -1/p)", "",
                  "| algo | slope | 95% CI | seeds | theory p | theory slope |", "|---|---|---|---|---|---|"]
        for algo, s in result["slopes"].items():
            lines.append(f"| {algo} | {_fmt(s['slope'])} | [{_fmt(s['lo'])}, {_fmt(s['hi'])}] | {s['n']} | "
                         f"{_fmt(s['theory_exponent'])} | {_fmt(s['theory_slope'])} |")
    return "\n".join(lines)


def plot(runs: Sequence[Run], out: Path, title: str, n_grid: int = 60) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subopt = is_suboptimality(runs)
    y = "suboptimality" if subopt else "return_mean"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=130)
    rng = np.random.default_rng(0)
    for ax, x in zip(axes, ("env_steps", "trajectories")):
        if not all(x in r.eval for r in runs):  # e.g. PPO/BPO runs count env steps, not trajectories
            ax.set_visible(False)
            continue
        for algo, group in sorted(group_runs(runs, "algo").items()):
            curves = [run_curve(r, x, y) for r in group]
            lo_x = max(c[0][c[0] > 0].min() if subopt else c[0].min() for c in curves)
            # common x range of the runs that finished (a longer run's tail is not drawn against held values);
            # a run that diverged stays at its worst value (inf suboptimality / -inf return) up to there,
            # so one early divergence neither cuts the group's curve short nor vanishes from the median
            finished = [c[0].max() for r, c in zip(group, curves) if r.summary.get("status") != "diverged"]
            hi_x = min(finished) if finished else max(c[0].max() for c in curves)
            bad = np.inf if subopt else -np.inf
            curves = [(np.append(cx, hi_x), np.append(cy, bad)) if r.summary.get("status") == "diverged"
                      and cx.max() < hi_x else (cx, cy) for r, (cx, cy) in zip(group, curves)]
            grid = np.geomspace(lo_x, hi_x, n_grid) if subopt else np.linspace(lo_x, hi_x, n_grid)
            if subopt:  # interpolate log y in log x; unstable (inf) points are drawn at a large finite value
                stack = np.stack([np.exp(np.interp(np.log(grid), np.log(np.maximum(cx, 1e-300)),
                                                   np.log(np.clip(cy, 1e-300, 1e12)))) for cx, cy in curves])
                stat = np.median
            else:
                stack = np.stack([np.interp(grid, cx, np.maximum(cy, -1e12)) for cx, cy in curves])
                stat = np.mean
            point = stat(stack, axis=0)
            if len(curves) > 1:
                boots = np.stack([stat(stack[rng.integers(0, len(curves), len(curves))], axis=0)
                                  for _ in range(1000)])
                lo, hi = np.quantile(boots, [0.025, 0.975], axis=0)
                ax.fill_between(grid, lo, hi, alpha=0.2)
            ax.plot(grid, point, label=f"{algo} (n={len(curves)})")
        ax.set_xlabel(X_LABELS[x])
        if subopt:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylabel("suboptimality J(K) - J* (median, 95% CI)")
        else:
            ax.set_ylabel("deterministic eval return (mean, 95% CI)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def run(patterns: Sequence[str], out: str, targets: Sequence[float] | None = None, x: str = "env_steps",
        baseline: str = "vanilla_pg", fit_from: float = 0.5, table: str | None = None) -> dict[str, dict]:
    """Analyse run directories, per environment; returns {env: result} and writes figure(s) and table."""
    if len(patterns) == 1 and is_results_table(patterns[0]):  # the table of analysis.collect
        runs = load_results(patterns[0])
    else:
        runs = load_runs(patterns)
    by_env = group_runs(runs, "env")
    out_path = Path(out)
    results: dict[str, dict] = {}
    texts = []
    for env, env_runs in sorted(by_env.items()):
        env_targets = list(targets) if targets else DEFAULT_TARGETS.get(env)
        if not env_targets:
            raise UserError(f"no default targets for {env}: pass --target VALUE ...")
        result = analyse(env_runs, env_targets, x, baseline, fit_from)
        fig_path = out_path if len(by_env) == 1 else out_path.with_name(f"{out_path.stem}_{env}{out_path.suffix}")
        plot(env_runs, fig_path, f"{env}: sample complexity")
        result["figure"] = str(fig_path)
        results[env] = result
        texts.append(format_table(result, env))
    text = "\n\n".join(texts)
    print(text)
    if table:
        Path(table).parent.mkdir(parents=True, exist_ok=True)
        Path(table).write_text(text + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m analysis.sample_complexity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", help="run directories, folders holding them, or globs; or one "
                                                    "results table from analysis.collect (*.sqlite)")
    parser.add_argument("--target", type=float, nargs="+", default=None,
                        help="targets: suboptimality levels on LQR (reach <= target), returns elsewhere (>=); "
                             f"defaults: {DEFAULT_TARGETS}")
    parser.add_argument("--x", choices=list(X_LABELS), default="env_steps",
                        help="sample unit of the table and the rate fit (both are plotted)")
    parser.add_argument("--baseline", default="vanilla_pg", help="algorithm the ratios are taken against")
    parser.add_argument("--fit-from", type=float, default=0.5,
                        help="rate fit uses samples >= max^FIT_FROM (0.5 = upper half of the run in log-space)")
    parser.add_argument("-o", "--out", required=True, help="figure path (.png); one per env with a suffix if several")
    parser.add_argument("--table", default=None, help="also write the table (markdown) to this file")
    args = parser.parse_args(argv)
    if not 0 <= args.fit_from < 1:
        parser.error(f"--fit-from must be in [0, 1), got {args.fit_from}")
    return run(args.run_dirs, args.out, args.target, args.x, args.baseline, args.fit_from, args.table)


if __name__ == "__main__":
    sys.exit(run_cli(main))
