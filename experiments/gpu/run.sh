#!/usr/bin/env bash
# The full-size (GPU) figures in REPORT.md and docs/ (§: the logs' sections): outs/full/ (§5-§7 "Full size, one H200 GPU", §10's
# wall-clock table) and outs/gpu/ (§10's GPU profile). The shipped codec has its own: experiments/gpu/codec.sh.
#
#   experiments/gpu/run.sh report DATA OUT [key=value ...]    ONE GPU: every full-size report run, then the profile
#   experiments/gpu/run.sh collect DATA REP                   CPU, after `report`: tables and copies -> outs/full/
#
# DATA: CIFAR-10 source or prepared cache. key=value overrides go to every training run
# (a CPU dry run: `run.sh report DATA /tmp/dry epochs=1 train_subset=1000 val_subset=200`).
#
# How the report's files were made: outs/full/ and outs/gpu/ on one GPU (an H200 here), with the data
# prepared (src/prepare_data.py --data <archive>):
#      BUDGET=510 PROFILE_S=125 BENCH_S=40 SWEEP_S=65 TRAIN_S=20 RD_LIMIT=1000 PACK=<dir> \
#          bash experiments/gpu/run.sh report data/cifar10-jpeg-<fingerprint>.pt REP
#    then, alone on the GPU, the profile again with more time (the first one was cut at its limit):
#      BENCH_S=60 SWEEP_S=105 TRAIN_S=30 bash bench/gpu_check.sh data/cifar10-jpeg-<fingerprint>.pt
#    whose files are outs/gpu/ (its short training run's lines copied into outs/gpu/train.txt), then
#    `collect DATA REP` on the CPUs. That run was made by this script at commit cdeb663, whose codec
#    stream trained the v1 codec (removed since): outs/full/{codec,rd,codec_wide} are its files.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PYTHONUNBUFFERED=1

# ---- report: the full-size report runs on ONE GPU in one go (about 9 minutes on an H200), then the
# GPU profile. Small CIFAR-10 nets leave most of a large GPU idle, so independent runs share it as
# concurrent processes (phase B), in four streams:
#   ae:      full-width AE (PROFILE=full) -> evaluation on train/val/test
#   scratch: the classifier grid's scratch cells (they need no encoder)
#   probe:   once the AE exists, the finetune and linear cells, then the shift evaluation
#   budget:  finetune and scratch at 100% labels in 10 epochs instead of 20 (a design iteration)
# Every step runs under the phase deadline; runs keep a best.pt per epoch, so a cut run still counts.
# Phase C then runs bench/gpu_check.sh alone, so its timings see an idle GPU.
# Writes OUT/runs/... (every run directory), OUT/steps.txt (each step's exit code and seconds),
# OUT/logs/*.log, and outs/gpu/ (the profile). With PACK=DIR it also packs what a report needs into a
# few files there: results.tar.gz (everything but checkpoints) and the AE backbone, for evaluation on
# another machine.
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

stream_ae() {
    step ae "$PY" src/train_ae.py --data "$DATA" --out "$R/ae" --config jobs/configs/full.yaml \
        epochs="$AE_EPOCHS" "${NO_WB[@]}" "${EXTRA[@]}"
    [ -f "$R/ae/best.pt" ] || return 1
    touch "$R/ae.ready"
    step ae_eval "$PY" src/evaluate.py --run "$R/ae" --data "$DATA" --no-wandb
}

wait_for_ae() {  # until the AE stream has a best.pt (or the deadline passes)
    while [ ! -f "$R/ae.ready" ] && [ $SECONDS -lt "$deadline" ]; do sleep 2; done
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
    step shift "$PY" experiments/generalisation/shift_eval.py --data "$DATA" --ae "$R/ae" --clf "$R/grid/finetune-f1-s0" \
        --out "$R/shift"
}

stream_budget() {
    step scratch_e10 "$PY" src/train_clf.py --data "$DATA" --out "$R/budget/scratch-e10" --mode scratch \
        epochs=10 "${NO_WB[@]}" "${EXTRA[@]}"
    wait_for_ae || return 1
    step finetune_e10 "$PY" src/train_clf.py --data "$DATA" --out "$R/budget/finetune-e10" --mode finetune \
        --encoder "$R/ae" epochs=10 "${NO_WB[@]}" "${EXTRA[@]}"
}

report() {
    [ $# -ge 2 ] || { echo "usage: experiments/gpu/run.sh report DATA OUT [key=value ...]" >&2; exit 2; }
    DATA=$1 OUT=$2
    shift 2
    EXTRA=("$@")
    PY=${PY:-python3}
    BUDGET=${BUDGET:-540}            # seconds for the whole run
    PROFILE_S=${PROFILE_S:-130}      # kept for phase C (the GPU profile)
    AE_EPOCHS=${AE_EPOCHS:-24}
    export WANDB_MODE=${WANDB_MODE:-disabled}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # several processes share the CPUs
    NO_WB=(wandb=false)
    R=$OUT/runs
    mkdir -p "$R" "$OUT/logs"
    : >"$OUT/steps.txt"
    start=$SECONDS
    deadline=$((start + BUDGET - PROFILE_S))
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null ||
        echo "no GPU" >"$OUT/gpu.txt"
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' >>"$OUT/gpu.txt"

    # phase B: the report runs, concurrently
    stream_ae &
    local ae_pid=$!
    stream_scratch &
    local scratch_pid=$!
    stream_probe &
    local probe_pid=$!
    stream_budget &
    local budget_pid=$!
    wait $ae_pid $scratch_pid $probe_pid $budget_pid
    step grid_table "$PY" jobs/clf_grid.py --data "$DATA" --encoder "$R/ae" --out "$R/grid" \
        --grid jobs/configs/gpu_clf_grid.yaml --tabulate --no-wandb
    echo "phase B (report runs) ended at +$((SECONDS - start))s" >>"$OUT/steps.txt"

    # phase C: the GPU profile (outs/gpu/), alone on the GPU
    deadline=$((start + BUDGET))
    step gpu_check bash bench/gpu_check.sh "$DATA"
    echo "all done at +$((SECONDS - start))s" >>"$OUT/steps.txt"
    cat "$OUT/steps.txt"

    if [ -n "${PACK:-}" ]; then
        mkdir -p "$PACK"
        "$PY" experiments/gpu/pack_checkpoint.py "$R/ae" "$PACK/ae_backbone.pt" --only-prefix backbone. || true
        tar -czf "$PACK/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' --exclude='files' --exclude='wandb' \
            "$OUT" outs/gpu
        ls -la "$PACK"
    fi
}

# ---- collect: after `report`, on the machine that holds REP (CPU): the grid table from the evaluated
# cells and the copies into outs/full/.
collect() {
    set -e
    DATA=${1:?usage: experiments/gpu/run.sh collect DATA REP}
    local REP=${2:?usage: experiments/gpu/run.sh collect DATA REP}
    local R=$REP/runs
    PY=${PY:-.venv/bin/python}
    export WANDB_MODE=${WANDB_MODE:-offline}

    $PY jobs/clf_grid.py --data "$DATA" --out "$R/grid" --grid jobs/configs/gpu_clf_grid.yaml --tabulate --no-wandb

    # outs/full/{ae,grid,budget}, outs/full/{steps,gpu}.txt
    mkdir -p outs/full/ae outs/full/grid/histories outs/full/budget
    cp "$R"/ae/eval/*.png "$R"/ae/eval/metrics.json "$R"/ae/eval/metrics.csv "$R"/ae/history.json "$R"/ae/config.yaml \
        outs/full/ae/
    cp "$R"/grid/grid.* outs/full/grid/
    for cell in "$R"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/full/grid/histories/$(basename "$cell").json"; done
    cp "$R"/grid/finetune-f1-s0/config.yaml outs/full/grid/config_finetune.yaml
    cp "$R"/grid/scratch-f1-s0/config.yaml outs/full/grid/config_scratch.yaml
    cp "$R"/grid/linear-f1-s0/config.yaml outs/full/grid/config_linear.yaml
    for run in "$R"/budget/*/; do cp "$run/history.json" "outs/full/budget/$(basename "$run").json"; done
    cp "$REP"/steps.txt "$REP"/gpu.txt outs/full/
    $PY jobs/report.py
}

cmd=${1:-}
shift || true
case "$cmd" in
report) report "$@" ;;
collect) collect "$@" ;;
*)
    sed -n '2,21p' "$0"
    exit 2
    ;;
esac
