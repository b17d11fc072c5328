#!/usr/bin/env bash
# The full-size report runs on ONE GPU in one go (about 9 minutes on an H200), then the GPU profile.
#
#   jobs/gpu_report.sh DATA OUT [key=value ...]
#
# DATA: CIFAR-10 source or prepared cache. key=value overrides go to every training run (a CPU
# dry run: `jobs/gpu_report.sh DATA /tmp/dry epochs=1 train_subset=1000 val_subset=200`).
#
# Small CIFAR-10 nets leave most of a large GPU idle, so independent runs share it as concurrent
# processes (phase B), in three streams:
#   ae:      full-width AE (PROFILE=full) -> evaluation on train/val/test -> codec init ->
#            4 codec runs (one per lambda, concurrent) -> prior refit -> RD evaluation (on the CPUs)
#   scratch: the classifier grid's scratch cells (they need no encoder)
#   probe:   once the AE exists, the finetune and linear cells, then the shift evaluation
#   budget:  finetune and scratch at 100% labels in 10 epochs instead of 20 (a design iteration)
# Every step runs under the phase deadline; runs keep a best.pt per epoch, so a cut run still counts.
# Phase C then runs bench/gpu_check.sh alone, so its timings see an idle GPU.
#
# Writes OUT/runs/... (every run directory), OUT/steps.txt (each step's exit code and seconds),
# OUT/logs/*.log, and outs/gpu/ (the profile). With PACK=DIR it also packs what a report needs
# into a few files there: results.tar.gz (everything but checkpoints), the AE backbone, and the
# codecs of SHIP_LAMBDAS (weights only), for evaluation on another machine.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-python3}
[ $# -ge 2 ] || { echo "usage: jobs/gpu_report.sh DATA OUT [key=value ...]" >&2; exit 2; }
DATA=$1 OUT=$2
shift 2
EXTRA=("$@")
BUDGET=${BUDGET:-540}            # seconds for the whole script
PROFILE_S=${PROFILE_S:-130}      # kept for phase C (the GPU profile)
AE_EPOCHS=${AE_EPOCHS:-24}
CODEC_EPOCHS=${CODEC_EPOCHS:-10}
LAMBDAS=${LAMBDAS:-"0.004 0.012 0.035 0.1"}
RD_LIMIT=${RD_LIMIT:-2000}       # test/val images in the RD evaluation (stratified)
export WANDB_MODE=${WANDB_MODE:-disabled} PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # several processes share the CPUs

R=$OUT/runs
mkdir -p "$R" "$OUT/logs"
: >"$OUT/steps.txt"
start=$SECONDS
deadline=$((start + BUDGET - PROFILE_S))

step() {  # step NAME CMD...: run under the phase deadline, log to OUT/logs/NAME.log, record the outcome
    local name=$1 t0=$SECONDS left=$((deadline - SECONDS))
    shift
    if [ "$left" -le 5 ]; then
        echo "$name: skipped (no time left)" >>"$OUT/steps.txt"
        return 1
    fi
    timeout --kill-after=5 "$left" "$@" >"$OUT/logs/$name.log" 2>&1
    local rc=$?
    echo "$name: rc=$rc $((SECONDS - t0))s (ended at +$((SECONDS - start))s)" >>"$OUT/steps.txt"
    return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null ||
    echo "no GPU" >"$OUT/gpu.txt"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' >>"$OUT/gpu.txt"
NO_WB=(wandb=false)

stream_ae() {
    step ae "$PY" src/train_ae.py --data "$DATA" --out "$R/ae" --config jobs/configs/full.yaml \
        epochs="$AE_EPOCHS" "${NO_WB[@]}" "${EXTRA[@]}"
    [ -f "$R/ae/best.pt" ] || return 1
    touch "$R/ae.ready"
    step ae_eval "$PY" src/evaluate.py --run "$R/ae" --data "$DATA" --no-wandb
    step codec_init "$PY" src/codec_init.py --ae "$R/ae" --out "$R/codec/init48.pt" --latent-channels 48 --data "$DATA" ||
        return 1
    local pids=() runs=()
    for lam in $LAMBDAS; do
        runs+=("$R/codec/lambda$lam")
        step "codec_$lam" "$PY" src/train_ae.py --data "$DATA" --out "$R/codec/lambda$lam" --config jobs/configs/full.yaml \
            entropy_model=factorized latent_channels=48 init_from="$R/codec/init48.pt" rd_lambda="$lam" \
            epochs="$CODEC_EPOCHS" batch_size=256 lr=0.001 warmup_epochs=0.2 "${NO_WB[@]}" "${EXTRA[@]}" &
        pids+=($!)
    done
    wait "${pids[@]}"
    pids=()
    for lam in $LAMBDAS; do
        step "codec_fit_$lam" "$PY" src/codec_fit.py --run "$R/codec/lambda$lam" --data "$DATA" &
        pids+=($!)
    done
    wait "${pids[@]}"
    step rd_eval "$PY" src/rd_eval.py --data "$DATA" --runs "${runs[@]}" --out "$R/rd" --splits test val \
        --limit "$RD_LIMIT" --threads 8 --no-wandb
}

wait_for_ae() {  # until the AE stream has a best.pt (or the deadline passes)
    while [ ! -f "$R/ae.ready" ] && [ $SECONDS -lt $deadline ]; do sleep 2; done
    [ -f "$R/ae.ready" ]
}

stream_scratch() {
    step grid_scratch "$PY" jobs/clf_grid.py --data "$DATA" --out "$R/grid" --grid jobs/configs/gpu_clf_grid.yaml \
        --modes scratch --no-wandb "${NO_WB[@]}" "${EXTRA[@]}"
}

stream_probe() {
    wait_for_ae || return 1
    step grid_finetune "$PY" jobs/clf_grid.py --data "$DATA" --encoder "$R/ae" --out "$R/grid" \
        --grid jobs/configs/gpu_clf_grid.yaml --modes finetune --no-wandb "${NO_WB[@]}" "${EXTRA[@]}" &
    local finetune=$!
    step grid_linear "$PY" jobs/clf_grid.py --data "$DATA" --encoder "$R/ae" --out "$R/grid" \
        --grid jobs/configs/gpu_clf_grid.yaml --modes linear --no-wandb "${NO_WB[@]}" "${EXTRA[@]}"
    wait $finetune
    step shift "$PY" experiments/generalisation/shift_eval.py --data "$DATA" --ae "$R/ae" --clf "$R/grid/finetune-f1-s0" --out "$R/shift"
}

stream_budget() {
    step scratch_e10 "$PY" src/train_clf.py --data "$DATA" --out "$R/budget/scratch-e10" --mode scratch \
        epochs=10 "${NO_WB[@]}" "${EXTRA[@]}"
    wait_for_ae || return 1
    step finetune_e10 "$PY" src/train_clf.py --data "$DATA" --out "$R/budget/finetune-e10" --mode finetune \
        --encoder "$R/ae" epochs=10 "${NO_WB[@]}" "${EXTRA[@]}"
}

# ---- phase B: the report runs, concurrently
stream_ae &
ae_pid=$!
stream_scratch &
scratch_pid=$!
stream_probe &
probe_pid=$!
stream_budget &
budget_pid=$!
wait $ae_pid $scratch_pid $probe_pid $budget_pid
step grid_table "$PY" jobs/clf_grid.py --data "$DATA" --encoder "$R/ae" --out "$R/grid" \
    --grid jobs/configs/gpu_clf_grid.yaml --tabulate --no-wandb
echo "phase B (report runs) ended at +$((SECONDS - start))s" >>"$OUT/steps.txt"

# ---- phase C: the GPU profile, alone on the GPU
deadline=$((start + BUDGET))
step gpu_check bash bench/gpu_check.sh "$DATA"
echo "all done at +$((SECONDS - start))s" >>"$OUT/steps.txt"
cat "$OUT/steps.txt"

if [ -n "${PACK:-}" ]; then
    mkdir -p "$PACK"
    "$PY" jobs/pack_checkpoint.py "$R/ae" "$PACK/ae_backbone.pt" --only-prefix backbone. || true
    for lam in ${SHIP_LAMBDAS:-0.004 0.012 0.035}; do
        "$PY" jobs/pack_checkpoint.py "$R/codec/lambda$lam" "$PACK/codec_lambda$lam.pt" || true
    done
    tar -czf "$PACK/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' --exclude='files' --exclude='wandb' \
        "$OUT" outs/gpu
    ls -la "$PACK"
fi
