#!/usr/bin/env bash
# Create .venv (if needed) and install classic-rl with its test dependencies into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
log=.venv/setup.log
echo "setting up .venv (log: $log) ..."
{
  python -m pip install --upgrade pip || true
  # torch first and pinned: on CPU-only machines this is the CPU build (a wheel of this version is on
  # local disk on the project's machines); a bare range would let pip pick a multi-GB CUDA build.
  python -m pip install "torch==2.13.0"
  # ray: the sweep runner's Ray backend and its real-cluster tests (~11 s, ~250 MB, core only, no Tune)
  python -m pip install -e ".[dev,ray]"
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "setup failed (full log: $log)" >&2; exit 1; }
python -c "import torch, gymnasium, mujoco, ale_py, torch_geometric, stable_baselines3" \
  || { echo "setup failed: a dependency did not import (log: $log)" >&2; exit 1; }
echo "setup done: torch $(python -c 'import torch; print(torch.__version__)')"
