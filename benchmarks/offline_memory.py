"""Peak resident memory of loading a 1M-transition Hopper dataset with envs.offline.loaders.load_dataset.

    python -m benchmarks.offline_memory                      # 1M transitions (about 10-30 s)
    python -m benchmarks.offline_memory --transitions 200000

Builds a synthetic dataset in exactly the generator's format (Minari HDF5 written by the generator's own
writer, Hopper-v5 spaces, 1000 episodes of 1000 steps with random float32 data, some ending in a termination,
some in a truncation) in a temporary Minari root, then loads it in a fresh Python process:

  baseline = VmRSS after the imports (torch, h5py, minari, gymnasium, the loader), VmHWM then reset
             through /proc/self/clear_refs;
  peak     = VmHWM after load_dataset(...) returned;
  raw      = bytes of the float32 arrays obs, next_obs, actions, rewards plus the bool terminations and
             truncations (what a replay buffer holds);
  ratio    = (peak - baseline) / raw  (the target is <= 2).

The last line is `peak_rss_ratio=<ratio>`. The temporary root is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(root: Path, transitions: int, episode_len: int = 1000, seed: int = 0) -> str:
    """Write a synthetic Hopper-format dataset with the generator's writer; returns its short id."""
    from envs.offline import generate as gen
    from envs.offline.behaviour import Episode

    rng = np.random.default_rng(seed)
    episodes = []
    for k in range(-(-transitions // episode_len)):
        T = min(episode_len, transitions - k * episode_len)
        term = np.zeros(T, bool)
        trunc = np.zeros(T, bool)
        (term if k % 2 else trunc)[-1] = True
        episodes.append(Episode(k, rng.standard_normal((T + 1, 11), dtype=np.float32),
                                rng.uniform(-1, 1, (T, 3)).astype(np.float32),
                                rng.standard_normal(T, dtype=np.float32), term, trunc))
    meta = {"level": "medium", "env": "hopper", "env_id": "Hopper-v5", "synthetic": True,
            "versions": gen._versions(), "transitions_requested": transitions, "seed": seed}
    gen._write_dataset("classic-rl/hopper/medium-v0", episodes, "Hopper-v5", "synthetic (benchmark)",
                       0.0, 1000.0, meta, root)
    return "hopper-medium"


def measure(root: Path, name: str) -> dict:
    import gymnasium  # noqa: F401  - every import the load needs happens before the baseline
    import h5py  # noqa: F401
    import minari  # noqa: F401
    import torch  # noqa: F401
    from minari.serialization import deserialize_space  # noqa: F401
    from envs.offline.loaders import load_dataset

    baseline = _status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS
        reset = True
    except OSError:
        reset = False
    t0 = time.time()
    data = load_dataset(name, root=root)
    seconds = time.time() - t0
    peak = _status("VmHWM")
    raw = sum(t.numel() * t.element_size() for t in (data.obs, data.next_obs, data.actions, data.rewards,
                                                        data.terminations, data.truncations))
    return {"transitions": len(data), "raw_bytes": raw, "baseline_rss": baseline, "peak_rss": peak,
            "peak_reset": reset, "load_seconds": round(seconds, 2), "ratio": (peak - baseline) / raw}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.offline_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: the fresh child process
    a = p.parse_args(argv)
    if a.measure:
        print(json.dumps(measure(Path(a.measure), "hopper-medium")))
        return
    with tempfile.TemporaryDirectory(prefix="offline_memory_") as tmp:
        root = Path(tmp)
        t0 = time.time()
        build(root, a.transitions)
        size = sum(f.stat().st_size for f in root.rglob("*.hdf5"))
        print(f"built a synthetic {a.transitions:,}-transition Hopper dataset in {time.time() - t0:.1f} s "
              f"({size / 2**20:.0f} MiB on disk)", flush=True)
        env = dict(os.environ, MINARI_DATASETS_PATH=str(root))
        out = subprocess.run([sys.executable, "-m", "benchmarks.offline_memory", "--measure", str(root)],
                             env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise SystemExit(out.returncode)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 2**20
    print(f"transitions {r['transitions']:,}; raw arrays {r['raw_bytes'] / mib:.1f} MiB; RSS before load "
          f"{r['baseline_rss'] / mib:.1f} MiB, peak during load {r['peak_rss'] / mib:.1f} MiB "
          f"(+{(r['peak_rss'] - r['baseline_rss']) / mib:.1f} MiB); load {r['load_seconds']} s"
          + ("" if r["peak_reset"] else "; peak could not be reset, it includes the imports"))
    print(f"peak_rss_ratio={r['ratio']:.3f}")


if __name__ == "__main__":
    main()
