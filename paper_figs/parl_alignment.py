"""PARL / A-PARL alignment figures: the exact chain testbed and the PEBBLE-style deep variant.

Exact testbed (envs/tabular/parl_chain.py, in-process, float64):
  1. hypergradient check: cosine and relative error against central finite differences of the exact F(nu)
     for the A-PARL hypergradient (exact, CG and one-step unrolled corrections) and the naive (PEBBLE-style)
     gradient, under utility and preference feedback, at a few random nu;
  2. utility feedback (U = true return): true return vs outer iterations, A-PARL (w = 1) vs naive (w = 0);
  3. preference feedback (8 fresh pairs per iteration, scripted teacher, query buffer): true return vs queries
     for w in {0, 0.1, 1}, mean and 95% CI over seeds, plus exact ascent on F (w = 0 vs 1); the queries each
     method needs to reach 90% / 95% of the best achievable return (the paper's "up to 63% fewer samples").
  The sampled runs use the closed-form ("exact") correction, which equals the CG solve to ~1e-5 (tested in
  tests/test_parl.py) and is ~10x faster; `--correction cg` reruns them with CG.
Deep (python -m algos.parl runs into <run_dir>/parl/<env>/): A-PARL (w = --deep-weight), PEBBLE-style (w = 0) and
  oracle SAC; true evaluation return vs env steps and vs queries, mean and 95% CI over seeds.

    python -m paper_figs.parl_alignment --scale smoke          # ~1-3 min on 2 cores: the pipeline
    python -m paper_figs.parl_alignment --scale small --parts exact     # exact testbed, 10 seeds (~5 min)
    python -m paper_figs.parl_alignment --scale small --parts deep      # Walker2d-v5, 3 methods x 3 seeds x 30k
                                                                        # steps (about an hour per run on 2 cores)
Outputs: <out>/parl_alignment-<scale>/ (tables as markdown, figures as png, raw curves as json).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from classic_rl.config import parse_config, require, run_cli

SCALES = {
    "smoke": dict(seeds=2, iters=40, util_iters=40, fd_points=1, deep_seeds=1, deep_steps=3000,
                  deep_flags=["--start-steps", "500", "--num-interact", "1000", "--segment", "20",
                              "--queries-per-session", "5", "--max-feedback", "20", "--reward-updates", "5",
                              "--hidden-sizes", "32", "32", "--reward-hidden", "32", "--batch-size", "64",
                              "--eval-every", "1000", "--eval-episodes", "2", "--eval-max-steps", "200"]),
    # small deep: sized to about an hour of one core on a 2-core machine (30k env steps, 64-wide networks,
    # 120 queries); the paper's scale needs a GPU or a cluster
    "small": dict(seeds=10, iters=150, util_iters=150, fd_points=3, deep_seeds=3, deep_steps=30_000,
                  deep_flags=["--start-steps", "2000", "--num-interact", "5000", "--queries-per-session", "20",
                              "--max-feedback", "120", "--hidden-sizes", "64", "64", "--reward-hidden", "64", "64",
                              "--batch-size", "128", "--eval-every", "2500", "--eval-episodes", "5"]),
    "paper": dict(seeds=30, iters=300, util_iters=300, fd_points=5, deep_seeds=5, deep_steps=1_000_000,
                  deep_flags=["--max-feedback", "1000"]),
}
QUERY_MARKS = (80, 400, 800, 1200, 2400)


@dataclasses.dataclass
class FigConfig:
    """PARL alignment figures at a chosen scale."""

    scale: Literal["smoke", "small", "paper"] = "smoke"
    """smoke (pipeline check), small (exact: 10 seeds x 150 iterations; deep: 3 seeds x 30k steps), paper"""
    parts: list[str] = dataclasses.field(default_factory=lambda: ["exact", "deep"])
    """which parts to run: exact deep"""
    correction: Literal["exact", "cg", "unrolled"] = "exact"
    """correction of the sampled exact-testbed runs (exact = the CG solve's limit, fast)"""
    deep_env: str = "Walker2d"
    """MuJoCo env of the deep part"""
    deep_weight: float = 0.1
    """correction weight w of A-PARL in the deep part"""
    first_seed: int = 1000
    """seeds are first_seed, first_seed + 1, ..."""
    run_dir: str = "runs"
    """root of the deep run directories (sweep slots under <run_dir>/parl_alignment/<scale>/)"""
    workers: int = 1
    """deep runs at a time (one CPU each)"""
    out: str = "paper_figs/out"
    """folder for figures and tables"""

    def validate(self) -> None:
        bad = [p for p in self.parts if p not in ("exact", "deep")]
        require(not bad, f"--parts: unknown {bad}; choose from exact deep")


def ci95(x: np.ndarray) -> tuple[float, float]:
    """mean and half-width of the 95% t-interval over the first axis."""
    x = np.asarray(x, float)
    n = len(x)
    if n < 2:
        return float(x.mean()), float("nan")
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(n, 1.96 + 2.5 / n)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(n))


# ====================================================================== exact testbed
def hypergradient_check(points: int) -> list[dict]:
    from algos.parl import cosine, implicit_correction
    from envs.tabular.parl_chain import BilevelTestbed, chain_toy

    rows = []
    for feedback in ("utility", "preference"):
        tb = BilevelTestbed(chain_toy(), 0.3, feedback)
        for k in range(points):
            nu = 0.5 * torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
            fd = tb.finite_difference_gradient(nu)
            h = tb.exact_hypergradient(nu)
            logpi = tb.soft_value_iteration(nu)
            v = tb.score_vector(logpi, torch.arange(tb.n_traj), tb.exact_trajectory_weights(nu, logpi))
            cands = {"A-PARL (exact)": h["total"], "naive (direct term only)": h["direct"]}
            for method, kw in (("cg", dict(cg_iters=20, damping=1e-9)), ("unrolled", dict(unroll_lr=1.0))):
                g2, _ = implicit_correction(tb, logpi, nu, v, method, **kw)
                cands[f"A-PARL ({method})"] = h["direct"] + g2
            for name, g in cands.items():
                rows.append(dict(feedback=feedback, point=k, gradient=name, cosine=cosine(g, fd),
                                 rel_error=float((g - fd).norm() / fd.norm())))
    return rows


def tabular_curve(feedback: str, w: float, estimator: str, iters: int, seed: int, correction: str) -> dict:
    """A-PARL on the chain (the loop of algos.parl.train_tabular, without a run directory)."""
    from algos.parl import ParlConfig, TabularLoop, tabular_direction
    from envs.tabular.parl_chain import BilevelTestbed, chain_toy

    cfg = ParlConfig(env="ChainToy", feedback=feedback, estimator=estimator, correction=correction,
                     correction_weight=w, seed=seed)
    tb = _TESTBEDS.setdefault(feedback, BilevelTestbed(chain_toy(), cfg.tau_ent, feedback))
    loop = TabularLoop(nu=torch.zeros(tb.S, tb.A, dtype=torch.float64), queries=torch.zeros(0, 2, dtype=torch.long))
    rng = torch.Generator().manual_seed(seed)
    ret = [float(tb.true_return(tb.soft_value_iteration(loop.nu)))]
    obj = [float(tb.objective(loop.nu))]
    queries = [0]
    for _ in range(iters):
        g1, g2, _ = tabular_direction(tb, loop.nu, cfg, rng, loop)
        loop.nu = loop.nu + cfg.outer_lr * (g1 + w * g2)
        with torch.no_grad():
            ret.append(float(tb.true_return(tb.soft_value_iteration(loop.nu))))
            if estimator == "exact":
                obj.append(float(tb.objective(loop.nu)))
        queries.append(loop.n_queries)
    return {"true_return": ret, "objective": obj, "queries": queries}


_TESTBEDS: dict = {}


def queries_to_reach(curve: dict, level: float) -> float:
    for q, r in zip(curve["queries"], curve["true_return"]):
        if r >= level:
            return q
    return math.inf


def run_exact(cfg: FigConfig, sc: dict, out: Path, log) -> dict:
    import matplotlib.pyplot as plt
    from envs.tabular.parl_chain import BilevelTestbed, chain_toy

    res: dict = {}
    t0 = time.time()
    res["hypergradient_check"] = hypergradient_check(sc["fd_points"])
    tb = BilevelTestbed(chain_toy(), 0.3, "utility")
    best = tb.best_return
    soft_true = float(tb.true_return(tb.soft_value_iteration(tb.r_true)))
    res["best_return"], res["soft_optimal_true_return"] = best, soft_true
    seeds = [cfg.first_seed + i for i in range(sc["seeds"])]
    # utility feedback
    util = {}
    for name, w, est in (("A-PARL exact (w=1)", 1.0, "exact"), ("naive exact (w=0)", 0.0, "exact")):
        util[name] = [tabular_curve("utility", w, est, sc["util_iters"], seeds[0], cfg.correction)]
    for name, w in (("A-PARL 8 traj/it (w=1)", 1.0), ("naive 8 traj/it (w=0)", 0.0)):
        util[name] = [tabular_curve("utility", w, "sampled", sc["util_iters"], s, cfg.correction) for s in seeds]
    res["utility"] = util
    log(f"exact testbed: utility curves done ({time.time() - t0:.0f} s)")
    # preference feedback
    pref = {}
    t1 = time.time()
    n_iter = 0
    for w in (0.0, 0.1, 1.0):
        pref[f"w={w:g}"] = [tabular_curve("preference", w, "sampled", sc["iters"], s, cfg.correction) for s in seeds]
        n_iter += sc["iters"] * len(seeds)
    res["outer_iterations_per_s"] = n_iter / (time.time() - t1)
    for w in (0.0, 1.0):
        pref[f"exact F, w={w:g}"] = [tabular_curve("preference", w, "exact", sc["iters"], seeds[0], cfg.correction)]
    res["preference"] = pref
    log(f"exact testbed: preference curves done ({time.time() - t1:.0f} s, "
        f"{res['outer_iterations_per_s']:.1f} sampled outer iterations/s)")

    # ---- tables
    lines = ["# PARL exact chain testbed", "",
             f"best achievable true return {best:.3f}; soft-optimal policy for the true reward (tau 0.3): "
             f"{soft_true:.3f}; seeds {len(seeds)}; correction of sampled runs: {cfg.correction}", "",
             "## Hypergradient vs central finite differences", "",
             "| feedback | gradient | cosine (min over points) | relative error (max) |", "|---|---|---|---|"]
    for feedback in ("utility", "preference"):
        rows = [r for r in res["hypergradient_check"] if r["feedback"] == feedback]
        for name in dict.fromkeys(r["gradient"] for r in rows):
            sel = [r for r in rows if r["gradient"] == name]
            lines.append(f"| {feedback} | {name} | {min(r['cosine'] for r in sel):.6f} | "
                         f"{max(r['rel_error'] for r in sel):.2e} |")
    lines += ["", "## Utility feedback: true return vs outer iterations", "",
              "| method | it 0 | it 10 | it 50 | it 100 | last | last / best |", "|---|---|---|---|---|---|---|"]
    for name, curves in util.items():
        R = np.array([c["true_return"] for c in curves])
        cells = []
        for it in (0, 10, 50, 100, R.shape[1] - 1):
            if it < R.shape[1]:
                m, h = ci95(R[:, it])
                cells.append(f"{m:.3f}" + (f" ± {h:.3f}" if not math.isnan(h) else ""))
            else:
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {R[:, -1].mean() / best:.3f} |")
    lines += ["", "## Preference feedback: true return vs queries (mean ± 95% CI)", "",
              "| method | " + " | ".join(f"{q} q" for q in QUERY_MARKS) + " |", "|---" * (len(QUERY_MARKS) + 1) + "|"]
    for name, curves in pref.items():
        if name.startswith("exact"):
            continue
        cells = []
        for q in QUERY_MARKS:
            vals = [c["true_return"][c["queries"].index(q)] for c in curves if q in c["queries"]]
            if vals:
                m, h = ci95(np.array(vals))
                cells.append(f"{m:.3f}" + (f" ± {h:.3f}" if not math.isnan(h) else ""))
            else:
                cells.append("-")
        label = "PEBBLE-style (w=0)" if name == "w=0" else f"A-PARL {name}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Exact ascent on F (all 729x729 pairs, no sampling): true return and on-policy preference "
              "log-likelihood F after the last iteration:", ""]
    for name, curves in pref.items():
        if name.startswith("exact"):
            c = curves[0]
            lines.append(f"* {name}: true return {c['true_return'][0]:.3f} -> {c['true_return'][-1]:.3f}, "
                         f"F {c['objective'][0]:.4f} -> {c['objective'][-1]:.4f}")
    lines += ["", "## Queries to reach a level of the best return (\"up to 63% fewer samples\")", "",
              "| method | level | runs reaching it | median queries (reached runs) | mean queries, unreached = budget |",
              "|---|---|---|---|---|"]
    reach = {}
    for level in (0.9, 0.95):
        for name, curves in pref.items():
            if name.startswith("exact"):
                continue
            qs = [queries_to_reach(c, level * best) for c in curves]
            budget = curves[0]["queries"][-1]
            hit = [q for q in qs if math.isfinite(q)]
            reach[(name, level)] = (len(hit), len(qs), float(np.median(hit)) if hit else math.inf,
                                    float(np.mean([min(q, budget) for q in qs])))
            lines.append(f"| {name} | {level:.0%} | {len(hit)}/{len(qs)} | "
                         f"{(f'{np.median(hit):.0f}' if hit else '-')} | {reach[(name, level)][3]:.0f} |")
    res["queries_to_reach"] = {f"{k[0]}@{k[1]}": v for k, v in reach.items()}
    base = reach.get(("w=0", 0.9))
    for name in ("w=0.1", "w=1"):
        other = reach.get((name, 0.9))
        if base and other and base[3] > 0:
            lines.append(f"\nA-PARL {name} vs PEBBLE-style (w=0), mean queries to 90% (unreached = budget): "
                         f"{other[3]:.0f} vs {base[3]:.0f} ({100 * (1 - other[3] / base[3]):+.0f}% fewer)")
    lines.append(f"\nspeed: {res['outer_iterations_per_s']:.1f} sampled outer iterations/s "
                 f"(correction {cfg.correction}, 8 pairs, one torch thread)")
    (out / "exact.md").write_text("\n".join(lines) + "\n")
    (out / "exact.json").write_text(json.dumps(res, default=lambda o: None))

    # ---- figure
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for name, curves in util.items():
        R = np.array([c["true_return"] for c in curves])
        ax.plot(R.mean(0), label=name)
    ax.axhline(best, ls=":", c="k", label="best trajectory")
    ax.axhline(soft_true, ls="--", c="gray", label="soft-optimal for r*")
    ax.set(xlabel="outer iteration", ylabel="true return", title="utility feedback")
    ax.legend(fontsize=7)
    ax = axes[1]
    for name, curves in pref.items():
        if name.startswith("exact"):
            continue
        R = np.array([c["true_return"] for c in curves])
        q = np.array(curves[0]["queries"])
        m = R.mean(0)
        h = np.array([ci95(R[:, j])[1] for j in range(R.shape[1])]) if len(curves) > 1 else np.zeros_like(m)
        ax.plot(q, m, label=f"A-PARL {name}" if name != "w=0" else "PEBBLE-style (w=0)")
        ax.fill_between(q, m - h, m + h, alpha=0.2)
    ax.axhline(best, ls=":", c="k")
    ax.set(xlabel="queries", ylabel="true return", title="preference feedback (8 pairs / iteration)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "exact.png", dpi=120)
    plt.close(fig)
    return res


# ====================================================================== deep
def run_deep(cfg: FigConfig, sc: dict, out: Path, log) -> dict:
    import csv

    import matplotlib.pyplot as plt

    from classic_rl.sweep import RunSpec, run_sweep

    methods = {f"A-PARL (w={cfg.deep_weight:g})": ["--correction-weight", str(cfg.deep_weight)],
               "PEBBLE-style (w=0)": ["--correction-weight", "0"], "oracle SAC": ["--oracle"]}
    every = sc["deep_flags"][sc["deep_flags"].index("--eval-every") + 1] if "--eval-every" in sc["deep_flags"] \
        else "5000"
    # every run through the sweep runner: deterministic slots, so a rerun skips finished runs and resumes the
    # interrupted ones from their checkpoints
    specs = {name: [RunSpec("parl", cfg.deep_env, cfg.first_seed + i, sc["deep_steps"],
                            extra_args=(*sc["deep_flags"], *flags, "--checkpoint-every", every))
                    for i in range(sc["deep_seeds"])] for name, flags in methods.items()}
    root = Path(cfg.run_dir) / "parl_alignment" / cfg.scale
    report = run_sweep([spec for group in specs.values() for spec in group], root, workers=cfg.workers)
    run_of = {json.dumps(r["spec"], sort_keys=True): r.get("run_dir") for r in report.results}
    curves: dict = {}
    for name, group in specs.items():
        curves[name] = []
        for spec in group:
            run_dir = run_of.get(json.dumps(dataclasses.asdict(spec), sort_keys=True))
            if not run_dir or not (Path(run_dir) / "summary.json").exists():
                raise SystemExit(f"deep run did not finish: {spec.label} (see the sweep's messages above)")
            run = Path(run_dir)
            rows = list(csv.DictReader(open(run / "eval.csv")))
            summary = json.loads((run / "summary.json").read_text())
            curves[name].append({"steps": [int(r["env_steps"]) for r in rows],
                                 "return": [float(r["return_mean"]) for r in rows],
                                 "queries": [int(float(r.get("queries") or 0)) for r in rows],
                                 "fps": summary["fps"], "run": str(run)})
            log(f"deep: {name} seed {spec.seed}: {summary['env_steps']} steps ({summary['fps']:.0f} env steps/s), "
                f"final eval {summary['final_eval_return']}")
    lines = [f"# PARL deep variant on {cfg.deep_env} ({cfg.scale})", "",
             "| method | seeds | final eval return (mean ± 95% CI) | queries | env steps/s |", "|---|---|---|---|---|"]
    for name, cs in curves.items():
        m, h = ci95(np.array([c["return"][-1] for c in cs]))
        lines.append(f"| {name} | {len(cs)} | {m:.1f}" + (f" ± {h:.1f}" if not math.isnan(h) else "")
                     + f" | {cs[0]['queries'][-1]} | {np.mean([c['fps'] for c in cs]):.0f} |")
    (out / "deep.md").write_text("\n".join(lines) + "\n")
    (out / "deep.json").write_text(json.dumps(curves))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, cs in curves.items():
        n = min(len(c["steps"]) for c in cs)
        R = np.array([c["return"][:n] for c in cs])
        x = np.array(cs[0]["steps"][:n])
        m = R.mean(0)
        h = np.array([ci95(R[:, j])[1] for j in range(n)]) if len(cs) > 1 else np.zeros(n)
        axes[0].plot(x, m, label=name)
        axes[0].fill_between(x, m - h, m + h, alpha=0.2)
        if "oracle" not in name:
            axes[1].plot(np.array(cs[0]["queries"][:n]), m, label=name)
    axes[0].set(xlabel="env steps", ylabel="true eval return", title=cfg.deep_env)
    axes[1].set(xlabel="queries", ylabel="true eval return")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "deep.png", dpi=120)
    plt.close(fig)
    return curves


def main(argv=None) -> dict:
    cfg = parse_config(FigConfig, argv, prog="python -m paper_figs.parl_alignment", description=__doc__)
    torch.set_num_threads(1)
    out = Path(cfg.out) / f"parl_alignment-{cfg.scale}"
    out.mkdir(parents=True, exist_ok=True)
    sc = SCALES[cfg.scale]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    res = {}
    if "exact" in cfg.parts:
        res["exact"] = run_exact(cfg, sc, out, log)
        print((out / "exact.md").read_text())
    if "deep" in cfg.parts:
        res["deep"] = run_deep(cfg, sc, out, log)
        print((out / "deep.md").read_text())
    print(f"figures and tables: {out}")
    return res


if __name__ == "__main__":
    sys.exit(run_cli(main))
