"""Seeding, device selection and checkpoints (safe to load: weights_only=True)."""
from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classic_rl import UserError
from classic_rl.runlog import atomic_write_bytes


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; asking for cuda without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but torch sees no CUDA device "
                        "(use --device cpu or --device auto)")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r}: use auto, cpu or cuda") from err


def set_torch_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def rng_state() -> dict[str, Any]:
    """All global RNG states as tensors/ints only, so the checkpoint loads with weights_only=True."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]), "numpy_has_gauss": int(np_state[3]),
        "numpy_cached": float(np_state[4]),
        "python": [int(x) for x in random.getstate()[1]],
        "python_version": int(random.getstate()[0]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_cached"]))
    random.setstate((state["python_version"], tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint (temp file + rename)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; any problem becomes a clear UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise UserError(f"checkpoint {path} is corrupted or not a classic-rl checkpoint "
                        f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} is not a classic-rl checkpoint (expected a dict)")
    return state


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"--resume: run directory {run_dir} does not exist")
    ckpt = run_dir / "checkpoints" / "latest.pt"
    if not ckpt.is_file():
        raise UserError(f"--resume: {run_dir} has no checkpoints/latest.pt to resume from")
    return ckpt
