"""Optimality-gap tables of HDPO (Alvo, Russo, Kanoria, Lee; arXiv 2306.11246), paper values beside ours.

Tables: S1 backlog and S2 lost sales (vanilla MLP vs the exact optimum), S3 serial (vs the echelon-stock
reference), S5 transshipment (vs the lower bound), and GNN vs vanilla MLP on transshipment across numbers
of training scenarios (128 / 1024 / 8192, full batch as in the v3 data study).

    python -m paper_figs.hdpo_gaps --scale smoke    # about a minute: proves the pipeline, not the claim
    python -m paper_figs.hdpo_gaps --scale small    # tens of minutes on CPU: a subset at reduced sizes
    python -m paper_figs.hdpo_gaps --scale paper    # the paper's sizes (GPU)
    python -m paper_figs.hdpo_gaps --scale small --tables s5nets   # S5 3/5/10 stores, GNN and MLP (~45 min)

Table s5nets (transshipment with 3, 5 and 10 stores, L_s = 4, p = 9, rho = 0.5, GNN and vanilla MLP) runs every
training as a plain `python -m algos.hdpo` process through `classic_rl.sweep` under
<run-dir>/paper_figs/hdpo_gaps_s5nets-<scale>/runs: a rerun skips finished runs and resumes interrupted
ones (the other tables train in this process and rerun from scratch).

Paper values are those printed by the authors' v3 analysis notebooks (the numbers behind the paper's tables).
Budgets are written in epochs, as the paper's (converted to path-periods by `algos.hdpo.epoch_budget`). Runs
go to <run-dir>/hdpo/...; the tables are also written to <run-dir>/paper_figs/hdpo_gaps-<scale>.md.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

from algos.hdpo import HDPOConfig, epoch_budget, train
from classic_rl.config import parse_config, run_cli
from classic_rl.runlog import atomic_write_text

# Paper gap (%) per instance (authors' v3 notebooks); a range or bound where only that is reported.
PAPER_S1 = {(4, 9): "0.00-0.17 (cost 6.28)"}
PAPER_S2 = {(1, 9): "0.41", (4, 9): "< 0.25"}
PAPER_S5 = {(3, 2, 4): "0.00", (3, 6, 4): "0.18", (5, 6, 4): "0.24", (10, 2, 4): "0.13", (10, 6, 4): "0.29",
            (5, 2, 4): "(CI target < 1)"}
PAPER_GNN = {128: ("0.57-1.32", "3.7-32.6"), 1024: ("0.31-0.40", "0.7-7.2"), 8192: ("0.02-0.11", "0.28-0.45")}
# S5 by store count (v3 transshipment table, 8192 scenarios): only ranges over S = 3..50 are printed, GNN
# 0.02-0.11 (mean 0.07), vanilla MLP 0.28-0.45
PAPER_S5_NETS = {"gnn": "0.02-0.11 (S=3..50)", "mlp": "0.28-0.45 (S=3..50)"}
# s5nets: gradient steps per run, batch, dev check every `dev_every` steps
S5_NETS = {
    "smoke": dict(stores=[3], n_train=256, n_envs=256, steps=4, dev_every=2, eval_episodes=128, dev_periods=60,
                  dev_ignore=20, n_test=128, test_periods=100, test_ignore=40),
    "small": dict(stores=[3, 5, 10], n_train=8192, n_envs=1024, steps=400, dev_every=20, eval_episodes=2048,
                  dev_periods=100, dev_ignore=60, n_test=2048, test_periods=1000, test_ignore=300),
    "paper": dict(stores=[3, 5, 10], n_train=32768, n_envs=1024, steps=20000, dev_every=320, eval_episodes=32768,
                  dev_periods=100, dev_ignore=60, n_test=32768, test_periods=5000, test_ignore=3000),
}

SCALES = {
    # sizes shared by every run of a scale (per-table instance lists below); epochs, dev_every and patience
    # in epochs
    "smoke": dict(n_train=256, n_envs=256, eval_episodes=128, n_test=128, test_periods=100, test_ignore=40,
                  dev_periods=60, dev_ignore=20, epochs=4, dev_every=2, patience=None, time_limit=0.25),
    "small": dict(n_train=4096, n_envs=1024, eval_episodes=2048, n_test=2048, test_periods=1000, test_ignore=300,
                  epochs=400, dev_every=10, patience=100, time_limit=5.0),
    "paper": dict(n_train=32768, n_envs=8192, eval_episodes=32768, n_test=32768, test_periods=5000,
                  test_ignore=3000, epochs=20000, dev_every=10, patience=500),
}
INSTANCES = {
    "smoke": dict(s1=[(4, 9)], s2=[(4, 9)], s3=[(4, 9)], s5=[(5, 2, 4)], gnn_sizes=[128], gnn_stores=3),
    "small": dict(s1=[(1, 4), (4, 9)], s2=[(1, 9), (4, 9)], s3=[(4, 9)], s5=[(3, 2, 4), (5, 2, 4)],
                  gnn_sizes=[128, 1024], gnn_stores=3),
    "paper": dict(s1=[(L, p) for L in (1, 4, 7, 10, 15, 20) for p in (4, 9, 19, 39)],
                  s2=[(L, p) for L in (1, 2, 3, 4) for p in (4, 9, 19, 39)],
                  s3=[(L, p) for L in (1, 2, 3, 4) for p in (4, 9, 19, 39)],
                  s5=[(S, L, p) for S in (3, 5, 10) for L in (2, 6) for p in (4, 9)],
                  gnn_sizes=[128, 1024, 8192], gnn_stores=10),
}


@dataclasses.dataclass
class GapsConfig:
    """Reproduce the HDPO optimality-gap tables at a chosen scale."""

    scale: Literal["smoke", "small", "paper"] = "smoke"
    """smoke (about a minute), small (tens of minutes, CPU), paper (the paper's sizes, GPU)"""
    tables: list[str] = dataclasses.field(default_factory=lambda: ["s1", "s2", "s3", "s5", "gnn", "s5nets"])
    """which tables to run: s1 s2 s3 s5 gnn s5nets"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device for every run"""
    seed: int = 1
    """seed of every run"""
    run_dir: str = "runs"
    """root of the run directories and of the written tables"""
    torch_threads: int = 1
    """torch CPU threads per run (0 = torch default)"""


def run(cfg: GapsConfig, **kw) -> dict:
    sizes = {**SCALES[cfg.scale], **kw}
    budget = epoch_budget(sizes.pop("n_train"), sizes.pop("epochs"), sizes.pop("dev_every"), sizes.pop("patience"))
    return train(HDPOConfig(**sizes, **budget, seed=cfg.seed, device=cfg.device, run_dir=cfg.run_dir,
                            progress=False, torch_threads=cfg.torch_threads))


def fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def s5_nets_table(cfg: GapsConfig) -> str:
    """S5 with 3, 5 and 10 stores, GNN and vanilla MLP, through the sweep runner (resumable)."""
    from paper_figs.hdpo_gnn_data_efficiency import hdpo_spec, sweep_summaries
    sc = dict(S5_NETS[cfg.scale])
    per_step = sc["n_envs"] * 50
    root = Path(cfg.run_dir) / "paper_figs" / f"hdpo_gaps_s5nets-{cfg.scale}" / "runs"
    keys, specs = [], []
    for stores in sc["stores"]:
        for policy in ("gnn", "mlp"):
            specs.append(hdpo_spec(cfg.seed, "transshipment", sc["steps"] * per_step, stores=stores,
                                   store_lead_time=4, underage_cost=9, correlation=0.5, policy=policy,
                                   n_train=sc["n_train"], n_envs=sc["n_envs"], eval_episodes=sc["eval_episodes"],
                                   eval_every=sc["dev_every"] * per_step, dev_periods=sc["dev_periods"],
                                   dev_ignore=sc["dev_ignore"], n_test=sc["n_test"], test_periods=sc["test_periods"],
                                   test_ignore=sc["test_ignore"], device=cfg.device, torch_threads=cfg.torch_threads))
            keys.append((stores, policy))
    rows = []
    for (stores, policy), r in zip(keys, sweep_summaries(specs, root)):
        rows.append([f"S={stores}, L_s=4, p=9, rho=0.5", policy, "-" if r is None else fmt(r["reference"]),
                     PAPER_S5_NETS[policy], "failed" if r is None else fmt(r["test_cost"]),
                     "-" if r is None else fmt(r["test_gap_pct"], 3), "-" if r is None else str(r["grad_steps"]),
                     "-" if r is None else f"{r['wall_time']:.0f}"])
    return table(f"S5 transshipment by store count, GNN vs vanilla MLP (vs lower bound; {sc['steps']} gradient "
                 f"steps of {sc['n_envs']} paths, {sc['n_train']} training scenarios, test {sc['n_test']} x "
                 f"{sc['test_periods']})",
                 ["instance", "policy", "lower bound", "paper gap % (8192 scen.)", "our test cost", "our gap %",
                  "grad steps", "wall s"], rows)


def main(argv=None) -> None:
    cfg = parse_config(GapsConfig, argv, prog="python -m paper_figs.hdpo_gaps")
    bad = set(cfg.tables) - {"s1", "s2", "s3", "s5", "gnn", "s5nets"}
    if bad:
        from classic_rl import UserError
        raise UserError(f"unknown tables {sorted(bad)}; valid: s1 s2 s3 s5 gnn s5nets")
    inst = INSTANCES[cfg.scale]
    out: list[str] = []
    header = ["instance", "reference", "paper gap %", "our test cost", "our gap %", "grad steps"]

    def emit(text):
        print(text + "\n", flush=True)
        out.append(text)

    for key, setting, label, paper in (("s1", "backlog", "S1 one store, backlog (MLP)", PAPER_S1),
                                       ("s2", "lost_sales", "S2 one store, lost sales (MLP, rounded test)", PAPER_S2)):
        if key in cfg.tables:
            rows = []
            for lead, p in inst[key]:
                # lr 1e-2 from the authors' v3 grid (all of {1e-4, 1e-3, 1e-2} solve S2; 1e-2 is fastest)
                r = run(cfg, env=setting, lead_time=lead, underage_cost=float(p), policy="mlp", lr=1e-2)
                rows.append([f"L={lead}, p={p}", fmt(r["reference"]), paper.get((lead, p), "-"),
                             fmt(r["test_cost"]), fmt(r["test_gap_pct"], 3), str(r["grad_steps"])])
            emit(table(label, header, rows))
    if "s3" in cfg.tables:
        rows = []
        for lead, p in inst["s3"]:
            r = run(cfg, env="serial", lead_time=lead, underage_cost=float(p), policy="mlp")
            rows.append([f"4 loc., L={lead}, p={p}", fmt(r["reference"]), "mean 0.58, max 0.76 (32768 scen.)",
                         fmt(r["test_cost"]), fmt(r["test_gap_pct"], 3), str(r["grad_steps"])])
        emit(table("S3 serial (MLP vs authors' echelon-stock reference)", header, rows))
    if "s5" in cfg.tables:
        rows = []
        for stores, lead, p in inst["s5"]:
            r = run(cfg, env="transshipment", stores=stores, store_lead_time=lead, underage_cost=float(p),
                    correlation=0.5, policy="mlp")
            rows.append([f"S={stores}, L_s={lead}, p={p}, rho=0.5", fmt(r["reference"]),
                         PAPER_S5.get((stores, lead, p), "-"), fmt(r["test_cost"]),
                         fmt(r["test_gap_pct"], 3), str(r["grad_steps"])])
        emit(table("S5 transshipment (MLP vs lower bound)", header, rows))
    if "gnn" in cfg.tables:
        rows = []
        stores = inst["gnn_stores"]
        for n in inst["gnn_sizes"]:
            gaps = {}
            for policy in ("gnn", "mlp"):
                r = run(cfg, env="transshipment", stores=stores, store_lead_time=4, underage_cost=9.0,
                        correlation=0.5, policy=policy, n_train=n, n_envs=min(n, 8192), lr=1e-3)
                gaps[policy] = r["test_gap_pct"]
            paper_gnn, paper_mlp = PAPER_GNN[n]
            rows.append([str(n), paper_gnn, fmt(gaps["gnn"], 3), paper_mlp, fmt(gaps["mlp"], 3)])
        emit(table(f"GNN vs vanilla MLP, transshipment S={stores} (L_s=4, p=9, rho=0.5), gap to bound %",
                   ["train scenarios", "paper GNN (S=3..50)", "our GNN", "paper MLP (S=3..50)", "our MLP"], rows))
    if "s5nets" in cfg.tables:
        emit(s5_nets_table(cfg))
    path = Path(cfg.run_dir) / "paper_figs" / f"hdpo_gaps-{cfg.scale}.md"
    atomic_write_text(path, f"# HDPO optimality gaps, scale {cfg.scale}\n\n" + "\n\n".join(out) + "\n")
    print(f"tables written to {path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
