"""Inventory simulator throughput: simulated periods x paths per second, CPU and (if present) CUDA.

Measures a no-grad rollout (evaluation) and a forward+backward HDPO step (training) for a one-store
lost-sales system (S2, MLP), a 10-store transshipment network (S5, GNN) and a 50-store one-warehouse
network (S4, MLP) at several batch sizes. Optionally (--time-to-gap) trains HDPO on S2 (L=4, p=9) and
reports the wall time at which the dev cost first came within 1% of the optimum.

    python -m benchmarks.inventory_throughput --devices cpu cuda --batches 1024 8192
"""
from __future__ import annotations

import dataclasses
import sys
import time

import torch

from algos.hdpo import HDPOConfig, train
from envs.inventory.policies import make_policy
from classic_rl import UserError
from classic_rl.config import parse_config, run_cli
from envs.inventory import settings as st
from envs.inventory.simulator import rollout, routing, training_loss

CASES = [("lost_sales", "mlp", 1), ("transshipment", "gnn", 10), ("one_warehouse", "mlp", 50)]


@dataclasses.dataclass
class BenchConfig:
    """Simulator throughput benchmark (periods x paths per second)."""

    devices: list[str] = dataclasses.field(default_factory=lambda: ["cpu", "cuda"])
    """devices to measure (cuda is skipped with a note when absent)"""
    batches: list[int] = dataclasses.field(default_factory=lambda: [1024, 8192])
    """numbers of parallel paths"""
    periods: int = 50
    """periods per rollout"""
    repeats: int = 3
    """timed repetitions (after one warm-up)"""
    time_to_gap: bool = False
    """also train HDPO on S2 (L=4, p=9) on the first device and report the wall time to a 1% dev gap"""
    gap_minutes: float = 10.0
    """time limit of that training run"""
    torch_threads: int = 0
    """torch CPU threads (0 = torch default)"""


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def measure(setting: str, kind: str, stores: int, batch: int, periods: int, repeats: int, device) -> tuple:
    net = st.make_network(setting, stores=stores, store_lead_time=4)
    scen, _ = st.make_train_dev(net, batch, 1, periods, 0, periods, 0, device=device)
    net = net.to(device)
    route = routing(net)
    torch.manual_seed(0)
    policy = make_policy(kind, net).to(device)
    if kind == "gnn":
        policy.set_network(net)

    def evaluate():
        with torch.no_grad():
            rollout(net, policy, scen, route)

    def train_step():
        policy.zero_grad()
        training_loss(net, rollout(net, policy, scen, route)).backward()

    work = batch * periods
    return work / timed(evaluate, repeats, device), work / timed(train_step, repeats, device)


def main(argv=None) -> None:
    cfg = parse_config(BenchConfig, argv, prog="python -m benchmarks.inventory_throughput")
    for name in cfg.devices:
        if name not in ("cpu", "cuda"):
            raise UserError(f"unknown device {name!r}; valid: cpu, cuda")
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    devices = [d for d in cfg.devices if d == "cpu" or torch.cuda.is_available()]
    if "cuda" in cfg.devices and "cuda" not in devices:
        print("note: no CUDA device visible, measuring CPU only")
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name(0)}" if "cuda" in devices else ""))
    print("| device | setting | policy | stores | paths | eval periods*paths/s | train periods*paths/s |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for device in devices:
        for setting, kind, stores in CASES:
            for batch in cfg.batches:
                ev, tr = measure(setting, kind, stores, batch, cfg.periods, cfg.repeats, torch.device(device))
                results[(device, setting, batch)] = (ev, tr)
                print(f"| {device} | {setting} | {kind} | {stores} | {batch} | {ev:,.0f} | {tr:,.0f} |", flush=True)
    if len(devices) == 2:
        for setting, kind, stores in CASES:
            for batch in cfg.batches:
                cpu, gpu = results[("cpu", setting, batch)], results[("cuda", setting, batch)]
                print(f"speed-up cuda/cpu {setting} ({stores} stores, {batch} paths): eval {gpu[0] / cpu[0]:.1f}x, "
                      f"train {gpu[1] / cpu[1]:.1f}x")
    if cfg.time_to_gap:
        summary = train(HDPOConfig(setting="lost_sales", lead_time=4, underage_cost=9.0, lr=1e-2, n_train=4096,
                                   batch_size=1024, n_dev=2048, n_test=2048, epochs=20000, dev_every=5,
                                   time_limit=cfg.gap_minutes, test_curve=False, progress=False,
                                   torch_threads=cfg.torch_threads,
                                   device=devices[0], run_dir="runs"))
        import csv
        with open(f"{summary['run_dir']}/metrics.csv") as fh:
            hit = [r for r in csv.DictReader(fh) if float(r["dev_gap_pct"]) <= 1.0]
        when = f"{float(hit[0]['wall_time']):.1f} s ({hit[0]['grad_steps']} gradient steps)" if hit else "not reached"
        print(f"S2 (L=4, p=9) wall time to a 1% dev gap on {devices[0]}: {when}; "
              f"final test gap {summary['test_gap_pct']:.3f}%")


if __name__ == "__main__":
    sys.exit(run_cli(main))
