"""A campaign / base-stock heuristic for lot-sizing: an absolute yardstick for the learned policies.

Rule, per period, machines in index order (so later machines see what earlier ones will add):
* a machine set up for an item it can make keeps producing it (no setup cost) while that item's
  projected stock is below the order-up-to level `order_up_to` (a production campaign);
* otherwise it switches to the item, among those it can make, with the lowest projected stock, if that
  stock is below the reorder point `reorder_point`; if no item needs it, it idles.
It reads the true state (stock and setups) of a BatchedLotSizing, so it is not limited by what the
RL observation shows. `tune` picks (reorder_point, order_up_to) by a small grid search on its own seeds.
"""
from __future__ import annotations

import itertools

import torch

from envs.lotsizing.batched import BatchedLotSizing


def campaign_action(env: BatchedLotSizing, reorder_point: float, order_up_to: float) -> torch.Tensor:
    """Actions [B, M] for the current state of every plant in `env`."""
    projected = env.inventory.clone().float()                   # [B, N]
    actions = torch.zeros_like(env.setups)
    rows = torch.arange(env.n_plants, device=env.device)
    for m in range(env.n_machines):                              # M is small; plants stay vectorized
        rate = env.production[m, 1:].float()                     # [N]
        current = env.setups[:, m]
        current_rate = env.production[m, current].float()
        current_stock = projected[rows, (current - 1).clamp(min=0)]
        keep = (current > 0) & (current_rate > 0) & (current_stock < order_up_to)
        stock_if_feasible = torch.where(rate > 0, projected, torch.inf)
        lowest_stock, lowest_item = stock_if_feasible.min(1)
        switch = ~keep & (lowest_stock < reorder_point)
        choice = torch.where(keep, current, torch.where(switch, lowest_item + 1, 0))
        actions[:, m] = choice
        gain = torch.where(choice > 0, env.production[m, choice].float(), 0.0)
        projected[rows, (choice - 1).clamp(min=0)] += gain
    return actions


@torch.no_grad()
def evaluate(env: BatchedLotSizing, reorder_point: float, order_up_to: float, seed: int) -> torch.Tensor:
    """Return of one episode for every plant of `env` (fresh random starts drawn from `seed`)."""
    env.reset(seed=seed)
    total = torch.zeros(env.n_plants, device=env.device)
    for _ in range(env.horizon):
        _, reward, _, _, _ = env.step(campaign_action(env, reorder_point, order_up_to))
        total += reward
    return total


def tune(env: BatchedLotSizing, seed: int, reorder_points=(4, 8, 16, 24, 32),
         order_up_tos=(30, 50, 70, 90)) -> tuple[float, float, float]:
    """Grid search (reorder_point, order_up_to) on one batch; returns (best mean return, s, S)."""
    best = (-float("inf"), 0.0, 0.0)
    for s, big_s in itertools.product(reorder_points, order_up_tos):
        if big_s <= s:
            continue
        score = evaluate(env, s, big_s, seed).mean().item()
        best = max(best, (score, float(s), float(big_s)))
    return best
