"""HDPO: Hindsight Differentiable Policy Optimization for inventory networks (Alvo, Russo, Kanoria, Lee;
arXiv 2306.11246). Spec: shared/specs/hdpo_inventory.md, 1(c).1.

Demand is exogenous, so a batch of demand scenarios is drawn once and every policy is back-tested on it.
The simulator is differentiable in the orders, so the total cost of a batch is differentiated through the
whole trajectory (backprop through time) and Adam takes a step: no value function, no stochastic policy.
Dev cost (warm-up excluded) picks the best parameters (early stopping); they are restored for the test.

    python -m algos.hdpo --setting lost_sales --lead-time 4 --underage-cost 9 --policy mlp
    python -m algos.hdpo --setting transshipment --stores 10 --policy gnn --device cuda

Defaults are CPU-sized; the paper's sizes are in each flag's help (e.g. --n-train 32768 --batch-size 8192
--test-periods 5000 --test-ignore 3000 for S1/S2).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from typing import Literal, Optional

import torch

from classic_rl import UserError
from classic_rl.config import parse_config, require, run_cli, to_dict
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import resolve_device, seed_everything, set_torch_threads
from envs.inventory.policies import default_grad_clip, default_lr, make_policy
from envs.inventory import optimal, settings as st
from envs.inventory.simulator import reported_cost, rollout, routing, training_loss


@dataclasses.dataclass
class HDPOConfig:
    """Train an inventory policy with HDPO (pathwise gradients through the simulator)."""

    setting: Literal["backlog", "lost_sales", "serial", "one_warehouse", "transshipment", "many_warehouses",
                     "n_stores_lost"] = "lost_sales"
    """benchmark: backlog (S1), lost_sales (S2), serial (S3), one_warehouse (S4), transshipment (S5),
    many_warehouses (S6, the 2x10 instance), n_stores_lost (S9)"""
    lead_time: int = 4
    """store lead time L (backlog, lost_sales, serial, n_stores_lost)"""
    underage_cost: float = 9.0
    """underage cost p (all settings except one_warehouse / many_warehouses, which sample p per store)"""
    stores: int = 5
    """number of stores (one_warehouse, transshipment, n_stores_lost)"""
    locations: int = 4
    """number of locations of the serial chain (2..7)"""
    store_lead_time: int = 2
    """common store lead time L_s (transshipment)"""
    correlation: float = 0.5
    """demand correlation between stores (one_warehouse, transshipment)"""
    policy: Literal["mlp", "base_stock", "capped_base_stock", "echelon_stock", "symmetry_aware", "gnn"] = "mlp"
    """policy class (base_stock: stores without warehouse; echelon_stock: serial; symmetry_aware: one warehouse)"""
    hidden: Optional[list[int]] = None
    """MLP hidden widths (default per setting: [32,32] one store/serial, [256,256,256] networks); GNN: width"""
    lr: float = 0.0
    """Adam learning rate (0 = the spec default of the policy: 3e-3 MLP one store, 0.5 base stock, 1e-3 GNN...)"""
    grad_clip: float = -1.0
    """max gradient norm (-1 = default: 1.0 for GNN, none otherwise; 0 = none)"""
    n_train: int = 8192
    """training scenarios (paper: 32768 for S1-S3, S5; 8192 for S4, S6)"""
    batch_size: int = 1024
    """scenarios per gradient step (paper: 8192 for S1-S3, 1024 for S4-S6)"""
    n_dev: int = 4096
    """dev scenarios for early stopping (paper: 32768)"""
    n_test: int = 4096
    """test scenarios (paper: 32768)"""
    train_periods: int = 50
    """periods per training rollout (paper 50)"""
    train_ignore: int = 30
    """warm-up periods excluded from the reported train cost (they stay in the loss; paper 30)"""
    dev_periods: int = 100
    """dev horizon (paper 100)"""
    dev_ignore: int = 60
    """dev warm-up (paper 60)"""
    test_periods: int = 1000
    """test horizon (paper 5000)"""
    test_ignore: int = 300
    """test warm-up (paper 3000)"""
    epochs: int = 300
    """passes over the training scenarios (paper: up to 20000 with early stopping)"""
    dev_every: int = 5
    """evaluate dev (and test curve) every this many epochs"""
    patience: int = 500
    """stop after this many epochs without a dev improvement"""
    time_limit: float = 0.0
    """stop training after this many minutes (0 = no limit)"""
    test_curve: bool = True
    """also evaluate the test set at every dev evaluation (for the test cost curve; not used for selection)"""
    round_test: Literal["auto", "yes", "no"] = "auto"
    """round test orders to integers (auto: yes for Poisson demand, as the authors)"""
    reference: bool = True
    """compute the optimum / lower bound of the instance and report the gap"""
    seed: int = 1
    """seed for torch (policy init, batch order); scenarios use the authors' fixed numpy seeds"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device of the simulator and the policy"""
    run_dir: str = "runs"
    """root folder; the run goes to runs/hdpo/<instance>/<seed>-<timestamp>/"""
    torch_threads: int = 1
    """torch CPU threads (0 = torch default). 1 by default: the per-period ops are small, and on a shared
    CPU extra intra-op threads spin and were measured 25x slower (2 threads vs 1, loaded 2-core machine)"""
    progress: bool = True
    """show a progress bar"""

    def validate(self) -> None:
        for name in ("n_train", "batch_size", "n_dev", "n_test", "epochs", "dev_every", "patience",
                     "train_periods", "dev_periods", "test_periods", "stores"):
            require(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be positive")
        require(self.batch_size <= self.n_train, "--batch-size must not exceed --n-train")
        for periods, ignore in (("train_periods", "train_ignore"), ("dev_periods", "dev_ignore"),
                                ("test_periods", "test_ignore")):
            require(0 <= getattr(self, ignore) < getattr(self, periods),
                    f"--{ignore.replace('_', '-')} must be in [0, --{periods.replace('_', '-')})")
        require(self.lead_time >= (1 if self.setting in ("lost_sales", "n_stores_lost") else 0),
                "--lead-time must be >= 1 for lost-sales settings and >= 0 otherwise")
        require(self.underage_cost > 0, "--underage-cost must be positive")
        require(self.lr >= 0, "--lr must be >= 0")


def instance_name(cfg: HDPOConfig) -> str:
    if cfg.setting in ("backlog", "lost_sales"):
        return f"{cfg.setting}-L{cfg.lead_time}-p{cfg.underage_cost:g}"
    if cfg.setting == "serial":
        return f"serial{cfg.locations}-L{cfg.lead_time}-p{cfg.underage_cost:g}"
    if cfg.setting == "transshipment":
        return f"transshipment-S{cfg.stores}-L{cfg.store_lead_time}-p{cfg.underage_cost:g}-rho{cfg.correlation:g}"
    if cfg.setting == "n_stores_lost":
        return f"n_stores_lost-S{cfg.stores}-L{cfg.lead_time}-p{cfg.underage_cost:g}"
    return f"{cfg.setting}-S{cfg.stores}"


def reference_cost(cfg: HDPOConfig, net: st.Network) -> tuple[Optional[float], str]:
    """(value, kind) of the optimum or bound the test cost is compared with (None where none is known)."""
    if cfg.setting == "backlog":
        return optimal.backlog_base_stock(cfg.lead_time, cfg.underage_cost)[1], "optimum (closed form)"
    if cfg.setting in ("lost_sales", "n_stores_lost") and cfg.lead_time <= 4:
        return optimal.lost_sales_rvi(cfg.lead_time, cfg.underage_cost), "optimum (value iteration)"
    if cfg.setting == "transshipment":
        return optimal.transshipment_lower_bound(net.demand_std.double().numpy(), cfg.correlation,
                                                 cfg.store_lead_time, cfg.underage_cost), "lower bound"
    if cfg.setting == "serial" and cfg.locations == 4 and (cfg.lead_time, cfg.underage_cost) in SERIAL_REFERENCE:
        return SERIAL_REFERENCE[(cfg.lead_time, cfg.underage_cost)], "authors' echelon-stock reference"
    return None, "none known"


# Spec 1(e), S3 4-location reference (authors' trained echelon-stock test cost) by (L_store, p).
SERIAL_REFERENCE = {(L, float(p)): v for L, row in zip((1, 2, 3, 4), (
    (6.89, 8.36, 9.59, 10.68), (7.59, 9.25, 10.65, 11.89), (8.20, 10.02, 11.57, 12.94),
    (8.75, 10.72, 12.40, 13.88))) for p, v in zip((4, 9, 19, 39), row)}


# ---------------------------------------------------------------- estimator (pure functions of tensors)
def hdpo_loss(net, policy, batch, route) -> tuple[torch.Tensor, torch.Tensor]:
    """Pathwise objective of one batch: (training loss over all periods, reported cost after warm-up).
    The loss is the exact mean cost per period per store; its autograd gradient is the HDPO estimator."""
    costs = rollout(net, policy, batch, route)
    return training_loss(net, costs), reported_cost(net, costs.detach(), batch.ignore_periods)


@torch.no_grad()
def evaluate(net, policy, scen, route, round_actions=False, chunk: int = 8192) -> float:
    """Reported cost (per period per store, warm-up excluded) of a no-grad rollout, in chunks of paths."""
    total = 0.0
    for start in range(0, scen.n, chunk):
        part = scen.subset(slice(start, start + chunk))
        costs = rollout(net, policy, part, route, round_actions=round_actions)
        total += reported_cost(net, costs, scen.ignore_periods).item() * part.n
    return total / scen.n


# ---------------------------------------------------------------- training loop
def train(cfg: HDPOConfig) -> dict:
    seed_everything(cfg.seed)
    set_torch_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    net = st.make_network(cfg.setting, cfg.lead_time, cfg.underage_cost, cfg.stores, cfg.locations,
                          cfg.correlation, cfg.store_lead_time)
    reference, reference_kind = reference_cost(cfg, net) if cfg.reference else (None, "not computed")
    reference = None if reference is None else float(reference)
    train_set, dev_set = st.make_train_dev(net, cfg.n_train, cfg.n_dev, cfg.train_periods, cfg.train_ignore,
                                           cfg.dev_periods, cfg.dev_ignore, device=device)
    test_set = st.make_test(net, cfg.n_test, cfg.test_periods, cfg.test_ignore, device=device)
    net = net.to(device)
    route = routing(net)
    try:
        policy = make_policy(cfg.policy, net, cfg.hidden).to(device)
    except ValueError as err:
        raise UserError(f"--policy {cfg.policy} does not fit --setting {cfg.setting}: {err}") from err
    lr = cfg.lr or default_lr(cfg.policy, net)
    clip = default_grad_clip(cfg.policy) if cfg.grad_clip < 0 else cfg.grad_clip
    round_test = cfg.round_test == "yes" or (cfg.round_test == "auto" and net.demand["kind"] == "poisson")
    opt = torch.optim.Adam(policy.parameters(), lr=lr)

    name = instance_name(cfg)
    logger = RunLogger.create(cfg.run_dir, "hdpo", name, cfg.seed, to_dict(cfg), str(device))
    print(f"run dir: {logger.path}\nreference: {reference_kind} = {reference}")
    progress = Progress(cfg.epochs, enabled=cfg.progress, desc=f"hdpo {name}")
    gap = (lambda c: 100 * (c - reference) / reference) if reference else (lambda c: float("nan"))
    best_dev, best_state, last_improve, steps = math.inf, copy.deepcopy(policy.state_dict()), 0, 0
    start = time.time()
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(cfg.n_train, device=device)
        losses, reported = [], []
        for b in range(0, cfg.n_train - cfg.batch_size + 1, cfg.batch_size):
            batch = train_set.subset(order[b:b + cfg.batch_size])
            loss, cost = hdpo_loss(net, policy, batch, route)
            if not torch.isfinite(loss):
                raise UserError(f"non-finite training loss {loss.item()} at epoch {epoch}, step {steps}")
            opt.zero_grad()
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), clip)
            opt.step()
            steps += 1
            losses.append(loss.detach())
            reported.append(cost)
        train_loss, train_cost = torch.stack(losses).mean().item(), torch.stack(reported).mean().item()
        timed_out = cfg.time_limit > 0 and time.time() - start > 60 * cfg.time_limit
        if epoch % cfg.dev_every == 0 or epoch == cfg.epochs or timed_out:
            dev = evaluate(net, policy, dev_set, route)
            if dev < best_dev:
                best_dev, best_state, last_improve = dev, copy.deepcopy(policy.state_dict()), epoch
            test = evaluate(net, policy, test_set, route, round_test) if cfg.test_curve else float("nan")
            env_steps = epoch * cfg.n_train * cfg.train_periods
            logger.log(env_steps, epoch=epoch, grad_steps=steps, train_loss=train_loss, train_cost=train_cost,
                       dev_cost=dev, test_cost=test, dev_gap_pct=gap(dev), test_gap_pct=gap(test))
            logger.log_eval(env_steps, [-dev], dev_cost=dev, test_cost=test)
            progress.update(cfg.dev_every if epoch % cfg.dev_every == 0 else epoch % cfg.dev_every,
                            dev=dev, gap=gap(dev))
            if epoch - last_improve >= cfg.patience or timed_out:
                break
    progress.close()
    policy.load_state_dict(best_state)
    test = evaluate(net, policy, test_set, route, round_test)
    summary = {"instance": name, "policy": cfg.policy, "test_cost": test, "best_dev_cost": best_dev,
               "reference": reference, "reference_kind": reference_kind, "test_gap_pct": gap(test),
               "epochs": epoch, "grad_steps": steps, "train_seconds": round(time.time() - start, 2),
               "rounded_test_actions": round_test, "lr": lr, "device": str(device)}
    logger.write_summary(summary)
    logger.close()
    print(f"test cost {test:.4f}  {reference_kind} {reference if reference is None else round(reference, 4)}  "
          f"gap {gap(test):.3f}%  ({steps} gradient steps, {summary['train_seconds']} s)")
    return {**summary, "run_dir": str(logger.path)}


def main(argv=None) -> None:
    cfg = parse_config(HDPOConfig, argv, prog="python -m algos.hdpo")
    train(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
