"""GNN vs vanilla MLP data efficiency on transshipment (S5), HDPO (Alvo, Russo, Kanoria, Lee; arXiv 2306.11246
v3): test gap to the lower bound vs the number of training scenarios (128 / 1024 / 8192), paper beside ours.

    python -m paper_figs.hdpo_gnn_data_efficiency --scale smoke   # ~2 min on 2 cores: proves the pipeline only
    python -m paper_figs.hdpo_gnn_data_efficiency --scale small   # S=3, 128/1024/8192 scen., 400 grad steps per
                                                                  # run (about 30-40 min on one free core)
    python -m paper_figs.hdpo_gnn_data_efficiency --scale paper   # S=10, full batch, 2000 steps (GPU)

Instance: transshipment centre + S stores, backlogged, L_s = 4, p = 9, rho = 0.5 (the v3 GNN grid). As in the
authors' v3 data study the dev set has as many scenarios as the training set (dev 50 periods, 30 warm-up).
Every run is a plain `python -m algos.hdpo` process through `classic_rl.sweep` (deterministic slots under
<out>/runs): a rerun skips finished runs (also those that stopped early) and resumes interrupted ones. Budgets
are written in gradient steps, so the 128-scenario runs are much cheaper than the others; the training batch
is min(scenarios, --batch of the scale): full batch where the scale allows, as the paper.

Paper numbers (the authors' v3 analysis notebooks, transshipment table, gap to the lower bound in %, ranges
over S = 3..50 stores, 5000-period test): GNN 128: 0.57-1.32 (mean 0.92), 1024: 0.31-0.40 (mean 0.35),
8192: 0.02-0.11 (mean 0.07); vanilla MLP 128: 3.7-32.6, 1024: 0.7-7.2, 8192: 0.28-0.45.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from classic_rl.config import run_cli
from classic_rl.runlog import atomic_write_text
from classic_rl.sweep import RunSpec, finished_summary, run_sweep

# paper: (GNN range, GNN mean, vanilla MLP range) of the test gap % by training scenarios (S = 3..50)
PAPER = {128: ("0.57-1.32", "0.92", "3.7-32.6"), 1024: ("0.31-0.40", "0.35", "0.7-7.2"),
         8192: ("0.02-0.11", "0.07", "0.28-0.45")}
SCALES = {
    # steps: gradient steps per run; batch: max paths per gradient step; dev: dev periods / warm-up
    "smoke": dict(stores=3, sizes=[128, 512], steps=4, batch=256, dev_every=2, n_test=256, test_periods=100,
                  test_ignore=40, dev_periods=50, dev_ignore=30),
    "small": dict(stores=3, sizes=[128, 1024, 8192], steps=400, batch=1024, dev_every=20, n_test=2048,
                  test_periods=1000, test_ignore=300, dev_periods=50, dev_ignore=30),
    "paper": dict(stores=10, sizes=[128, 1024, 8192], steps=2000, batch=8192, dev_every=10, n_test=4096,
                  test_periods=5000, test_ignore=3000, dev_periods=50, dev_ignore=30),
}


def hdpo_spec(seed: int, setting: str, total_steps: int, **flags) -> RunSpec:
    """A sweep entry for one `algos.hdpo` run (flags: HDPOConfig field names -> values)."""
    return RunSpec("hdpo", setting, seed, int(total_steps),
                   overrides=tuple(sorted((k, " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
                                          for k, v in flags.items())))


def sweep_summaries(specs: Sequence[RunSpec], root: Path, workers: int = 1) -> list[dict | None]:
    """Run every spec not finished yet through the sweep runner; return each spec's summary (None = failed)."""
    todo = [s for s in specs if finished_summary(s, root) is None]
    if todo:
        run_sweep(todo, root, workers=workers)
    else:
        print(f"all {len(specs)} runs already finished under {root}")
    return [finished_summary(s, root) for s in specs]


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paper_figs.hdpo_gnn_data_efficiency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per (policy, scenarios)")
    parser.add_argument("--workers", type=int, default=1, help="parallel training processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="output folder (default paper_figs/out/hdpo_gnn_data_efficiency_<scale>)")
    args = parser.parse_args(argv)
    sc = SCALES[args.scale]
    out = Path(args.out or f"paper_figs/out/hdpo_gnn_data_efficiency_{args.scale}")
    root = out / "runs"
    keys, specs = [], []
    for n in sc["sizes"]:
        batch = min(n, sc["batch"])
        for policy in ("gnn", "mlp"):
            for seed in range(1, args.seeds + 1):
                per_step = batch * 50
                specs.append(hdpo_spec(
                    seed, "transshipment", sc["steps"] * per_step, stores=sc["stores"], store_lead_time=4,
                    underage_cost=9, correlation=0.5, policy=policy, n_train=n, n_envs=batch, eval_episodes=n,
                    eval_every=sc["dev_every"] * per_step, dev_periods=sc["dev_periods"],
                    dev_ignore=sc["dev_ignore"], n_test=sc["n_test"], test_periods=sc["test_periods"],
                    test_ignore=sc["test_ignore"], device=args.device, torch_threads=1))
                keys.append((n, policy, seed))
    summaries = sweep_summaries(specs, root, args.workers)
    gaps: dict[tuple[int, str], list[float]] = {}
    for (n, policy, _), summary in zip(keys, summaries):
        if summary and summary.get("test_gap_pct") is not None:
            gaps.setdefault((n, policy), []).append(float(summary["test_gap_pct"]))
    mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
    lines = [f"### GNN vs vanilla MLP, transshipment S={sc['stores']} (L_s=4, p=9, rho=0.5), test gap to the "
             f"lower bound %, scale {args.scale}",
             f"{sc['steps']} gradient steps per run, batch min(scenarios, {sc['batch']}), dev = as many scenarios "
             f"as training ({sc['dev_periods']} periods), test {sc['n_test']} x {sc['test_periods']} "
             f"(warm-up {sc['test_ignore']}), {args.seeds} seed(s); paper: ranges over S = 3..50, 5000-period test",
             "", "| train scenarios | paper GNN (mean) | our GNN | paper MLP | our MLP | GNN better |",
             "|---|---|---|---|---|---|"]
    for n in sc["sizes"]:
        g, m = mean(gaps.get((n, "gnn"), [])), mean(gaps.get((n, "mlp"), []))
        paper = PAPER.get(n, ("-", "-", "-"))
        better = "-" if g is None or m is None else ("yes" if g < m else "no")
        lines.append(f"| {n} | {paper[0]} ({paper[1]}) | {fmt(g)} | {paper[2]} | {fmt(m)} | {better} |")
    text = "\n".join(lines)
    print("\n" + text)
    atomic_write_text(out / "table.md", text + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for policy, color in (("gnn", "C0"), ("mlp", "C1")):
            xs = [n for n in sc["sizes"] if gaps.get((n, policy))]
            ax.plot(xs, [mean(gaps[(n, policy)]) for n in xs], "o-", color=color, label=f"ours {policy.upper()}")
        # the paper's ranges over S = 3..50 as error bars (GNN: its mean as the marker; MLP: the range's midpoint)
        sizes = sorted(PAPER)
        for col, policy, color, dx in ((0, "GNN", "C0", 0.93), (2, "MLP", "C1", 1.07)):
            lo_hi = [tuple(float(v) for v in PAPER[n][col].split("-")) for n in sizes]
            mid = [float(PAPER[n][1]) for n in sizes] if policy == "GNN" else [(lo + hi) / 2 for lo, hi in lo_hi]
            ax.errorbar([n * dx for n in sizes], mid, yerr=[[m - lo for m, (lo, _) in zip(mid, lo_hi)],
                                                            [hi - m for m, (_, hi) in zip(mid, lo_hi)]],
                        fmt="s", color=color, alpha=0.45, capsize=3, ls="none",
                        label=f"paper {policy} (range over S=3..50)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training scenarios")
        ax.set_ylabel("test gap to lower bound (%)")
        ax.set_title(f"S5 transshipment, S={sc['stores']} ({args.scale})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "gap_vs_scenarios.png", dpi=120)
        fig.savefig(out / "gap_vs_scenarios.pdf")
        print(f"figure: {out / 'gap_vs_scenarios.png'}")
    except ImportError:
        pass
    print(f"table: {out / 'table.md'}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
