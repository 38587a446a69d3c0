"""Names, reference returns, paths and atomic writes shared by the offline-dataset generator and loaders.

Dataset ids. The toolkit's own datasets have short ids ``<env>-<level>`` (``hopper-medium``,
``walker2d-medium-replay``) that map to the Minari id ``classic-rl/<env>/<level>-v0``. Any id with a
``/`` is a Minari id and is passed through to minari unchanged (``mujoco/hopper/medium-v0`` for a user
who downloaded the official datasets with ``minari download`` on a machine with internet access).

Where datasets live: Minari's datasets root, ``$MINARI_DATASETS_PATH`` when set, else
``~/.minari/datasets``. The generator's own state (behaviour-policy training runs, captured checkpoints,
reference returns, half-written datasets) sits in the hidden folder ``<root>/.classic-rl/``, which
``minari list local`` ignores.

Reference returns (normalized score = 100 (R - min) / (max - min)):
  * primary, the toolkit's own, measured on the gymnasium v5 envs and stored in each dataset's metadata
    (``ref_min_score`` / ``ref_max_score``): min = mean return of a uniform-random policy over 100
    episodes, max = mean deterministic return of the final behaviour (expert) checkpoint over 20 episodes;
  * secondary, D4RL's constants (``d4rl/infos.py`` of Farama-Foundation/D4RL @ 89141a6), measured on the
    old gym/mujoco-py v2 envs, so only a rough guide for v5 returns:
        halfcheetah  -280.178953  12135.0
        hopper        -20.272305   3234.3
        walker2d        1.629008   4592.3
        ant          -325.6        3879.7
"""
from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from classic_rl import UserError

NAMESPACE = "classic-rl"
VERSION = 0
LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
# short env name (lower case, as in D4RL ids) -> gymnasium id
ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
D4RL_REF = {  # (min, max): d4rl/infos.py, identical for every dataset type of an env
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
# Average normalized return of D4RL's -v2 datasets (D4RL paper / spec, recalled values): for comparison only.
D4RL_DATASET_SCORE = {
    ("halfcheetah", "medium"): 41, ("hopper", "medium"): 44, ("walker2d", "medium"): 62,
    ("halfcheetah", "medium-replay"): 27, ("hopper", "medium-replay"): 15, ("walker2d", "medium-replay"): 15,
    ("halfcheetah", "expert"): 88, ("hopper", "expert"): 108, ("walker2d", "expert"): 107,
}
METADATA_KEY = "classic_rl"


def datasets_root() -> Path:
    """Minari's datasets root: $MINARI_DATASETS_PATH, else ~/.minari/datasets (created if missing)."""
    root = os.environ.get("MINARI_DATASETS_PATH") or os.path.join(os.path.expanduser("~"), ".minari", "datasets")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir(root: Path | None = None) -> Path:
    """The generator's hidden working folder inside the datasets root."""
    return (root or datasets_root()) / ".classic-rl"


def env_key(env: str) -> str:
    """'Hopper', 'hopper', 'Hopper-v5' -> 'hopper' (one of ENVS), else a UserError naming the valid ones."""
    key = env.lower().split("-v")[0]
    if key not in ENVS:
        close = difflib.get_close_matches(key, list(ENVS), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"offline datasets exist for {', '.join(ENVS)} only, not {env!r}{hint}")
    return key


def check_level(level: str) -> str:
    if level not in LEVELS:
        close = difflib.get_close_matches(level, LEVELS, n=2, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown dataset level {level!r}{hint}; levels: {', '.join(LEVELS)}")
    return level


def short_ids() -> list[str]:
    return [f"{e}-{lvl}" for e in ENVS for lvl in LEVELS]


def minari_id(env: str, level: str) -> str:
    return f"{NAMESPACE}/{env_key(env)}/{check_level(level)}-v{VERSION}"


def resolve_dataset_id(name: str) -> tuple[str, tuple[str, str] | None]:
    """Short id or Minari id -> (minari id, (env key, level) for the toolkit's own datasets else None)."""
    if "/" in name:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == NAMESPACE:
            level = parts[2].rsplit("-v", 1)[0]
            if parts[1] in ENVS and level in LEVELS:
                return name, (parts[1], level)
        return name, None
    key = name.lower()
    if key.endswith(f"-v{VERSION}"):
        key = key[: -len(f"-v{VERSION}")]
    for env in ENVS:
        if key.startswith(env + "-") and key[len(env) + 1:] in LEVELS:
            level = key[len(env) + 1:]
            return minari_id(env, level), (env, level)
    close = difflib.get_close_matches(key, short_ids(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown dataset id {name!r}{hint} Toolkit datasets: <env>-<level> with env in "
                    f"{', '.join(ENVS)} and level in {', '.join(LEVELS)}; any id with a '/' is passed to "
                    f"minari (e.g. mujoco/hopper/medium-v0)")


def dataset_dir(mid: str, root: Path | None = None) -> Path:
    return (root or datasets_root()) / mid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(root: Path | None = None) -> None:
    """Remove half-written datasets left by generator processes that are no longer running."""
    staging = state_dir(root) / "staging"
    if not staging.is_dir():
        return
    for entry in staging.iterdir():
        try:
            pid = int(entry.name.split("-")[0])
        except ValueError:
            pid = -1
        if pid <= 0 or not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def staged_dataset(mid: str, root: Path | None = None) -> Iterator[Path]:
    """Write a Minari dataset under a private staging root, then rename it into place atomically.

    Inside the block MINARI_DATASETS_PATH points at the staging root, so minari's own writers create
    `<staging>/<mid>`; on success that folder is renamed to `<root>/<mid>` (same file system). On any error,
    or if the process is killed, nothing appears under the real id: the staging folder is removed here,
    or by clean_stale_staging() at the next run.
    """
    root = root or datasets_root()
    staging = state_dir(root) / "staging" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(staging)
    try:
        yield staging
        os.environ["MINARI_DATASETS_PATH"] = str(root)
        final = root / mid
        if final.exists():
            raise UserError(f"dataset {mid} appeared at {final} while this one was being written")
        final.parent.mkdir(parents=True, exist_ok=True)
        namespace = mid.split("/")[0]
        ns_meta = staging / namespace / "namespace_metadata.json"
        if ns_meta.exists() and not (root / namespace / "namespace_metadata.json").exists():
            shutil.copyfile(ns_meta, root / namespace / "namespace_metadata.json")
        os.rename(staging / mid, final)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
        shutil.rmtree(staging, ignore_errors=True)
