"""Real-data settings S7/S8: load the Favorita weekly-sales tensor from a user-given path.

The authors ship `weekly_sales.pt` (about 4 MB) in their repository; it cannot be downloaded here, so the
path is a user input. Expected format: a torch tensor (or a dict holding one under "weekly_sales") of
non-negative unit sales shaped (samples, weeks) for one store per sample (S7) or (samples, stores, weeks)
(S8). Samples are split by TIME WINDOW (spec S7): train weeks [0, 111), dev [88, 141), test [118, 171);
the first `history` (16) weeks of each window are observed history, simulation starts after them.
"""
from __future__ import annotations

from pathlib import Path

import torch

from classic_rl import UserError

WINDOWS = {"train": (0, 111), "dev": (88, 141), "test": (118, 171)}
HISTORY = 16


def load_weekly_sales(path: str | Path) -> torch.Tensor:
    """Return weekly sales as float32 (samples, stores, weeks); clear UserError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"real-data file {path} does not exist: download weekly_sales.pt from the authors' "
                        "repository (MatiasAlvo/Neural_inventory_control, data_files/favorita/) and pass its path")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise UserError(f"{path} is not a readable torch tensor file ({type(err).__name__})") from err
    if isinstance(data, dict):
        data = data.get("weekly_sales")
    if not isinstance(data, torch.Tensor) or data.dim() not in (2, 3):
        raise UserError(f"{path}: expected a tensor shaped (samples, weeks) or (samples, stores, weeks)")
    data = data.float()
    if data.dim() == 2:
        data = data.unsqueeze(1)
    if not torch.isfinite(data).all() or (data < 0).any():
        raise UserError(f"{path}: sales must be finite and non-negative")
    return data


def split_window(sales: torch.Tensor, split: str, n_samples: int | None = None,
                 history: int = HISTORY) -> tuple[torch.Tensor, torch.Tensor]:
    """(past demand (N, S, history), simulated demand (N, S, T)) of one split's time window."""
    if split not in WINDOWS:
        raise UserError(f"unknown split {split!r}; valid: {', '.join(WINDOWS)}")
    lo, hi = WINDOWS[split]
    if sales.shape[-1] < hi:
        raise UserError(f"the {split} window needs {hi} weeks of sales, the file has {sales.shape[-1]}")
    window = sales[:n_samples, :, lo:hi]
    return window[..., :history], window[..., history:]
