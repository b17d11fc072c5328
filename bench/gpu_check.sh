#!/usr/bin/env bash
# GPU profile in one go (under 5 minutes on one GPU): the side-by-side benchmark, a sweep over
# bf16 / fp32, channels_last, torch.compile on/off and batch size, and a short real training run.
#
#   bench/gpu_check.sh [DATA]     DATA: CIFAR-10 source or prepared .pt cache (default: synthetic data)
#
# Writes outs/gpu/{gpu.txt,bench.json,bench.txt,sweep.json,sweep.txt,train.log,summary.txt}.
# On a machine without a CUDA GPU it says so and exits 0 (make bench covers the CPU).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA=${1:-${DATA:-}}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible to torch on $(hostname); nothing to profile here (make bench covers the CPU)."
    exit 0
fi

OUT=outs/gpu
mkdir -p "$OUT"
export WANDB_MODE=${WANDB_MODE:-offline}
start=$SECONDS
status=()
step() {  # step NAME TIMEOUT_S CMD...: run with a time limit, keep going on failure, note the outcome
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    status+=("$name: rc=$rc ($((SECONDS - t0))s)$([ $rc -eq 124 ] && echo ', TIMED OUT')")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

if [ -z "$DATA" ]; then  # the short training run needs a data file: a synthetic cache like the bench's
    "$PY" -c "import sys; sys.path.insert(0, 'bench'); from pathlib import Path; import bench; bench.synthetic_cache(Path('$OUT'))"
    DATA=$OUT/synthetic-cifar10.pt
fi

# 1. The table: project (bf16 + channels_last + DeviceLoader) vs the plain fp32 NCHW DataLoader loop.
step "bench" "${BENCH_S:-60}" bash -c "'$PY' bench/bench.py --data '$DATA' --only loader,ae,clf,eval --steps 20 --min-time 1 \
    --warmup 3 --loader-batches 40 --eval-images 5000 --out '$OUT/bench.json' | tee '$OUT/bench.txt'"

# 2. Sweep of the project's AE step: precision, channels_last, torch.compile on/off, batch 128..2048.
step "sweep" "${SWEEP_S:-120}" bash -c "'$PY' bench/bench.py --data '$DATA' --only sweep --steps 20 --min-time 1 --warmup 3 \
    --sweep-batches 128,256,512,1024,2048 --out '$OUT/sweep.json' | tee '$OUT/sweep.txt'"

# 3. A short real training run through the engine (report config, 2 epochs, bf16 + channels_last).
rm -rf "$OUT/run"
step "train" "${TRAIN_S:-60}" bash -c "'$PY' src/train_ae.py --data '$DATA' --out '$OUT/run' --config jobs/configs/cpu_ae.yaml \
    epochs=2 > '$OUT/train.log' 2>&1; rc=\$?; tr '\\r' '\\n' < '$OUT/train.log' | grep -E '^(autoencoder|\[ae\]|error)'; exit \$rc"
[ -f "$OUT/run/history.json" ] && { cat "$OUT/run/history.json"; echo; }

{
    echo "gpu_check finished in $((SECONDS - start))s on $(cat "$OUT/gpu.txt")"
    printf '  %s\n' "${status[@]}"
} | tee "$OUT/summary.txt"
