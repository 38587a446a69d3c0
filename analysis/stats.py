"""Few-seed statistics: IQM, percentile-bootstrap confidence intervals, curves on a common grid."""
from __future__ import annotations

from typing import Callable

import numpy as np


def iqm(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of values along `axis` (rliable's definition)."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    if hi <= lo:
        return np.take(x, [n // 2], axis=axis).mean(axis=axis)
    return np.take(x, range(lo, hi), axis=axis).mean(axis=axis)


def bootstrap_ci(samples: np.ndarray, statistic: Callable[..., np.ndarray] = np.mean, n_boot: int = 2000,
                 conf: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and percentile-bootstrap CI of `statistic` over axis 0 (seeds).

    `samples` has shape [n_seeds, ...]; returns (point, low, high), each of shape samples.shape[1:].
    """
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[0]
    point = statistic(samples, axis=0)
    if n < 2:
        return point, point.copy(), point.copy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.stack([statistic(samples[i], axis=0) for i in idx])
    alpha = (1 - conf) / 2
    return point, np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)


def curves_on_grid(xs: list[np.ndarray], ys: list[np.ndarray], n_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate several (x, y) curves onto one grid over their common x range -> (grid, [n_curves, n_points])."""
    xs = [np.asarray(x, float) for x in xs]
    ys = [np.asarray(y, float) for y in ys]
    lo = max(x.min() for x in xs)
    hi = min(x.max() for x in xs)
    grid = np.linspace(lo, hi, n_points) if hi > lo else np.array([lo])
    return grid, np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys)])


def steps_to_threshold(x: np.ndarray, y: np.ndarray, target: float, higher_is_better: bool = True) -> float:
    """First x at which y reaches `target` (np.inf if never: a censored observation, not a dropped one)."""
    y = np.asarray(y, float)
    hit = y >= target if higher_is_better else y <= target
    where = np.flatnonzero(hit)
    return float(np.asarray(x, float)[where[0]]) if where.size else float("inf")
