"""Compare algorithms across environments and seeds, the rliable way (Agarwal et al., NeurIPS 2021).

    python -m analysis.collect runs/sweeps/mujoco -o results.sqlite
    python -m analysis.compare --results results.sqlite --metric eval_return --normalize random,reference -o cmp/

Each run's score is its final value of --metric (eval_return: the last deterministic evaluation's mean
return; train_return: the last training-return mean; headline: summary.json's headline value). With
--normalize random,reference a score becomes (score - random) / (reference - random) per environment, using
REFERENCE_SCORES below (or --reference FILE.json), so 0 = a uniform random policy and 1 = the reference.

Reported per algorithm, with 95% stratified-bootstrap confidence intervals (runs resampled with replacement
within each environment, independently per algorithm; percentile intervals):
  * IQM (interquartile mean of all run scores pooled over environments), median and mean (of the per-env
    mean scores), optimality gap (gamma - mean(min(score, gamma)), gamma = 1 when normalized);
  * performance profiles: the fraction of runs with score > tau, for a grid of tau;
  * probability of improvement P(X > Y) for every pair of algorithms: per environment the Mann-Whitney U
    statistic / (n_x n_y) (ties count 1/2), averaged over the environments both ran;
  * sample-efficiency curves: IQM score against environment steps (eval curves interpolated onto a common
    grid of env steps).
Definitions follow rliable's `metrics.py`/`library.py` (tested against hand computations); the bootstrap is
implemented with numpy so the toolkit does not depend on rliable's pandas/seaborn/arch stack.

Outputs in --out: compare.md (tables), aggregates / performance_profile / probability_of_improvement /
sample_efficiency as PNG and PDF.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from analysis.runs import Run
from classic_rl import UserError
from classic_rl.config import run_cli

# Per-environment (random, reference) returns for --normalize random,reference.
# MuJoCo: D4RL's REF_MIN_SCORE / REF_MAX_SCORE (Fu et al. 2020, "D4RL: Datasets for Deep Data-Driven RL",
# d4rl/infos.py): random = uniform random policy, reference = the SAC "expert" policy, both on the -v2 envs
# (the v5 envs keep the same reward terms and 1000-step limit, so the scale carries over; it is a yardstick,
# not a ceiling). CartPole-v1: random = 22.7, measured here (uniform random actions, 200 episodes, seeds
# 0-199, s.e. 0.8); reference = 500, the maximum return of the 500-step episode.
REFERENCE_SCORES: dict[str, dict[str, Any]] = {
    "Hopper": {"random": -20.272305, "reference": 3234.3, "source": "D4RL REF_MIN/MAX_SCORE (v2, SAC expert)"},
    "Walker2d": {"random": 1.629008, "reference": 4592.3, "source": "D4RL REF_MIN/MAX_SCORE (v2, SAC expert)"},
    "HalfCheetah": {"random": -280.178953, "reference": 12135.0,
                    "source": "D4RL REF_MIN/MAX_SCORE (v2, SAC expert)"},
    "Ant": {"random": -325.6, "reference": 3879.7, "source": "D4RL REF_MIN/MAX_SCORE (v2, SAC expert)"},
    "CartPole": {"random": 22.7, "reference": 500.0, "source": "random measured here; 500 = max return"},
}
METRICS = {"eval_return": ("evals", "return_mean"), "train_return": ("train", "train_return_mean"),
           "headline": (None, None)}


# ------------------------------------------------------------------------------------------ statistics
def aggregate_iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Interquartile mean (25% trimmed mean) of all scores (rliable: trim_mean(scores, 0.25, axis=None))."""
    return sps.trim_mean(scores, proportiontocut=0.25, axis=axis)


def aggregate_median(task_scores: Sequence[np.ndarray]) -> float:
    """Median over tasks of the per-task mean score."""
    return float(np.median([np.mean(s) for s in task_scores]))


def aggregate_mean(task_scores: Sequence[np.ndarray]) -> float:
    """Mean over tasks of the per-task mean score."""
    return float(np.mean([np.mean(s) for s in task_scores]))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """gamma - mean(min(score, gamma)) over all runs and tasks: how far below gamma, scores above it clipped."""
    return float(gamma - np.mean(np.minimum(scores, gamma)))


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """P(X > Y) averaged over tasks; per task the Mann-Whitney U / (n_x n_y), ties counting 1/2."""
    probs = []
    for xt, yt in zip(x, y):
        xt, yt = np.asarray(xt, float)[:, None], np.asarray(yt, float)[None, :]
        probs.append(float(np.mean((xt > yt) + 0.5 * (xt == yt))))
    return float(np.mean(probs))


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of run scores strictly above each tau (rliable's run-score distribution)."""
    return np.mean(np.asarray(scores)[:, None] > np.asarray(taus)[None, :], axis=0)


def _resample(task_scores: Sequence[np.ndarray], reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified bootstrap: per task, `reps` resamples of its runs with replacement -> [reps, n_task, ...]."""
    out = []
    for s in task_scores:
        s = np.asarray(s, float)
        out.append(s[rng.integers(0, len(s), size=(reps, len(s)))])
    return out


def _ci(boots: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - conf) / 2
    return np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)


def interval_estimates(task_scores: Sequence[np.ndarray], reps: int = 2000, conf: float = 0.95, seed: int = 0,
                       gamma: float = 1.0) -> dict[str, tuple[float, float, float]]:
    """IQM, median, mean and optimality gap: (point, low, high) with stratified-bootstrap percentile CIs."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([np.asarray(s, float) for s in task_scores])
    boots = _resample(task_scores, reps, rng)  # list of [reps, n_t]
    pooled_b = np.concatenate(boots, axis=1)
    task_means_b = np.stack([b.mean(axis=1) for b in boots], axis=1)  # [reps, n_tasks]
    values = {
        "IQM": (aggregate_iqm(pooled), aggregate_iqm(pooled_b, axis=1)),
        "median": (aggregate_median(task_scores), np.median(task_means_b, axis=1)),
        "mean": (aggregate_mean(task_scores), task_means_b.mean(axis=1)),
        "optimality gap": (optimality_gap(pooled, gamma), gamma - np.minimum(pooled_b, gamma).mean(axis=1)),
    }
    out = {}
    for name, (point, b) in values.items():
        lo, hi = _ci(b, conf)
        out[name] = (float(point), float(lo), float(hi))
    return out


def poi_interval(x: Sequence[np.ndarray], y: Sequence[np.ndarray], reps: int = 2000, conf: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Probability of improvement with a CI from resampling X's and Y's runs independently within each task."""
    rng = np.random.default_rng(seed)
    xb, yb = _resample(x, reps, rng), _resample(y, reps, rng)
    per_task = []
    for xt, yt in zip(xb, yb):  # [reps, nx], [reps, ny]
        a, b = xt[:, :, None], yt[:, None, :]
        per_task.append(np.mean((a > b) + 0.5 * (a == b), axis=(1, 2)))
    boots = np.mean(np.stack(per_task, axis=1), axis=1)
    lo, hi = _ci(boots, conf)
    return probability_of_improvement(x, y), float(lo), float(hi)


def profile_interval(task_scores: Sequence[np.ndarray], taus: np.ndarray, reps: int = 1000, conf: float = 0.95,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pooled_b = np.concatenate(_resample(task_scores, reps, rng), axis=1)  # [reps, N]
    boots = np.mean(pooled_b[:, :, None] > taus[None, None, :], axis=1)
    lo, hi = _ci(boots, conf)
    return performance_profile(np.concatenate(task_scores), taus), lo, hi


def curve_interval(task_curves: Sequence[np.ndarray], reps: int = 1000, conf: float = 0.95, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs at every grid point; task_curves: per task [n_runs, n_grid]."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate(task_curves, axis=0)
    boots_list = []
    for c in task_curves:
        idx = rng.integers(0, c.shape[0], size=(reps, c.shape[0]))
        boots_list.append(c[idx])  # [reps, n_t, G]
    pooled_b = np.concatenate(boots_list, axis=1)
    boots = aggregate_iqm(pooled_b, axis=1)
    lo, hi = _ci(boots, conf)
    return aggregate_iqm(pooled, axis=0), lo, hi


# ------------------------------------------------------------------------------------------ scores
def base_env(name: str) -> str:
    """'Hopper-v5' -> 'Hopper'; 'CartPole-v1' -> 'CartPole'."""
    return re.sub(r"-v\d+$", "", str(name))


def load_references(path: str | None) -> dict[str, dict[str, Any]]:
    refs = {k: dict(v) for k, v in REFERENCE_SCORES.items()}
    if path:
        try:
            extra = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"--reference: cannot read {path}: {err}") from err
        for env, v in extra.items():
            if not isinstance(v, dict) or "random" not in v or "reference" not in v:
                raise UserError(f"--reference: {env} needs {{\"random\": x, \"reference\": y}}")
            refs[base_env(env)] = v
    return refs


def run_curve(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray]:
    table, column = METRICS[metric]
    cols = run.eval if table == "evals" else run.metrics
    if column not in cols or "env_steps" not in cols:
        return np.array([]), np.array([])
    x, y = np.asarray(cols["env_steps"], float), np.asarray(cols[column], float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def final_score(run: Run, metric: str) -> float:
    if metric == "headline":
        v = run.summary.get("headline_value")
        return float(v) if v is not None else float("nan")
    _, y = run_curve(run, metric)
    return float(y[-1]) if y.size else float("nan")


def normalizer(normalize: str, refs: dict[str, dict[str, Any]], envs: Sequence[str]):
    if normalize in ("none", ""):
        return lambda env, v: v
    if normalize != "random,reference":
        raise UserError(f"--normalize: use none or random,reference, got {normalize!r}")
    missing = sorted({base_env(e) for e in envs} - set(refs))
    if missing:
        raise UserError(f"--normalize random,reference: no reference scores for {missing}; add them with "
                        "--reference FILE.json ({\"Env\": {\"random\": r, \"reference\": R}})")

    def norm(env: str, v):
        r = refs[base_env(env)]
        return (np.asarray(v, float) - r["random"]) / (r["reference"] - r["random"])
    return norm


def score_table(runs: Sequence[Run], metric: str, group_by: str = "algo"
                ) -> tuple[dict[str, dict[str, list[Run]]], list[str]]:
    """{group: {env: [runs]}} and the sorted env list."""
    table: dict[str, dict[str, list[Run]]] = {}
    for r in runs:
        key = r.algo if group_by == "algo" else f"{r.algo}[{group_by}={r.config.get(group_by)}]"
        table.setdefault(key, {}).setdefault(r.env, []).append(r)
    envs = sorted({r.env for r in runs})
    return table, envs


# ------------------------------------------------------------------------------------------ report
def _f(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def analyse(runs: Sequence[Run], metric: str = "eval_return", normalize: str = "none",
            reference: str | None = None, reps: int = 2000, conf: float = 0.95, group_by: str = "algo",
            n_grid: int = 40, seed: int = 0) -> dict[str, Any]:
    refs = load_references(reference)
    table, envs = score_table(runs, metric, group_by)
    norm = normalizer(normalize, refs, envs)
    algos = sorted(table)
    common = [e for e in envs if all(e in table[a] for a in algos)]
    if not common:
        raise UserError(f"no environment was run by every algorithm ({ {a: sorted(table[a]) for a in algos} })")
    dropped = sorted(set(envs) - set(common))
    scores: dict[str, list[np.ndarray]] = {}
    raw: dict[str, dict[str, np.ndarray]] = {}
    diverged: dict[str, int] = {}
    for a in algos:
        per_env = []
        raw[a] = {}
        for e in common:
            vals = np.array([final_score(r, metric) for r in table[a][e]])
            vals = vals[np.isfinite(vals)]
            if not vals.size:
                raise UserError(f"{a} on {e}: no run has a finite {metric}")
            raw[a][e] = vals
            per_env.append(np.asarray(norm(e, vals), float))
        scores[a] = per_env
        diverged[a] = sum(r.summary.get("status") == "diverged" for e in common for r in table[a][e])
    gamma = 1.0 if normalize != "none" else float(max(np.concatenate(s).max() for s in scores.values()))
    aggregates = {a: interval_estimates(scores[a], reps, conf, seed, gamma) for a in algos}
    poi = {(x, y): poi_interval(scores[x], scores[y], reps, conf, seed)
           for x, y in itertools.permutations(algos, 2)}
    # sample-efficiency curves on a common grid of env steps
    curves: dict[str, Any] = {}
    if metric != "headline":
        all_runs = [r for a in algos for e in common for r in table[a][e]]
        ends = [run_curve(r, metric)[0] for r in all_runs if r.summary.get("status") != "diverged"]
        ends = [x for x in ends if x.size >= 2]
        if ends:
            hi = min(x.max() for x in ends)
            lo = max(x.min() for x in ends)
            grid = np.linspace(lo, hi, n_grid) if hi > lo else np.array([hi])
            for a in algos:
                task_curves = []
                for e in common:
                    rows = []
                    for r in table[a][e]:
                        x, y = run_curve(r, metric)
                        if x.size >= 2 and x.max() >= hi:
                            rows.append(np.asarray(norm(e, np.interp(grid, x, y)), float))
                    if rows:
                        task_curves.append(np.stack(rows))
                if len(task_curves) == len(common):
                    curves[a] = (grid, *curve_interval(task_curves, min(reps, 1000), conf, seed))
    all_scores = np.concatenate([np.concatenate(s) for s in scores.values()])
    lo_t, hi_t = float(min(all_scores.min(), 0.0)), float(max(all_scores.max(), gamma))
    taus = np.linspace(lo_t, hi_t, 60)
    profiles = {a: profile_interval(scores[a], taus, min(reps, 1000), conf, seed) for a in algos}
    return {"metric": metric, "normalize": normalize, "algos": algos, "envs": common, "dropped_envs": dropped,
            "scores": scores, "raw": raw, "aggregates": aggregates, "poi": poi, "curves": curves,
            "taus": taus, "profiles": profiles, "gamma": gamma, "conf": conf, "reps": reps,
            "diverged": diverged, "refs": {e: refs.get(base_env(e)) for e in common}}


def format_markdown(res: dict[str, Any]) -> str:
    pct = int(round(res["conf"] * 100))
    unit = "normalized score ((x - random) / (reference - random))" if res["normalize"] != "none" else \
        f"raw {res['metric']}"
    lines = [f"# Algorithm comparison: {res['metric']}, {unit}", "",
             f"Environments: {', '.join(res['envs'])}"
             + (f" (left out, not run by every algorithm: {', '.join(res['dropped_envs'])})"
                if res["dropped_envs"] else ""),
             f"{pct}% stratified-bootstrap percentile CIs, {res['reps']} resamples (runs resampled within each "
             "environment). IQM over all runs; median and mean over the per-env mean scores; optimality gap "
             f"at gamma = {_f(res['gamma'])}.", "",
             "| algorithm | runs scored | diverged | IQM | median | mean | optimality gap |", "|---|---|---|---|---|---|---|"]
    for a in res["algos"]:
        agg = res["aggregates"][a]
        n = sum(len(s) for s in res["scores"][a])
        cells = [f"{_f(p)} [{_f(lo)}, {_f(hi)}]" for p, lo, hi in
                 (agg["IQM"], agg["median"], agg["mean"], agg["optimality gap"])]
        lines.append(f"| {a} | {n} | {res['diverged'][a]} | " + " | ".join(cells) + " |")
    lines += ["", f"Per environment: final raw {res['metric']}, mean over seeds [min, max] (n)", "",
              "| environment | " + " | ".join(res["algos"]) + " | random | reference |",
              "|---|" + "---|" * (len(res["algos"]) + 2)]
    for e in res["envs"]:
        ref = res["refs"].get(e) or {}
        cells = [f"{np.mean(res['raw'][a][e]):.1f} [{np.min(res['raw'][a][e]):.1f}, "
                 f"{np.max(res['raw'][a][e]):.1f}] ({len(res['raw'][a][e])})" for a in res["algos"]]
        lines.append(f"| {e} | " + " | ".join(cells) + f" | {_f(ref.get('random'), 5)} | "
                     f"{_f(ref.get('reference'), 5)} |")
    if res["poi"]:
        lines += ["", f"Probability of improvement P(X > Y), averaged over environments ({pct}% CI)", "",
                  "| X | Y | P(X > Y) | CI |", "|---|---|---|---|"]
        for (x, y), (p, lo, hi) in res["poi"].items():
            lines.append(f"| {x} | {y} | {p:.3f} | [{lo:.3f}, {hi:.3f}] |")
    if res["curves"]:
        lines += ["", "Sample efficiency: IQM score at env steps (CI)", "",
                  "| algorithm | " + " | ".join(f"{int(s):,}" for s in next(iter(res["curves"].values()))[0][
                      np.linspace(0, len(next(iter(res["curves"].values()))[0]) - 1, 5).astype(int)]) + " |",
                  "|---|" + "---|" * 5]
        for a, (grid, point, lo, hi) in res["curves"].items():
            idx = np.linspace(0, len(grid) - 1, 5).astype(int)
            lines.append(f"| {a} | " + " | ".join(f"{_f(point[i])} [{_f(lo[i])}, {_f(hi[i])}]" for i in idx) + " |")
    if res["normalize"] != "none":
        lines += ["", "Reference returns: " + "; ".join(
            f"{e}: random {_f(r['random'], 6)}, reference {_f(r['reference'], 6)} ({r.get('source', '')})"
            for e, r in res["refs"].items() if r)]
    return "\n".join(lines) + "\n"


def _save(fig, out: Path, stem: str) -> list[str]:
    paths = []
    for ext in ("png", "pdf"):
        p = out / f"{stem}.{ext}"
        fig.savefig(p, bbox_inches="tight")
        paths.append(str(p))
    return paths


def plot_all(res: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    algos = res["algos"]
    colors = {a: plt.cm.tab10(i % 10) for i, a in enumerate(algos)}
    label = "normalized score" if res["normalize"] != "none" else res["metric"]
    paths: list[str] = []
    names = ["median", "IQM", "mean", "optimality gap"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 0.6 + 0.45 * len(algos) + 1.0), dpi=130)
    for ax, name in zip(axes, names):
        for i, a in enumerate(algos):
            p, lo, hi = res["aggregates"][a][name]
            ax.barh(i, hi - lo, left=lo, height=0.6, color=colors[a], alpha=0.75)
            ax.vlines(p, i - 0.3, i + 0.3, color="k", lw=1.5)
        ax.set_yticks(range(len(algos)), algos if ax is axes[0] else [""] * len(algos))
        ax.set_title(name)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{res['metric']}: aggregate over {', '.join(res['envs'])} "
                 f"({int(res['conf'] * 100)}% stratified bootstrap CIs)", fontsize=9)
    fig.tight_layout()
    paths += _save(fig, out, "aggregates")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4), dpi=130)
    for a in algos:
        p, lo, hi = res["profiles"][a]
        ax.plot(res["taus"], p, color=colors[a], label=a)
        ax.fill_between(res["taus"], lo, hi, color=colors[a], alpha=0.2)
    ax.set_xlabel(f"{label} threshold tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title("performance profile")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths += _save(fig, out, "performance_profile")
    plt.close(fig)

    if res["poi"]:
        pairs = list(res["poi"].items())
        fig, ax = plt.subplots(figsize=(6, 0.8 + 0.45 * len(pairs)), dpi=130)
        for i, ((x, y), (p, lo, hi)) in enumerate(pairs):
            ax.barh(i, hi - lo, left=lo, height=0.6, color=colors[x], alpha=0.75)
            ax.vlines(p, i - 0.3, i + 0.3, color="k", lw=1.5)
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set_yticks(range(len(pairs)), [f"P({x} > {y})" for (x, y), _ in pairs])
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of improvement")
        fig.tight_layout()
        paths += _save(fig, out, "probability_of_improvement")
        plt.close(fig)

    if res["curves"]:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=130)
        for a, (grid, p, lo, hi) in res["curves"].items():
            ax.plot(grid, p, color=colors[a], label=a)
            ax.fill_between(grid, lo, hi, color=colors[a], alpha=0.2)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"IQM {label}")
        ax.set_title("sample efficiency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths += _save(fig, out, "sample_efficiency")
        plt.close(fig)
    return paths


def run(results: str, out: str, metric: str = "eval_return", normalize: str = "none", reference: str | None = None,
        reps: int = 2000, conf: float = 0.95, group_by: str = "algo", where: str | None = None,
        plots: bool = True) -> dict[str, Any]:
    from analysis.collect import load_results

    runs = load_results(results, where)
    res = analyse(runs, metric, normalize, reference, reps, conf, group_by)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = format_markdown(res)
    (out_dir / "compare.md").write_text(text)
    res["figures"] = plot_all(res, out_dir) if plots else []
    res["table"] = str(out_dir / "compare.md")
    print(text)
    print(f"table: {out_dir / 'compare.md'}")
    if res["figures"]:
        print("figures: " + " ".join(p for p in res["figures"] if p.endswith(".png")) + " (+ .pdf)")
    return res


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="results table from analysis.collect (*.sqlite)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="eval_return")
    parser.add_argument("--normalize", default="none", help="none, or random,reference (per-env normalization)")
    parser.add_argument("--reference", default=None, help="JSON {env: {random: r, reference: R}} adding to or "
                                                          "replacing the built-in reference returns")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--conf", type=float, default=0.95, help="confidence level")
    parser.add_argument("--group-by", default="algo", help="algo, or a config field to split algorithms by")
    parser.add_argument("--where", default=None, help="SQL filter on the runs table, e.g. \"env_steps >= 1e6\"")
    parser.add_argument("-o", "--out", default="compare", help="output folder (compare.md and figures)")
    args = parser.parse_args(argv)
    if args.reps < 100:
        parser.error("--reps must be >= 100")
    if not 0.5 < args.conf < 1:
        parser.error("--conf must be in (0.5, 1)")
    return run(args.results, args.out, args.metric, args.normalize, args.reference, args.reps, args.conf,
               args.group_by, args.where)


if __name__ == "__main__":
    sys.exit(run_cli(main))
