"""Load offline datasets (the toolkit's own or official Minari ids) into device tensors for a replay buffer.

    from envs.offline.loaders import load_dataset, normalized_score
    data = load_dataset("hopper-medium", device="cuda", env="Hopper")   # or "mujoco/hopper/medium-v0"
    buffer = data.replay_buffer()                    # classic_rl.buffers.ReplayBuffer, full, on the device
    s = data.normalize_obs(obs)                      # (obs - mean) / (std + 1e-3), the TD3+BC/A2PR convention
    data.normalized_score(3000.0)                    # toolkit references (primary)
    data.normalized_score(3000.0, reference="d4rl")  # D4RL's constants (secondary)

Tensors (N transitions, concatenated over episodes in dataset order): obs, actions (float32),
rewards (float32), next_obs (float32), terminations, truncations (bool; a truncated transition keeps its real
next_obs, so time-limit ends bootstrap: use `terminations` only as the "done" of TD targets). Unlike
d4rl.qlearning_dataset, the last transition of a time-limited episode is kept.

Memory: arrays are preallocated once at their final size and each episode is read straight from the HDF5
file into its slice, so loading peaks near the size of the arrays themselves (measured by
``python -m benchmarks.offline_memory``: 1M Hopper transitions, see docs/offline_datasets.md).

Errors are UserErrors (entry points exit with status 2): an unknown id (with the closest names), a dataset
that is not there (with the command that makes it), a corrupted or truncated file, spaces that do not
match the env.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classic_rl import UserError
from envs.offline.common import (D4RL_REF, ENVS, METADATA_KEY, datasets_root, resolve_dataset_id)

OBS_EPS = 1e-3


def normalized_score(returns, ref_min: float, ref_max: float):
    """D4RL-normalized score 100 (R - min) / (max - min) (array in, array out; float in, float out)."""
    if not ref_max > ref_min:
        raise UserError(f"reference returns must satisfy max > min, got min={ref_min}, max={ref_max}")
    r = np.asarray(returns, dtype=np.float64)
    out = 100.0 * (r - ref_min) / (ref_max - ref_min)
    return float(out) if out.ndim == 0 else out


def local_dataset_ids(root: Path | None = None) -> list[str]:
    """Ids of every dataset folder (one holding data/metadata.json) under the root, hidden folders skipped."""
    root = root or datasets_root()
    out = []
    for meta in root.glob("**/data/metadata.json"):
        rel = meta.parent.parent.relative_to(root)
        if not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return sorted(out)


def _corrupt(mid: str, path: Path, why: str) -> UserError:
    return UserError(f"dataset {mid} at {path} is corrupted or truncated ({why}); delete it "
                     f"(rm -r {path}) and regenerate it (python -m envs.offline.generate ... --force)")


def locate(name: str, root: Path | None = None) -> tuple[str, Path, dict]:
    """(minari id, dataset folder, metadata) for a short or Minari id, with clear errors."""
    root = Path(root) if root is not None else datasets_root()
    mid, own = resolve_dataset_id(name)
    path = root / mid
    if not (path / "data").is_dir():
        if own is not None:
            raise UserError(f"dataset {name} ({mid}) has not been generated under {root}; make it with: "
                            f"python -m envs.offline.generate --env {ENVS[own[0]].split('-v')[0]} --level {own[1]}")
        local = local_dataset_ids(root)
        close = difflib.get_close_matches(mid, local, n=3, cutoff=0.5)
        hint = f"; closest local ids: {', '.join(close)}" if close else (
            f"; local datasets: {', '.join(local[:10])}" if local else "; no local datasets")
        raise UserError(f"Minari dataset {mid!r} not found under {root} (MINARI_DATASETS_PATH) and this machine "
                        f"cannot download; copy it there (minari download {mid} where there is internet){hint}")
    try:
        meta = json.loads((path / "data" / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise _corrupt(mid, path, f"metadata.json unreadable: {err}") from err
    for k in ("total_episodes", "total_steps", "observation_space", "action_space"):
        if k not in meta:
            raise _corrupt(mid, path, f"metadata.json lacks {k!r}")
    return mid, path, meta


def _spaces(meta: dict, mid: str, path: Path):
    import gymnasium as gym
    from minari.serialization import deserialize_space
    try:
        obs_space = deserialize_space(meta["observation_space"])
        act_space = deserialize_space(meta["action_space"])
    except Exception as err:  # noqa: BLE001 - any failure here means unreadable metadata
        raise _corrupt(mid, path, f"spaces in metadata.json unreadable: {err}") from err
    for what, sp in (("observation", obs_space), ("action", act_space)):
        if not isinstance(sp, gym.spaces.Box) or len(sp.shape) != 1:
            raise UserError(f"dataset {mid}: only flat Box observation/action spaces are supported, its {what} "
                            f"space is {sp}")
    return obs_space, act_space


def _same_box(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)


def check_spaces(mid: str, obs_space, act_space, env: str) -> str:
    """Raise a UserError when the dataset's spaces differ from those of `env`; returns the env id."""
    import gymnasium as gym
    from envs.registry import resolve_env_id
    env_id = resolve_env_id(env)
    e = gym.make(env_id)
    try:
        for what, ds_space, env_space in (("observation", obs_space, e.observation_space),
                                          ("action", act_space, e.action_space)):
            if not isinstance(env_space, gym.spaces.Box) or not _same_box(ds_space, env_space):
                raise UserError(f"dataset {mid} does not match env {env_id}: its {what} space is {ds_space}, "
                                f"the env's is {env_space}")
    finally:
        e.close()
    return env_id


@dataclass
class OfflineDataset:
    """A loaded dataset: transition tensors on `device`, observation statistics and reference returns."""

    dataset_id: str
    env_id: str | None
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminations: torch.Tensor
    truncations: torch.Tensor
    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    episode_returns: np.ndarray
    metadata: dict = field(repr=False)

    def __len__(self) -> int:
        return self.obs.shape[0]

    def ref_scores(self) -> dict[str, Any]:
        return ref_scores_from_metadata(self.metadata, self.dataset_id)

    def normalized_score(self, returns, reference: str = "toolkit"):
        """100 (R - min)/(max - min) with the toolkit's references ('toolkit', primary) or D4RL's ('d4rl')."""
        ref = self.ref_scores()
        if reference == "toolkit":
            lo, hi = ref["min"], ref["max"]
        elif reference == "d4rl":
            lo, hi = ref["d4rl_min"], ref["d4rl_max"]
        else:
            raise UserError(f"reference must be 'toolkit' or 'd4rl', got {reference!r}")
        if lo is None or hi is None:
            raise UserError(f"dataset {self.dataset_id} has no {reference} reference returns")
        return normalized_score(returns, lo, hi)

    def normalize_obs(self, obs: torch.Tensor, eps: float = OBS_EPS) -> torch.Tensor:
        return (obs - self.obs_mean) / (self.obs_std + eps)

    def replay_buffer(self):
        from classic_rl.buffers import ReplayBuffer
        return ReplayBuffer.from_arrays(self.obs, self.actions, self.rewards, self.next_obs, self.terminations)


def ref_scores_from_metadata(meta: dict, mid: str = "") -> dict[str, Any]:
    ours = meta.get(METADATA_KEY, {})
    env = ours.get("env")
    if env is None:  # official ids: mujoco/<env>/<name>-v0 or D4RL/<env>/...
        parts = mid.lower().split("/")
        env = next((p for p in parts if p in D4RL_REF), None)
    d4 = D4RL_REF.get(env, (None, None))
    return {"min": meta.get("ref_min_score"), "max": meta.get("ref_max_score"),
            "d4rl_min": d4[0], "d4rl_max": d4[1], "source": ours.get("ref_source", "dataset metadata"),
            "min_how": ours.get("ref_min_how"), "max_how": ours.get("ref_max_how")}


def ref_scores(name: str, root: Path | None = None) -> dict[str, Any]:
    """Reference returns of a dataset: min/max (toolkit or the dataset's own metadata) and D4RL's constants."""
    mid, _, meta = locate(name, root)
    return ref_scores_from_metadata(meta, mid)


def _iter_hdf5(mid: str, path: Path, meta: dict):
    """Yield (obs (T+1,d), actions, rewards, terminations, truncations, seed) per episode, checking shapes."""
    import h5py
    file = path / "data" / "main_data.hdf5"
    try:
        f = h5py.File(file, "r")
    except OSError as err:
        raise _corrupt(mid, path, f"{file.name}: {err}") from err
    with f:
        for i in range(int(meta["total_episodes"])):
            try:
                g = f[f"episode_{i}"]
                obs = g["observations"][()]
                act = g["actions"][()]
                rew = g["rewards"][()]
                term = g["terminations"][()]
                trunc = g["truncations"][()]
                seed = g.attrs.get("seed")
            except (KeyError, OSError, RuntimeError) as err:
                raise _corrupt(mid, path, f"episode {i}: {err}") from err
            T = act.shape[0]
            if obs.shape[0] != T + 1 or rew.shape[0] != T or term.shape[0] != T or trunc.shape[0] != T:
                raise _corrupt(mid, path, f"episode {i}: inconsistent lengths (obs {obs.shape[0]}, actions {T})")
            yield obs, act, rew, term, trunc, seed


def _iter_any(mid: str, path: Path, meta: dict):
    if meta.get("data_format", "hdf5") == "hdf5":
        yield from _iter_hdf5(mid, path, meta)
        return
    import minari
    try:
        ds = minari.MinariDataset(path / "data")
        for ep in ds.iterate_episodes():
            yield (np.asarray(ep.observations), np.asarray(ep.actions), np.asarray(ep.rewards),
                   np.asarray(ep.terminations), np.asarray(ep.truncations), None)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - minari/pyarrow raise many types for a broken file
        raise _corrupt(mid, path, f"{type(err).__name__}: {err}") from err


def read_episodes(name: str, root: Path | None = None) -> list:
    """Whole episodes (envs.offline.behaviour.Episode) of a dataset, in order."""
    from envs.offline.behaviour import Episode
    mid, path, meta = locate(name, root)
    return [Episode(int(seed) if seed is not None else -1, o.astype(np.float32), a.astype(np.float32),
                    r.astype(np.float32), t.astype(bool), u.astype(bool))
            for o, a, r, t, u, seed in _iter_any(mid, path, meta)]


def load_dataset(name: str, device: str | torch.device = "cpu", env: str | None = None,
                 root: Path | None = None) -> OfflineDataset:
    """Load a dataset (short id like 'hopper-medium' or any Minari id) into tensors on `device`.

    With `env`, the dataset's observation and action spaces must equal that env's (else a UserError).
    """
    mid, path, meta = locate(name, root)
    obs_space, act_space = _spaces(meta, mid, path)
    env_id = check_spaces(mid, obs_space, act_space, env) if env is not None else \
        meta.get(METADATA_KEY, {}).get("env_id") or _env_id_from_spec(meta)
    n = int(meta["total_steps"])
    d, k = obs_space.shape[0], act_space.shape[0]
    obs = torch.empty((n, d), dtype=torch.float32)
    next_obs = torch.empty((n, d), dtype=torch.float32)
    actions = torch.empty((n, k), dtype=torch.float32)
    rewards = torch.empty(n, dtype=torch.float32)
    term = torch.empty(n, dtype=torch.bool)
    trunc = torch.empty(n, dtype=torch.bool)
    o_np, no_np, a_np, r_np, te_np, tr_np = (t.numpy() for t in (obs, next_obs, actions, rewards, term, trunc))
    pos, returns = 0, []
    for o, a, r, te, tr, _ in _iter_any(mid, path, meta):
        T = a.shape[0]
        if pos + T > n or o.shape[1:] != (d,) or a.shape[1:] != (k,):
            raise _corrupt(mid, path, f"episode data do not fit the metadata (total_steps {n}, obs dim {d}, "
                                      f"action dim {k})")
        o_np[pos:pos + T] = o[:-1]
        no_np[pos:pos + T] = o[1:]
        a_np[pos:pos + T] = a
        r_np[pos:pos + T] = r
        te_np[pos:pos + T] = te
        tr_np[pos:pos + T] = tr
        returns.append(float(np.sum(r, dtype=np.float64)))
        pos += T
    if pos != n:
        raise _corrupt(mid, path, f"episodes hold {pos} transitions, metadata says {n}")
    mean, std = _mean_std(obs)
    device = torch.device(device)
    if device.type != "cpu":
        obs, next_obs, actions, rewards, term, trunc = (t.to(device) for t in (obs, next_obs, actions, rewards,
                                                                              term, trunc))
    return OfflineDataset(mid, env_id, obs, actions, rewards, next_obs, term, trunc, mean.to(device),
                          std.to(device), np.asarray(returns), meta)


def _mean_std(x: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and population std in float64, two passes in chunks (no full-size float64 copy)."""
    n = max(x.shape[0], 1)
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        s += x[i:i + chunk].double().sum(0)
    mean = s / n
    s2 = torch.zeros_like(s)
    for i in range(0, x.shape[0], chunk):
        s2 += (x[i:i + chunk].double() - mean).pow(2).sum(0)
    return mean.float(), (s2 / n).sqrt().float()


def _env_id_from_spec(meta: dict) -> str | None:
    spec = meta.get("env_spec")
    try:
        return json.loads(spec)["id"] if isinstance(spec, str) else None
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def load_offline_data(name: str, device: str | torch.device = "cpu", normalize_obs: bool = True,
                      env: str | None = None, root: Path | None = None, seed: int = 1, generate_missing: bool = True):
    """The dataset as classic_rl.offline.OfflineData for offline algorithms: a full ReplayBuffer on `device`
    whose obs/next_obs are already normalized with (obs - mean) / (std + 1e-3) when `normalize_obs` (in place,
    no extra copy), obs_mean/obs_std (std including the 1e-3, so evaluation applies the same map), the
    reference returns and the action bound. A short id that was never generated is generated first (seed
    `seed`) unless generate_missing=False."""
    from classic_rl.offline import OfflineData
    if generate_missing:
        from envs.offline.generate import ensure_dataset
        ensure_dataset(name, seed=seed, root=root)
    data = load_dataset(name, device, env=env, root=root)
    std = data.obs_std + OBS_EPS
    if normalize_obs:
        for t in (data.obs, data.next_obs):
            t.sub_(data.obs_mean).div_(std)
    ref = data.ref_scores()
    if ref["min"] is None or ref["max"] is None:
        if ref["d4rl_min"] is None:
            raise UserError(f"dataset {data.dataset_id} has no reference returns (ref_min_score/ref_max_score) in "
                            "its metadata and no D4RL constants are known for its env")
        ref["min"], ref["max"] = ref["d4rl_min"], ref["d4rl_max"]
    _, act_space = _spaces(data.metadata, data.dataset_id, Path("."))
    high = float(np.max(np.abs(act_space.high)))
    return OfflineData(buffer=data.replay_buffer(), env_id=data.env_id, obs_mean=data.obs_mean, obs_std=std,
                       ref_min=float(ref["min"]), ref_max=float(ref["max"]), action_high=high)
