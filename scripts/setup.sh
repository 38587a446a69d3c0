#!/usr/bin/env bash
# Create .venv (if needed) and install classic-rl with its test dependencies into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned: on CPU-only machines this is the CPU build (a wheel of this version is on local
# disk on the project's machines); a range would let pip pick a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, gymnasium, mujoco, ale_py, torch_geometric, stable_baselines3" \
  || { echo "setup failed: a dependency did not import" >&2; exit 1; }
