#!/usr/bin/env bash
# Set up the environment and run the default (fast) test suite. Slow learning checks: add `-m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MPLBACKEND=Agg
python -m pytest -q "$@"
