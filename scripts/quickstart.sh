#!/usr/bin/env bash
# Set up the environment, train BPO on Humanoid-v5 briefly (progress bar, periodic evaluation), and end
# with a convergence plot. Pass extra flags through, e.g. `bash scripts/quickstart.sh --total-steps 200000`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MPLBACKEND=Agg
python -m algos.bpo --env Humanoid --total-steps 51200 --eval-every 10240 --eval-episodes 5 "$@"
