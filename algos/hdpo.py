"""HDPO: Hindsight Differentiable Policy Optimization for inventory networks (Alvo, Russo, Kanoria, Lee;
arXiv 2306.11246).

Demand is exogenous, so a set of demand scenarios xi^n = (demand paths d^n_{0:T-1}, initial inventory s^n_0)
is drawn once and every policy is back-tested on it. The policy is deterministic, a_t = pi_theta(s_t), and
the simulator (`envs/inventory/simulator.py`) is differentiable in the orders, so the empirical cost

    J_B(theta) = 1 / (B T S) * sum_{n in batch} sum_{t < T} c(s^n_t, pi_theta(s^n_t), d^n_t),
    s^n_{t+1} = f(s^n_t, pi_theta(s^n_t), d^n_t)

(B scenarios, T = --train-periods, S stores; warm-up periods included in the loss) is differentiated
exactly through the whole trajectory (backprop through time; max/min/clip have sub-gradients and the
feasibility layers are smooth almost everywhere), and Adam (default betas) takes a step. No value function,
no stochastic policy. Every --eval-every steps the policy is rolled out without gradients on the dev
scenarios (cost per period per store over periods t >= --dev-ignore); the parameters with the lowest dev
cost are kept (early stopping after --patience steps without improvement, off by default), and that
best-dev policy alone is evaluated on the test scenarios (--test-periods, cost after --test-ignore,
orders rounded to integers for Poisson demand as the authors do). The test set never influences training or
selection; `--test-curve` also records the test cost of the current iterate at every dev check (about a
third of the wall time at the default sizes, so off by default; the final test cost is the same either way).

What the shared flags mean here:
  * `--env`: the benchmark setting (backlog = S1, lost_sales = S2, serial = S3, one_warehouse = S4,
    transshipment = S5, many_warehouses = S6, n_stores_lost = S9); its parameters have their own flags
    (--lead-time, --underage-cost, --stores, ...), and the run directory is runs/hdpo/<instance>/.
  * a step: one simulated period of one training scenario path (a "path-period", the unit PPO's env steps
    are counted in on the gym version of these simulators); one gradient step is --n-envs x --train-periods
    steps and one epoch --n-train x --train-periods. Evaluation rollouts are not counted.
  * `--n-envs`: scenario paths simulated in parallel in one gradient step (the paper's batch size).
  * an evaluation: the dev cost; eval.csv's return is -(dev cost) and --eval-episodes is the number of dev
    scenarios. The headline of summary.json is the test cost of the best-dev policy (lower is better), with
    its gap to the optimum or bound where one is known.
  * `--resume` is exact: the policy, the best-dev policy, Adam, the batch-order generator and the epoch's
    permutation, the early-stopping state and every RNG are checkpointed (the scenarios are regenerated from
    their fixed seeds).

Settings and where they come from (the authors' code and v3 notebooks): Adam with lr 1e-2 for the vanilla
MLP on one store (v3 grid; the v1 config's 3e-3 needs 2.5-3x more gradient steps), 1e-2 serial, 1e-3
transshipment, 3e-4 one-warehouse/many-warehouse, 1e-3 GNN and
symmetry-aware, 0.5 base-stock/echelon-stock, 1.0 capped base-stock; gradient-norm clip 1.0 for the GNN only;
train horizon 50 (30 warm-up), dev 100 (60), test 5000 (3000); 32768 training scenarios for S1-S3 and S5,
8192 for S4/S6; batch 8192 for S1-S3, 1024 for S4-S6; dev check every 10 epochs; early stopping after 500
epochs; up to 20000 epochs. The defaults here are CPU-sized (8192 training and 4096 dev/test scenarios,
test 1000 periods with 300 warm-up, 300 epochs); each flag's help gives the paper's value. Where the two
author versions differ (e.g. the transshipment learning rate: 1e-4 in the v2 config, 1e-3 picked in the v3
finals) the v3 finals' value is used.

    python -m algos.hdpo --env lost_sales --lead-time 4 --underage-cost 9 --policy mlp
    python -m algos.hdpo --env transshipment --stores 10 --policy gnn --device cuda
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Literal, Optional, Sequence

import torch

from classic_rl import UserError
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.session import LoopState, RunSession
from envs.inventory import optimal, settings as st
from envs.inventory.policies import default_grad_clip, default_lr, make_policy
from envs.inventory.simulator import reported_cost, rollout, routing, training_loss

# S1 at the default sizes: one epoch = 8192 scenarios x 50 periods
_EPOCH = 8192 * 50


@dataclasses.dataclass
class HDPOConfig(RunConfig):
    """Train an inventory policy with HDPO (pathwise gradients through the simulator)."""

    env: Literal["backlog", "lost_sales", "serial", "one_warehouse", "transshipment", "many_warehouses",
                 "n_stores_lost"] = "lost_sales"
    """benchmark setting: backlog (S1), lost_sales (S2), serial (S3), one_warehouse (S4), transshipment (S5),
    many_warehouses (S6, the 2x10 instance), n_stores_lost (S9)"""
    total_steps: int = 300 * _EPOCH
    """training budget in path-periods (one simulated period of one training scenario): a gradient step is
    --n-envs x --train-periods of them, an epoch --n-train x --train-periods. Default: 300 epochs of the
    default 8192 scenarios x 50 periods (paper: up to 20000 epochs of 32768 x 50, with early stopping)"""
    n_envs: int = 1024
    """scenario paths simulated in parallel per gradient step: the paper's batch size (8192 for S1-S3, 1024
    for S4-S6)"""
    eval_every: int = 5 * _EPOCH
    """dev evaluation (selects the best-dev policy) every this many path-periods; default every 5 epochs of
    the default sizes (paper: every 10 epochs); 0 = only at the end"""
    eval_episodes: int = 4096
    """dev scenarios per evaluation (paper: 32768); eval.csv's return is -(dev cost)"""
    seed: int = 1
    """seed of the policy initialisation and of the order of training batches; the scenarios use the
    authors' fixed numpy seeds (57 train/dev, 65 test), so every seed sees the same data"""
    checkpoint_every: int = 0
    """save a checkpoint every this many path-periods (0 = only at the end)"""
    torch_threads: int = 1
    """torch CPU threads (0 = torch default). 1 by default: the per-period ops are small, and on a shared
    CPU extra intra-op threads spin and were measured 25x slower (2 threads vs 1, loaded 2-core machine)"""
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
    hidden_sizes: Optional[list[int]] = None
    """MLP hidden widths (None: [32, 32] one store / serial, [256, 256, 256] networks); GNN: its width is
    the first entry (None: 32)"""
    lr: Optional[float] = None
    """Adam learning rate (None: the authors' value for the policy: 1e-2 MLP one store, 1e-2 serial, 1e-3
    transshipment, 3e-4 one warehouse; 0.5 base/echelon stock, 1.0 capped; 1e-3 GNN and symmetry-aware)"""
    grad_clip: Optional[float] = None
    """max global gradient norm (None: 1.0 for the GNN, no clipping otherwise; 0 = no clipping)"""
    n_train: int = 8192
    """training scenarios, reshuffled into batches every epoch (paper: 32768 for S1-S3, S5; 8192 for S4, S6)"""
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
    patience: Optional[int] = None
    """stop after this many path-periods without a dev improvement (None = never; paper: 500 epochs)"""
    time_limit: Optional[float] = None
    """stop training after this many minutes of run time (None = no limit; a timed run is not reproducible)"""
    test_curve: bool = False
    """also evaluate the test set at every dev evaluation (a test-cost curve in eval.csv; not used for
    selection; about a third of the wall time at the default sizes)"""
    round_test: Literal["auto", "yes", "no"] = "auto"
    """round test orders to integers (auto: yes for Poisson demand, as the authors)"""
    reference: bool = True
    """compute the optimum / lower bound of the instance and report the gap"""
    target_gap: Optional[float] = None
    """stop once the best-dev policy is within this many % of the optimum / bound on dev AND on test (time
    to target, benchmarks.hdpo_time_to_gap). The test set is rolled out for the best-dev policy only when a
    new best dev cost is within the gap, so it decides when training stops, never which policy is kept"""

    def validate(self) -> None:
        super().validate()
        for name in ("n_train", "n_test", "train_periods", "dev_periods", "test_periods", "stores"):
            require(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be positive")
        require(self.n_envs <= self.n_train, f"--n-envs ({self.n_envs}) must not exceed --n-train ({self.n_train})")
        for periods, ignore in (("train_periods", "train_ignore"), ("dev_periods", "dev_ignore"),
                                ("test_periods", "test_ignore")):
            require(0 <= getattr(self, ignore) < getattr(self, periods),
                    f"--{ignore.replace('_', '-')} must be in [0, --{periods.replace('_', '-')})")
        require(self.lead_time >= (1 if self.env in ("lost_sales", "n_stores_lost") else 0),
                "--lead-time must be >= 1 for lost-sales settings and >= 0 otherwise")
        require(self.underage_cost > 0, "--underage-cost must be positive")
        require(self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(self.grad_clip is None or self.grad_clip >= 0, f"--grad-clip must be >= 0, got {self.grad_clip}")
        require(self.patience is None or self.patience > 0, f"--patience must be positive, got {self.patience}")
        require(self.time_limit is None or self.time_limit > 0, f"--time-limit must be positive")
        require(self.target_gap is None or (self.target_gap > 0 and self.reference),
                "--target-gap must be positive and needs the reference (not --no-reference)")
        require(not self.hidden_sizes or min(self.hidden_sizes) > 0, "--hidden-sizes must be positive")


def instance_name(cfg: HDPOConfig) -> str:
    if cfg.env in ("backlog", "lost_sales"):
        return f"{cfg.env}-L{cfg.lead_time}-p{cfg.underage_cost:g}"
    if cfg.env == "serial":
        return f"serial{cfg.locations}-L{cfg.lead_time}-p{cfg.underage_cost:g}"
    if cfg.env == "transshipment":
        return f"transshipment-S{cfg.stores}-L{cfg.store_lead_time}-p{cfg.underage_cost:g}-rho{cfg.correlation:g}"
    if cfg.env == "n_stores_lost":
        return f"n_stores_lost-S{cfg.stores}-L{cfg.lead_time}-p{cfg.underage_cost:g}"
    return f"{cfg.env}-S{cfg.stores}"


def reference_cost(cfg: HDPOConfig, net: st.Network) -> tuple[Optional[float], str]:
    """(value, kind) of the optimum or bound the test cost is compared with (None where none is known)."""
    if cfg.env == "backlog":
        return optimal.backlog_base_stock(cfg.lead_time, cfg.underage_cost)[1], "optimum (closed form)"
    if cfg.env in ("lost_sales", "n_stores_lost") and cfg.lead_time <= 4:
        return optimal.lost_sales_rvi(cfg.lead_time, cfg.underage_cost), "optimum (value iteration)"
    if cfg.env == "transshipment":
        return optimal.transshipment_lower_bound(net.demand_std.double().numpy(), cfg.correlation,
                                                 cfg.store_lead_time, cfg.underage_cost), "lower bound"
    if cfg.env == "serial" and cfg.locations == 4 and (cfg.lead_time, cfg.underage_cost) in SERIAL_REFERENCE:
        return SERIAL_REFERENCE[(cfg.lead_time, cfg.underage_cost)], "authors' echelon-stock reference"
    return None, "none known"


# S3 4-location reference: the authors' trained echelon-stock policy's test cost (8192 scenarios; their v3
# notebook), by (store lead time L, underage cost p). Echelon-stock is the optimal class for this system.
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


def epoch_budget(n_train: int, n_epochs: int, eval_every_epochs: int, patience_epochs: Optional[int] = None,
                 train_periods: int = 50) -> dict:
    """--total-steps, --eval-every and --patience (path-periods) for a budget written in epochs, as the
    paper's is (one epoch = n_train scenarios x train_periods periods)."""
    epoch = n_train * train_periods
    return {"n_train": n_train, "train_periods": train_periods, "total_steps": n_epochs * epoch,
            "eval_every": eval_every_epochs * epoch,
            "patience": None if patience_epochs is None else patience_epochs * epoch}


# ---------------------------------------------------------------- training loop
@dataclasses.dataclass
class HDPOLoop(LoopState):
    """Loop variables a checkpoint holds besides the policies, Adam and the batch-order generator."""

    order: torch.Tensor          # this epoch's permutation of the training scenarios
    loss_sum: torch.Tensor       # this epoch's sums of the training loss / reported train cost (on the device)
    cost_sum: torch.Tensor
    next_batch: int = 0          # index of the next batch of `order` (0 = a new epoch starts)
    epoch: int = 0
    best_dev: float = math.inf
    best_step: int = 0
    last_eval_step: int = -1
    stopped_early: str = ""      # why training stopped before --total-steps ("" = it did not)
    best_test: Optional[float] = None   # test cost of the best-dev policy where already computed (--target-gap)
    target_wall_time: Optional[float] = None   # run wall time (s) when --target-gap was reached


def _stopped_early(run_dir: str) -> str:
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return ""
    return summary.get("stopped_early") or "" if summary.get("status") == "done" else ""


def train(cfg: HDPOConfig, argv: Sequence[str] | None = None) -> dict:
    """Train; return summary.json's content plus `run_dir`."""
    run = RunSession(cfg, "hdpo", argv=argv, steps_name="path-periods")
    cfg, device = run.cfg, run.device
    run.env_name = instance_name(cfg)
    if cfg.resume and _stopped_early(cfg.resume):
        raise UserError(f"--resume: {cfg.resume} stopped early ({_stopped_early(cfg.resume)}); it cannot "
                        f"continue (--patience and --time-limit are part of the run's config)")
    net = st.make_network(cfg.env, cfg.lead_time, cfg.underage_cost, cfg.stores, cfg.locations,
                          cfg.correlation, cfg.store_lead_time)
    reference, reference_kind = reference_cost(cfg, net) if cfg.reference else (None, "not computed")
    reference = None if reference is None else float(reference)
    train_set, dev_set = st.make_train_dev(net, cfg.n_train, cfg.eval_episodes, cfg.train_periods,
                                           cfg.train_ignore, cfg.dev_periods, cfg.dev_ignore, device=device)
    test_set = st.make_test(net, cfg.n_test, cfg.test_periods, cfg.test_ignore, device=device)
    net = net.to(device)
    route = routing(net)
    try:
        policy = make_policy(cfg.policy, net, cfg.hidden_sizes).to(device)
    except ValueError as err:
        raise UserError(f"--policy {cfg.policy} does not fit --env {cfg.env}: {err}") from err
    best_policy = copy.deepcopy(policy)
    lr = cfg.lr if cfg.lr is not None else default_lr(cfg.policy, net)
    clip = cfg.grad_clip if cfg.grad_clip is not None else default_grad_clip(cfg.policy)
    round_test = cfg.round_test == "yes" or (cfg.round_test == "auto" and net.demand["kind"] == "poisson")
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    zero = torch.zeros((), device=device)
    loop = HDPOLoop(order=torch.empty(0, dtype=torch.long, device=device), loss_sum=zero, cost_sum=zero)
    batches_per_epoch = cfg.n_train // cfg.n_envs
    per_step = cfg.n_envs * cfg.train_periods
    run.log_interval = batches_per_epoch  # one metrics row per epoch (epoch means)

    def gap(cost: float) -> Optional[float]:
        return 100 * (cost - reference) / reference if reference else None

    def dev_check() -> dict:
        dev = evaluate(net, policy, dev_set, route)
        if dev < loop.best_dev:
            loop.best_dev, loop.best_step, loop.best_test = dev, run.step, None
            best_policy.load_state_dict(policy.state_dict())
        loop.last_eval_step = run.step
        out = {"returns": [-dev], "dev_cost": dev, "dev_gap_pct": gap(dev), "best_dev_cost": loop.best_dev}
        if cfg.target_gap and loop.best_test is None and gap(loop.best_dev) <= cfg.target_gap:
            loop.best_test = evaluate(net, best_policy, test_set, route, round_test)
            out["best_test_cost"] = loop.best_test
            if gap(loop.best_test) <= cfg.target_gap and not loop.stopped_early:
                loop.target_wall_time = run.logger.wall_time()
                loop.stopped_early = (f"--target-gap {cfg.target_gap:g}% reached (dev gap {gap(loop.best_dev):.3f}%, "
                                      f"test gap {gap(loop.best_test):.3f}%)")
        if cfg.test_curve:
            test = evaluate(net, policy, test_set, route, round_test)
            out.update(test_cost=test, test_gap_pct=gap(test))
        return out

    run.steps_per_update(per_step, "gradient step")
    print(f"reference: {reference_kind} = {reference}")
    with run:
        run.track(policy=policy, best_policy=best_policy, optimizer=opt, order_rng=order_rng, loop=loop,
                  evaluate=dev_check)
        while run.step < cfg.total_steps and not loop.stopped_early:
            if loop.next_batch == 0:
                loop.order = torch.randperm(cfg.n_train, generator=order_rng).to(device)
                loop.epoch += 1
                loop.loss_sum, loop.cost_sum = zero, zero
            b = loop.next_batch
            batch = train_set.subset(loop.order[b * cfg.n_envs:(b + 1) * cfg.n_envs])
            loss, cost = hdpo_loss(net, policy, batch, route)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), clip)
            opt.step()
            loop.loss_sum = loop.loss_sum + loss.detach()   # tensors: read back only on logging steps
            loop.cost_sum = loop.cost_sum + cost
            loop.next_batch = (b + 1) % batches_per_epoch
            run.advance(per_step, epoch=loop.epoch, train_loss=loop.loss_sum / (b + 1),
                        train_cost=loop.cost_sum / (b + 1))
            if loop.stopped_early:
                pass   # --target-gap reached in this step's dev check
            elif loop.last_eval_step == run.step and cfg.patience and run.step - loop.best_step >= cfg.patience:
                loop.stopped_early = (f"no dev improvement in {run.step - loop.best_step} path-periods "
                                      f"(--patience {cfg.patience})")
            elif cfg.time_limit and run.logger.wall_time() > 60 * cfg.time_limit:
                loop.stopped_early = f"--time-limit {cfg.time_limit:g} min reached"
        if loop.last_eval_step != run.step:
            run.evaluate()  # the last iterate is a candidate too
        test = loop.best_test if loop.best_test is not None else evaluate(net, best_policy, test_set, route,
                                                                            round_test)
        if not math.isfinite(test) or not loop.best_dev / 1.5 <= test <= 1.5 * loop.best_dev:
            run.warn(f"the test cost {test:.4g} of the best-dev policy is far from its dev cost "
                     f"{loop.best_dev:.4g} after {run.step} path-periods: the policy does not hold over the "
                     f"{cfg.test_periods}-period test horizon (dev: {cfg.dev_periods} periods); train longer")
        ref = "-" if reference is None else f"{reference:.4f}"
        print(f"test cost {test:.4f}  {reference_kind} {ref}  gap "
              f"{'-' if gap(test) is None else format(gap(test), '.3f')}%  ({run.iteration} gradient steps)"
              + (f"; stopped early: {loop.stopped_early}" if loop.stopped_early else ""))
        run.finish(headline=("test_cost", test), higher_is_better=False, final_eval=True, test_cost=test,
                   test_gap_pct=gap(test), best_dev_cost=loop.best_dev, reference=reference,
                   reference_kind=reference_kind, instance=instance_name(cfg), policy=cfg.policy,
                   grad_steps=run.iteration, epochs=loop.epoch, rounded_test_actions=round_test, lr=lr,
                   grad_clip=clip, stopped_early=loop.stopped_early or None,
                   target_wall_time=loop.target_wall_time)
    summary = json.loads((run.path / "summary.json").read_text())
    return {**summary, "run_dir": str(run.path)}


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(HDPOConfig, argv, prog="python -m algos.hdpo", description=__doc__)
    summary = train(cfg, argv)
    from analysis.plot import finish_run
    finish_run(Path(summary["run_dir"]))
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
