"""DR-RPO robustness to dynamics shift and its regret, beside the analytic lines and reference numbers.

Paper: Gu, He, Liu, Xu, arXiv 2510.14246. Only its abstract was available, so no numbers of the paper are
shown. The reference values printed here are: the analytic lines of the simulated linear MDP, derived from its
known model (non-robust ~ 1.424 - 0.8 q, robust ~ 1.232 - 0.4 q, crossing near q ~ 0.48; see
envs/linear_mdp/simulated.py), and the regret of an independent small numpy reimplementation run before this
one (beta = 0.3: plateau ~1.20 by K = 50, flat to K = 800; beta = 1: 2.9 -> 10.6 over
K = 50 -> 800).

    python -m paper_figs.dr_rpo_robustness --scale smoke   # about a minute
    python -m paper_figs.dr_rpo_robustness --scale small   # a few minutes: 20 replications, K = 800 regret

Figures and tables: <out>/dr_rpo_robustness-<scale>/; every training run also writes its run directory.
"""
from __future__ import annotations

import dataclasses
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from algos.dr_rpo import DRRPOConfig, train
from classic_rl.config import parse_config, run_cli
from classic_rl.runlog import atomic_write_text
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
    run_dir: str = "runs"
    """root of the training runs' directories"""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """device of the batched replications"""
    seed: int = 1
    """seed of every run"""


def run(cfg: FigConfig, **kw) -> dict:
    with redirect_stdout(io.StringIO()):   # the per-run tables are summarized below
        return train(DRRPOConfig(seed=cfg.seed, device=cfg.device, run_dir=cfg.run_dir, eval_every=0,
                                 progress=False, **kw))


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


def linear_section(cfg, sc, out_dir, plt) -> str:
    lines = analytic_lines(simulated_linear_mdp())
    results = {label(a, r): run(cfg, env="LinearMDP", method=a, rho=r, n_envs=sc["reps"],
                                total_steps=sc["episodes"], eval_episodes=sc["test_episodes"]) for a, r in LINEAR_RUNS}
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


def put_section(cfg, sc, out_dir, plt) -> str:
    results = {label(a, r): run(cfg, env="AmericanPut", method=a, rho=r, n_envs=sc["put_reps"],
                                total_steps=sc["put_episodes"], eval_episodes=sc["test_episodes"]) for a, r in PUT_RUNS}
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


def regret_section(cfg, sc, out_dir, plt) -> str:
    K = sc["regret_episodes"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=140)
    rows = []
    for beta in (0.3, 1.0):
        res = run(cfg, env="LinearMDP", method="dr_rpo", rho=0.6, beta=beta, n_envs=sc["regret_reps"],
                  total_steps=K, eval_episodes=1)
        per = np.array(res["cumulative_regret_per_replication"])                   # [K, R]
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
    out_dir = Path(cfg.out) / f"dr_rpo_robustness-{cfg.scale}"
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join([
        "## Simulated linear MDP: average test return vs shift q (mean ± std over replications)",
        linear_section(cfg, sc, out_dir, plt),
        "## American put: average payoff vs up-probability p", put_section(cfg, sc, out_dir, plt),
        "## Cumulative robust regret (DR-RPO, rho = 0.6)", regret_section(cfg, sc, out_dir, plt)])
    print(text)
    atomic_write_text(out_dir / "tables.md", text + "\n")
    print(f"\nwrote {out_dir}/tables.md and figures linear_mdp_return_vs_shift.png, american_put_return_vs_p.png, "
          f"linear_mdp_regret.png")
    return text


if __name__ == "__main__":
    sys.exit(run_cli(main))
