"""Inventory-network throughput: simulated periods x paths per second, training and evaluation.

For each case (S2 one store with an MLP, S4 50 stores with an MLP and with the symmetry-aware net, S5
10-store transshipment with the GNN) it times
  * evaluation: a no-grad rollout of `--periods` periods over `--batches` paths;
  * training: one HDPO step on the same batch (rollout, backward through time, Adam step);
and prints periods x paths per second for both. CPU runs use `--torch-threads` threads (1 by default,
HDPO's default). Then it trains HDPO on S4 (50 stores, the paper's 8192 training scenarios) for one epoch
in a child process and reports that process's peak resident memory (VmHWM: its own address space). The last line is always the S5-GNN
training figure on CPU, `s5_gnn_train_periods_paths_per_s=<value>`.

    python -m benchmarks.inventory_throughput                       # CPU, one thread, 1024 paths
    python -m benchmarks.inventory_throughput --devices cpu cuda --batches 1024 8192
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import torch

from classic_rl import UserError
from classic_rl.config import parse_config, run_cli
from envs.inventory import settings as st
from envs.inventory.policies import make_policy
from envs.inventory.simulator import rollout, routing, training_loss

# (label, setting, policy, stores)
CASES = [("S2", "lost_sales", "mlp", 1), ("S4", "one_warehouse", "mlp", 50),
         ("S4", "one_warehouse", "symmetry_aware", 50), ("S5", "transshipment", "gnn", 10)]


@dataclasses.dataclass
class BenchConfig:
    """Inventory simulator + policy throughput benchmark (periods x paths per second)."""

    devices: list[str] = dataclasses.field(default_factory=lambda: ["cpu"])
    """devices to measure (cuda is skipped with a note when absent)"""
    batches: list[int] = dataclasses.field(default_factory=lambda: [1024])
    """numbers of parallel paths (1024: the paper's batch for S4-S6)"""
    periods: int = 50
    """periods per rollout (the paper's training horizon)"""
    repeats: int = 2
    """timed repetitions (after one warm-up)"""
    memory: bool = True
    """also report the peak resident memory of one epoch of HDPO training on S4 (8192 scenarios)"""
    memory_policy: str = "mlp"
    """policy of that memory run"""
    torch_threads: int = 1
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
    """(evaluation, training) periods x paths per second of one policy on one network."""
    net = st.make_network(setting, stores=stores)
    scen, _ = st.make_train_dev(net, batch, 1, periods, 0, periods, 0, device=device)
    net = net.to(device)
    route = routing(net)
    torch.manual_seed(0)
    policy = make_policy(kind, net).to(device)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-4)

    def evaluate():
        with torch.no_grad():
            rollout(net, policy, scen, route)

    def train_step():
        opt.zero_grad()
        training_loss(net, rollout(net, policy, scen, route)).backward()
        opt.step()

    work = batch * periods
    return work / timed(evaluate, repeats, device), work / timed(train_step, repeats, device)


# Peak RSS is VmHWM of the child's own address space: getrusage's ru_maxrss is NOT used, because on Linux it
# survives fork + exec, so a child started from this (by then large) benchmark process reported the parent's
# peak (3.5 GB on S4 where the training itself peaks at 1.5 GB).
MEMORY_RUN = """
import json, resource, sys
from algos.hdpo import HDPOConfig, train
from envs.inventory import settings as st
if len(sys.argv) > 2:
    st.sample_demand.__defaults__ = (int(sys.argv[2]),)   # scenario chunk (a huge one = one numpy draw)
def peak_mib():
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cfg = HDPOConfig(**json.loads(sys.argv[1]))
summary = train(cfg)
print("RESULT " + json.dumps({"peak_rss_mib": peak_mib(), "train_seconds": summary["wall_time"]}))
"""


def training_memory(policy: str, threads: int, run_dir: str = "runs/benchmarks", chunk: int | None = None) -> dict:
    """Peak RSS of one HDPO epoch on S4 (50 stores, 8192 training scenarios, batch 1024, dev 8192 x 100),
    measured in a fresh child process so that nothing of this benchmark counts. The test set is kept small
    (1024 x 200): it is only evaluated once and is not what this figure is about."""
    cfg = dict(env="one_warehouse", stores=50, policy=policy, n_train=8192, n_envs=1024, eval_episodes=8192,
               n_test=1024, test_periods=200, test_ignore=100, total_steps=8192 * 50, eval_every=0,
               progress=False, device="cpu", torch_threads=threads, reference=False, run_dir=run_dir)
    extra = [] if chunk is None else [str(chunk)]
    out = subprocess.run([sys.executable, "-c", MEMORY_RUN, json.dumps(cfg), *extra], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main(argv=None) -> None:
    cfg = parse_config(BenchConfig, argv, prog="python -m benchmarks.inventory_throughput")
    for name in cfg.devices:
        if name not in ("cpu", "cuda"):
            raise UserError(f"unknown device {name!r}; valid: cpu, cuda")
    if "cpu" not in cfg.devices:
        cfg.devices = ["cpu"] + cfg.devices      # the last line is the CPU S5-GNN training figure
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
        for label, setting, kind, stores in CASES:
            for batch in cfg.batches:
                ev, tr = measure(setting, kind, stores, batch, cfg.periods, cfg.repeats, torch.device(device))
                results[(device, label, kind, batch)] = (ev, tr)
                print(f"| {device} | {label} {setting} | {kind} | {stores} | {batch} | {ev:,.0f} | {tr:,.0f} |",
                      flush=True)
    if len(devices) == 2:
        for label, setting, kind, stores in CASES:
            for batch in cfg.batches:
                cpu, gpu = results[("cpu", label, kind, batch)], results[("cuda", label, kind, batch)]
                print(f"speed-up cuda/cpu {label}-{kind} ({stores} stores, {batch} paths): "
                      f"eval {gpu[0] / cpu[0]:.1f}x, train {gpu[1] / cpu[1]:.1f}x")
    if cfg.memory:
        mem = training_memory(cfg.memory_policy, max(cfg.torch_threads, 0))
        print(f"S4 (50 stores, {cfg.memory_policy}) HDPO training, 8192 scenarios, one epoch + dev 8192 x 100: "
              f"peak RSS {mem['peak_rss_mib']:.0f} MiB ({mem['train_seconds']} s)")
        print(f"s4_{cfg.memory_policy}_train_peak_rss_mib={mem['peak_rss_mib']:.0f}")
    s5 = [results[k][1] for k in results if k[0] == "cpu" and k[1] == "S5"]
    print(f"s5_gnn_train_periods_paths_per_s={s5[0]:.0f}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
