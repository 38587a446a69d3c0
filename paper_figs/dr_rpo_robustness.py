"""DR-RPO robustness to dynamics shift and its regret, beside the analytic lines and reference numbers.

Paper: Gu, He, Liu, Xu, arXiv 2510.14246. Only its abstract was available, so no numbers of the paper are
shown. The reference values printed here are: the analytic lines of the simulated linear MDP, derived from its
known model (non-robust ~ 1.424 - 0.8 q, robust ~ 1.232 - 0.4 q, crossing near q ~ 0.48; see
envs/linear_mdp/simulated.py), and the regret of an independent small numpy reimplementation run before this
one (beta = 0.3: plateau ~1.20 by K = 50, flat to K = 800; beta = 1: 2.9 -> 10.6 over
K = 50 -> 800).

    python -m paper_figs.dr_rpo_robustness --scale smoke   # about a minute
    python -m paper_figs.dr_rpo_robustness --scale small   # a few minutes: 20 replications, K = 800 regret

Every training run (one per algorithm and radius of each section, one per beta of the regret) is a plain
`python -m algos.dr_rpo --env LinearMDP|AmericanPut ...` process launched through the sweep runner
`classic_rl.sweep`, in a deterministic slot <run-dir>/<scale>/dr_rpo/<env>/<flags hash>/seed<S> (its stdout.log,
with the run's own tables, and stderr.log beside the run directory); `--workers N` runs N at a time. The
figures and tables are read from each run's summary.json (test returns under every shift, P(robust action),
train seconds, the per-replication regret). Re-running the same command skips the finished runs and starts
the others again (a run checkpoints only at its end); a failed run is reported with its command and the
tail of its stderr, and the script then stops with an error (every figure needs all of its runs).

Figures and tables: <out>/dr_rpo_robustness-<scale>/.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from classic_rl import UserError
from classic_rl.config import parse_config, require, run_cli
from classic_rl.runlog import atomic_write_text
from classic_rl.sweep import RunSpec, parse_overrides, plan, run_sweep
from envs.linear_mdp import analytic_lines, simulated_linear_mdp

SCALES = {
    "smoke": dict(reps=5, episodes=100, test_episodes=50, put_reps=3, put_episodes=30, regret_reps=3,
                  regret_episodes=100),
    "small": dict(reps=20, episodes=100, test_episodes=200, put_reps=10, put_episodes=100, regret_reps=10,
                  regret_episodes=800),
    "paper": dict(reps=20, episodes=100, test_episodes=200, put_reps=20, put_episodes=200, regret_reps=20,
                  regret_episodes=800),
}
LINEAR_RUNS = [("dr_rpo", 0.6), ("dr_rpo", 0.3), ("oppo", None), ("lsvi_ucb", None), ("dr_lsvi_ucb", 0.6)]
PUT_RUNS = [("dr_rpo", None), ("oppo", None), ("lsvi_ucb", None), ("dr_lsvi_ucb", None)]
REFERENCE_REGRET = {0.3: {50: "1.20", 800: "1.20 (flat)"}, 1.0: {50: "2.9", 800: "10.6"}}


@dataclasses.dataclass
class FigConfig:
    """Average test return vs shift (linear MDP, American put) and cumulative robust regret vs episodes."""

    scale: Literal["smoke", "small", "paper"] = "smoke"
    """smoke (about a minute), small (minutes), paper (the reference code's replication counts)"""
    out: str = "paper_figs/out"
    """output folder; figures and tables go to <out>/dr_rpo_robustness-<scale>/"""
    run_dir: str = "runs/paper_figs/dr_rpo_robustness"
    """root of the training runs' sweep slots (one sub-folder per scale)"""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """device of the batched replications"""
    seed: int = 1
    """seed of every run"""
    workers: int = 1
    """training processes run at once (each uses one CPU thread)"""

    def validate(self) -> None:
        require(self.workers >= 1, f"--workers must be >= 1, got {self.workers}")


def spec(cfg: FigConfig, env: str, total_steps: int, **kw) -> RunSpec:
    """One `python -m algos.dr_rpo` run: DRRPOConfig fields in `kw` become flags (None = the env's preset,
    left out), evaluated only at the end (--eval-every 0)."""
    flags = {k: v for k, v in kw.items() if v is not None}
    return RunSpec("dr_rpo", env, cfg.seed, int(total_steps),
                   parse_overrides({**flags, "device": cfg.device, "eval_every": 0}))


def linear_specs(cfg: FigConfig, sc: dict) -> dict[str, RunSpec]:
    return {label(a, r): spec(cfg, "LinearMDP", sc["episodes"], method=a, rho=r, n_envs=sc["reps"],
                              eval_episodes=sc["test_episodes"]) for a, r in LINEAR_RUNS}


def put_specs(cfg: FigConfig, sc: dict) -> dict[str, RunSpec]:
    return {label(a, r): spec(cfg, "AmericanPut", sc["put_episodes"], method=a, rho=r, n_envs=sc["put_reps"],
                              eval_episodes=sc["test_episodes"]) for a, r in PUT_RUNS}


def regret_specs(cfg: FigConfig, sc: dict) -> dict[float, RunSpec]:
    return {beta: spec(cfg, "LinearMDP", sc["regret_episodes"], method="dr_rpo", rho=0.6, beta=beta,
                       n_envs=sc["regret_reps"], eval_episodes=1) for beta in (0.3, 1.0)}


def all_specs(cfg: FigConfig, sc: dict) -> list[RunSpec]:
    return [*linear_specs(cfg, sc).values(), *put_specs(cfg, sc).values(), *regret_specs(cfg, sc).values()]


def run_root(cfg: FigConfig) -> Path:
    return Path(cfg.run_dir) / cfg.scale


def result(spec: RunSpec, root: Path) -> dict:
    """summary.json of the finished run in the spec's slot (plus run_dir): what algos.dr_rpo.train returns."""
    state, run_dir = plan(spec, root)
    if state != "skip" or run_dir is None:
        raise UserError(f"{spec.label} did not finish (see the sweep's messages above; slot {spec.slot(root)})")
    return {**json.loads((run_dir / "summary.json").read_text()), "run_dir": str(run_dir)}


def label(algo, rho):
    return algo if rho is None else f"{algo} rho={rho:g}"


def crossing(q, a, b):
    """First q where curve a rises above b (linear interpolation), None if they never cross."""
    d = np.asarray(a) - np.asarray(b)
    for i in range(len(d) - 1):
        if d[i] < 0 <= d[i + 1]:
            return q[i] + (q[i + 1] - q[i]) * (-d[i]) / (d[i + 1] - d[i])
    return None


def md_table(header, rows) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def plot_return_vs_shift(results: dict, plt):
    """One line (mean +- std over replications of the exact test return) per algorithm against the shift."""
    shifts = [float(x) for x in next(iter(results.values()))["shifts"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=140)
    for name, res in results.items():
        m = np.array([res["shifts"][str(x)]["exact_mean"] for x in shifts])
        s = np.array([res["shifts"][str(x)]["exact_std"] for x in shifts])
        (ln,) = ax.plot(shifts, m, marker="o", ms=3, label=name)
        ax.fill_between(shifts, m - s, m + s, color=ln.get_color(), alpha=0.15)
    return shifts, fig, ax


def linear_section(cfg, sc, out_dir, plt, root) -> str:
    lines = analytic_lines(simulated_linear_mdp())
    results = {name: result(s, root) for name, s in linear_specs(cfg, sc).items()}
    qs, fig, ax = plot_return_vs_shift(results, plt)
    ax.plot(qs, [lines["non_robust"](q) for q in qs], "k--", lw=1, label="analytic non-robust")
    ax.plot(qs, [lines["robust"](q) for q in qs], "k:", lw=1.5, label="analytic robust")
    ax.set_xlabel("test shift q (goal -> fail at step 1)")
    ax.set_ylabel("average test return (exact)")
    ax.set_title(f"Simulated linear MDP, K = {sc['episodes']}, {sc['reps']} replications")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "linear_mdp_return_vs_shift.png")
    plt.close(fig)
    rows = []
    for name, res in results.items():
        cells = [f"{res['shifts'][str(q)]['exact_mean']:.3f} ± {res['shifts'][str(q)]['exact_std']:.3f} "
                 f"(MC {res['shifts'][str(q)]['mc_mean']:.3f})" for q in (0.0, 0.5, 1.0)]
        rows.append([name, *cells, f"{np.mean(res['p_robust_action_at_x1']):.2f}", f"{res['train_seconds']:.1f}"])
    rows.append(["analytic non-robust (1.424 - 0.8q)", *[f"{lines['non_robust'](q):.3f}" for q in (0, .5, 1)],
                 "0", "-"])
    rows.append(["analytic robust (1.232 - 0.4q)", *[f"{lines['robust'](q):.3f}" for q in (0, .5, 1)], "1", "-"])
    drm = [results["dr_rpo rho=0.6"]["shifts"][str(q)]["exact_mean"] for q in qs]
    opm = [results["oppo"]["shifts"][str(q)]["exact_mean"] for q in qs]
    cross = crossing(qs, drm, opm)
    text = md_table(["algorithm", "q = 0", "q = 0.5", "q = 1", "P(-1^4 at x1)", "train s"], rows)
    return text + (f"\n\nDR-RPO (rho=0.6) crosses OPPO at q = {cross:.2f}" if cross is not None else
                   "\n\nDR-RPO (rho=0.6) never crosses OPPO") + \
        f" (analytic lines: ~0.48); rho* = {lines['rho_star']:.3f}"


def put_section(cfg, sc, out_dir, plt, root) -> str:
    results = {name: result(s, root) for name, s in put_specs(cfg, sc).items()}
    ps, fig, ax = plot_return_vs_shift(results, plt)
    oracle = [next(iter(results.values()))["shifts"][str(p)]["oracle"] for p in ps]
    ax.plot(ps, oracle, "k--", lw=1, label="optimal stopping for the test p")
    ax.axvline(0.5, color="gray", lw=0.5)
    ax.set_xlabel("test up-probability p (trained at p0 = 0.5)")
    ax.set_ylabel("average payoff (exact)")
    ax.set_title(f"American put, K = {sc['put_episodes']}, {sc['put_reps']} replications")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "american_put_return_vs_p.png")
    plt.close(fig)
    rows = [[name] + [f"{res['shifts'][str(p)]['exact_mean']:.2f}" for p in ps] + [f"{res['train_seconds']:.1f}"]
            for name, res in results.items()]
    rows.append(["oracle (knows p)"] + [f"{o:.2f}" for o in oracle] + ["-"])
    return md_table(["algorithm"] + [f"p = {p:g}" for p in ps] + ["train s"], rows)


def regret_section(cfg, sc, out_dir, plt, root) -> str:
    K = sc["regret_episodes"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=140)
    rows = []
    for beta, run_spec in regret_specs(cfg, sc).items():
        res = result(run_spec, root)
        per = np.array(res["cumulative_regret_per_replication"])[:K]               # [K, R]
        m, s = per.mean(1), per.std(1)
        ks = np.arange(1, K + 1)
        (ln,) = ax.plot(ks, m, label=f"DR-RPO beta={beta:g}")
        ax.fill_between(ks, m - s, m + s, color=ln.get_color(), alpha=0.15)
        checkpoints = [k for k in (50, 100, 200, 400, 800) if k <= K]
        # a replication "still grows" if, over the last 3/4 of training, it pays > 0.005 regret per episode
        # (the Q-gaps here are ~0.05, so that is a policy still off the optimum a tenth of the time or more)
        per_episode = (per[-1] - per[K // 4]) / (K - K // 4)
        stuck = np.mean(per_episode > 0.005)
        rows.append([f"{beta:g}"] + [f"{m[k - 1]:.2f}" for k in checkpoints] + [f"{np.median(per[-1]):.2f}",
                    f"{stuck:.2f}", ", ".join(f"K={k}: {v}" for k, v in REFERENCE_REGRET[beta].items())])
    ax.set_xlabel("episode K")
    ax.set_ylabel("cumulative robust regularized regret (exact)")
    ax.set_title("Simulated linear MDP, rho = 0.6")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "linear_mdp_regret.png")
    plt.close(fig)
    return md_table(["beta"] + [f"K = {k} (mean)" for k in checkpoints] +
                    [f"K = {K} (median)", "share still growing", "numpy reference (mean)"], rows)


def main(argv=None) -> str:
    cfg = parse_config(FigConfig, argv, prog="python -m paper_figs.dr_rpo_robustness")
    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = SCALES[cfg.scale]
    root = run_root(cfg)
    specs = all_specs(cfg, sc)
    if any(plan(s, root)[0] != "skip" for s in specs):
        run_sweep(specs, root, workers=cfg.workers)
    else:
        print(f"all {len(specs)} runs already finished under {root}")
    out_dir = Path(cfg.out) / f"dr_rpo_robustness-{cfg.scale}"
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join([
        "## Simulated linear MDP: average test return vs shift q (mean ± std over replications)",
        linear_section(cfg, sc, out_dir, plt, root),
        "## American put: average payoff vs up-probability p", put_section(cfg, sc, out_dir, plt, root),
        "## Cumulative robust regret (DR-RPO, rho = 0.6)", regret_section(cfg, sc, out_dir, plt, root)])
    print(text)
    atomic_write_text(out_dir / "tables.md", text + "\n")
    print(f"\nwrote {out_dir}/tables.md and figures linear_mdp_return_vs_shift.png, american_put_return_vs_p.png, "
          f"linear_mdp_regret.png")
    return text


if __name__ == "__main__":
    sys.exit(run_cli(main))
