#!/usr/bin/env bash
# One short, prepared device check for a session that is lent a GPU machine (docs/gpu_offline.md says how
# to bring the wheels an offline GPU machine lacks). Each step is cut at a time limit and logged; the summary
# lines go to stdout, full logs to $OUT (or ./device_check_out). DEVICE=cpu runs the same steps here.
#
#   bash benchmarks/device_check.sh            # on the GPU machine, from the repo root
#   DEVICE=cpu QUICK=1 bash benchmarks/device_check.sh   # dry run on a CPU machine
set -uo pipefail
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-./device_check_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
steps() { if [ -n "${QUICK:-}" ]; then echo "$1"; else echo "$2"; fi; }
run() {  # name, limit seconds, command...
  local name=$1 limit=$2; shift 2
  local start=$(date +%s)
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "[$name] exit $rc in $(( $(date +%s) - start )) s: $(grep -E 'ratio=|env-steps/s|_per_s=|peak_rss|final|optimal|error' "$OUT/$name.log" | tail -n 3 | tr '\n' ' ')"
}
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
run bpo_hopper 120 python -m algos.bpo --env Hopper --device "$DEVICE" --total-steps "$(steps 2048 20480)" --eval-every 0 --eval-episodes 2 --no-progress --run-dir "$OUT/runs"
run ppo_pong 180 python -m algos.ppo --env Pong --device "$DEVICE" --total-steps "$(steps 1024 16384)" --eval-every 0 --eval-episodes 1 --eval-max-steps 500 --no-progress --run-dir "$OUT/runs"
run throughput_16envs 240 python -m benchmarks.throughput --env Humanoid --n-envs 16 --device "$DEVICE" --steps "$(steps 2048 16384)" --repeats 1 --only ours
run hdpo_gnn 150 python -m algos.hdpo --env transshipment --stores 10 --policy gnn --device "$DEVICE" \
  --total-steps "$(steps 25600 12288000)" --n-train "$(steps 256 8192)" --n-envs "$(steps 256 1024)" --eval-episodes "$(steps 256 4096)" --n-test "$(steps 256 4096)" \
  --test-periods "$(steps 60 1000)" --test-ignore "$(steps 20 300)" --no-test-curve --no-progress --run-dir "$OUT/runs"
run inventory_throughput 240 python -m benchmarks.inventory_throughput --devices $( [ "$DEVICE" = cpu ] && echo cpu || echo cpu "$DEVICE") --batches $(steps "256" "1024 8192")
run dr_rpo 60 python -m algos.dr_rpo --env LinearMDP --rho 0.6 --device "$DEVICE" --run-dir "$OUT/runs"
# offline and off-policy: a small random Hopper dataset in a private Minari root, then short runs on the device
export MINARI_DATASETS_PATH="$OUT/minari"
run offline_dataset 120 python -m envs.offline.generate --env Hopper --level random --transitions 5000 --no-progress
run a2pr 120 python -m algos.a2pr --dataset hopper-random --device "$DEVICE" --total-steps "$(steps 200 5000)" \
  --eval-every 0 --eval-episodes 2 --no-progress --run-dir "$OUT/runs"
run sac_rlpd 150 python -m algos.sac --env Hopper --dataset hopper-random --device "$DEVICE" --total-steps "$(steps 300 3000)" \
  --eval-every 0 --eval-episodes 2 --no-progress --run-dir "$OUT/runs"
run expo 180 python -m algos.expo --env Hopper --dataset hopper-random --device "$DEVICE" --total-steps "$(steps 200 2000)" \
  --eval-every 0 --eval-episodes 2 --no-progress --run-dir "$OUT/runs"
run parl_chain 60 python -m algos.parl --env ChainToy --device "$DEVICE" --total-steps "$(steps 20 200)" --no-progress --run-dir "$OUT/runs"
