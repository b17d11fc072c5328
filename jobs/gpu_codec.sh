#!/usr/bin/env bash
# One codec family on ONE GPU: one codec per λ, trained from scratch, all at once.
#
#   [CONFIG=jobs/configs/codec_skip.yaml] jobs/gpu_codec.sh DATA OUT [key=value ...]
#
# DATA: CIFAR-10 source or prepared cache. key=value overrides go to every run (a CPU dry run:
# `BUDGET=120 LAMBDAS="0.01 0.1" jobs/gpu_codec.sh DATA /tmp/dry epochs=1 train_subset=512 val_subset=256`).
# The runs share the GPU as concurrent processes (one small net leaves most of it idle) and stop at
# the deadline BUDGET; each keeps a best.pt per epoch, so a cut run still counts. The prior refit
# and the rate-distortion evaluation are CPU work and run elsewhere (src/codec_fit.py, src/rd_eval.py)
# in the same session: the weights live only in runs/, which no later session keeps.
# `jobs/report_runs_gpu.sh codecs OUT NAME` copies the histories into outs/full/NAME/.
#
# Writes OUT/runs/lambda*/ and OUT/logs/. With PACK=DIR it also puts each codec's weights there
# (codec_lambda*.pt: no optimiser state, and the transforms' float tensors in float16, so that four
# 4.5M-parameter codecs fit what one device call may bring back; the entropy model stays float32),
# and everything else but checkpoints (results.tar.gz).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-python3}
[ $# -ge 2 ] || { echo "usage: jobs/gpu_codec.sh DATA OUT [key=value ...]" >&2; exit 2; }
DATA=$1 OUT=$2
shift 2
BUDGET=${BUDGET:-480}  # seconds for all the training
LAMBDAS=${LAMBDAS:-"0.01 0.03 0.1 0.3"}
CONFIG=${CONFIG:-jobs/configs/codec_wide.yaml}  # the family: codec_wide.yaml or codec_skip.yaml
export WANDB_MODE=${WANDB_MODE:-disabled} PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
mkdir -p "$OUT/runs" "$OUT/logs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null ||
    echo "no GPU" >"$OUT/gpu.txt"

start=$SECONDS
pids=()
read -ra lambdas <<<"$LAMBDAS"
for lam in "${lambdas[@]}"; do
    timeout --kill-after=10 "$BUDGET" "$PY" src/train_ae.py --data "$DATA" --out "$OUT/runs/lambda$lam" \
        --config "$CONFIG" rd_lambda="$lam" wandb=false "$@" >"$OUT/logs/lambda$lam.log" 2>&1 &
    pids+=($!)
done
: >"$OUT/steps.txt"
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    rc=$?  # 124: cut at the deadline (its best.pt still counts)
    echo "lambda${lambdas[$i]}: rc=$rc at +$((SECONDS - start))s" >>"$OUT/steps.txt"
done
cat "$OUT/steps.txt"

if [ -n "${PACK:-}" ]; then
    mkdir -p "$PACK"
    for run in "$OUT"/runs/lambda*; do
        "$PY" jobs/pack_checkpoint.py "$run" "$PACK/codec_$(basename "$run").pt" --float16 || true
    done
    tar -czf "$PACK/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' --exclude='files' --exclude='wandb' "$OUT"
    ls -la "$PACK"
fi
