#!/usr/bin/env bash
# The full-size (GPU) figures in REPORT.md and docs/ (§: the logs' sections): outs/full/ (§5-§7 "Full size, one H200 GPU", §9's GPU
# codecs, §10's wall-clock table) and outs/gpu/ (§10's GPU profile).
#
#   experiments/gpu/run.sh report DATA OUT [key=value ...]    ONE GPU: every full-size report run, then the profile
#   experiments/gpu/run.sh collect DATA REP                   CPU, after `report`: tables, prior refits, RD -> outs/full/
#   experiments/gpu/run.sh codecs DATA OUT [key=value ...]    ONE GPU: one codec family, one codec per λ, all at once
#   experiments/gpu/run.sh collect-codecs REP NAME            after `codecs`: its histories -> outs/full/NAME/
#
# DATA: CIFAR-10 source or prepared cache. key=value overrides go to every training run (CPU dry runs:
# `run.sh report DATA /tmp/dry epochs=1 train_subset=1000 val_subset=200`, or
# `BUDGET=120 LAMBDAS="0.01 0.1" run.sh codecs DATA /tmp/dry epochs=1 train_subset=512 val_subset=256`).
#
# How the report's files were made:
# 1. outs/full/, outs/gpu/: on one GPU (an H200 here), with the data prepared (src/prepare_data.py --data <archive>):
#      BUDGET=510 PROFILE_S=125 BENCH_S=40 SWEEP_S=65 TRAIN_S=20 RD_LIMIT=1000 PACK=<dir> \
#          bash experiments/gpu/run.sh report data/cifar10-jpeg-<fingerprint>.pt REP
#    then, alone on the GPU, the profile again with more time (the first one was cut at its limit):
#      BENCH_S=60 SWEEP_S=105 TRAIN_S=30 bash bench/gpu_check.sh data/cifar10-jpeg-<fingerprint>.pt
#    whose files are outs/gpu/ (its short training run's lines copied into outs/gpu/train.txt).
#    The deadline cut the prior refits and the RD evaluation; PACK brought the codec weights (and the
#    AE backbone) back, and `collect DATA REP` ran those on the CPUs: the grid table from the evaluated
#    cells, the codec prior refits and the rate-distortion evaluation, one more codec point above 2 bpp
#    (the λ=0.035 codec fine-tuned at λ=0.2 on 12,000 images on the CPU, since the λ=0.1 weights stayed
#    on the GPU machine), then the copies into outs/full/.
# 2. outs/full/codec_wide/ (§9, the wide-decoder family):
#      PACK=<dir> BUDGET=470 bash experiments/gpu/run.sh codecs data/cifar10-jpeg-<fingerprint>.pt REP
#    then `collect-codecs REP codec_wide`: the training histories, deadline log and GPU.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PYTHONUNBUFFERED=1

# ---- report: the full-size report runs on ONE GPU in one go (about 9 minutes on an H200), then the
# GPU profile. Small CIFAR-10 nets leave most of a large GPU idle, so independent runs share it as
# concurrent processes (phase B), in four streams:
#   ae:      full-width AE (PROFILE=full) -> evaluation on train/val/test -> codec init ->
#            4 codec runs (one per lambda, concurrent) -> prior refit -> RD evaluation (on the CPUs)
#   scratch: the classifier grid's scratch cells (they need no encoder)
#   probe:   once the AE exists, the finetune and linear cells, then the shift evaluation
#   budget:  finetune and scratch at 100% labels in 10 epochs instead of 20 (a design iteration)
# Every step runs under the phase deadline; runs keep a best.pt per epoch, so a cut run still counts.
# Phase C then runs bench/gpu_check.sh alone, so its timings see an idle GPU.
# Writes OUT/runs/... (every run directory), OUT/steps.txt (each step's exit code and seconds),
# OUT/logs/*.log, and outs/gpu/ (the profile). With PACK=DIR it also packs what a report needs into a
# few files there: results.tar.gz (everything but checkpoints), the AE backbone, and the codecs of
# SHIP_LAMBDAS (weights only), for evaluation on another machine.
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
    CODEC_EPOCHS=${CODEC_EPOCHS:-10}
    LAMBDAS=${LAMBDAS:-"0.004 0.012 0.035 0.1"}
    RD_LIMIT=${RD_LIMIT:-2000}       # test/val images in the RD evaluation (stratified)
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
        for lam in ${SHIP_LAMBDAS:-0.004 0.012 0.035}; do
            "$PY" experiments/gpu/pack_checkpoint.py "$R/codec/lambda$lam" "$PACK/codec_lambda$lam.pt" || true
        done
        tar -czf "$PACK/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' --exclude='files' --exclude='wandb' \
            "$OUT" outs/gpu
        ls -la "$PACK"
    fi
}

# ---- collect: after `report`, on the machine that holds REP (CPU): the grid table from the evaluated
# cells, the codec prior refits and RD evaluation, the λ=0.2 point, and the copies into outs/full/.
# CODECS: the packed codec_lambda*.pt, each copied to $CODECS/lambda*/best.pt.
collect() {
    set -e
    DATA=${1:?usage: experiments/gpu/run.sh collect DATA REP}
    local REP=${2:?usage: experiments/gpu/run.sh collect DATA REP}
    local R=$REP/runs CODECS=${CODECS:-runs/gpu/codec}
    PY=${PY:-.venv/bin/python}
    export WANDB_MODE=${WANDB_MODE:-offline}

    $PY jobs/clf_grid.py --data "$DATA" --out "$R/grid" --grid jobs/configs/gpu_clf_grid.yaml --tabulate --no-wandb
    for run in "$CODECS"/lambda*; do
        [ -f "$run/codec.pt" ] || $PY src/codec_fit.py --run "$run" --data "$DATA"
    done
    local RD=$CODECS/../rd
    # shellcheck disable=SC2046
    [ -f "$RD/rd.json" ] || $PY src/rd_eval.py --data "$DATA" --runs $(ls -d "$CODECS"/lambda*) --out "$RD" --splits test val \
        --threads 2
    local HI=$CODECS/../codec_cpu/lambda0.2
    [ -f "$HI/best.pt" ] || $PY src/train_ae.py --data "$DATA" --out "$HI" --config jobs/configs/full.yaml \
        entropy_model=factorized latent_channels=48 init_from="$CODECS/lambda0.035/codec.pt" rd_lambda=0.2 epochs=1 \
        train_subset=12000 val_subset=1000 batch_size=128 lr=0.0005 warmup_epochs=0.05 wandb=false
    [ -f "$HI/codec.pt" ] || $PY src/codec_fit.py --run "$HI" --data "$DATA"
    # shellcheck disable=SC2046
    [ -f "$RD/../rd4/rd.json" ] || $PY src/rd_eval.py --data "$DATA" --runs $(ls -d "$CODECS"/lambda*) "$HI" \
        --out "$RD/../rd4" --splits test val --threads 2 --reuse "$RD/rd.json"

    # outs/full/{ae,grid,budget,codec,rd}, outs/full/{steps,gpu}.txt
    mkdir -p outs/full/ae outs/full/grid/histories outs/full/budget outs/full/codec outs/full/rd
    cp "$R"/ae/eval/*.png "$R"/ae/eval/metrics.json "$R"/ae/eval/metrics.csv "$R"/ae/history.json "$R"/ae/config.yaml \
        outs/full/ae/
    cp "$R"/grid/grid.* outs/full/grid/
    for cell in "$R"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/full/grid/histories/$(basename "$cell").json"; done
    cp "$R"/grid/finetune-f1-s0/config.yaml outs/full/grid/config_finetune.yaml
    cp "$R"/grid/scratch-f1-s0/config.yaml outs/full/grid/config_scratch.yaml
    cp "$R"/grid/linear-f1-s0/config.yaml outs/full/grid/config_linear.yaml
    for run in "$R"/budget/*/; do cp "$run/history.json" "outs/full/budget/$(basename "$run").json"; done
    for run in "$R"/codec/lambda*/; do cp "$run/history.json" "outs/full/codec/$(basename "$run").json"; done
    cp "$RD"/../rd4/rd.json "$RD"/../rd4/*.png outs/full/rd/
    cp "$HI"/history.json outs/full/codec/lambda0.2-cpu.json
    cp "$REP"/steps.txt "$REP"/gpu.txt outs/full/
    $PY jobs/report.py
}

# ---- codecs: one codec family on ONE GPU: one codec per λ, trained from scratch, all at once.
# CONFIG=jobs/configs/codec_wide.yaml (default) or codec_skip.yaml picks the family. The runs share the
# GPU as concurrent processes (one small net leaves most of it idle) and stop at the deadline BUDGET;
# each keeps a best.pt per epoch, so a cut run still counts. The prior refit and the rate-distortion
# evaluation are CPU work and run elsewhere (src/codec_fit.py, src/rd_eval.py) in the same session: the
# weights live only in runs/, which no later session keeps.
# Writes OUT/runs/lambda*/ and OUT/logs/. With PACK=DIR it also puts each codec's weights there
# (codec_lambda*.pt: no optimiser state, and the transforms' float tensors in float16, so that four
# 4.5M-parameter codecs fit what one device call may bring back; the entropy model stays float32),
# and everything else but checkpoints (results.tar.gz).
codecs() {
    [ $# -ge 2 ] || { echo "usage: experiments/gpu/run.sh codecs DATA OUT [key=value ...]" >&2; exit 2; }
    DATA=$1 OUT=$2
    shift 2
    PY=${PY:-python3}
    BUDGET=${BUDGET:-480}  # seconds for all the training
    LAMBDAS=${LAMBDAS:-"0.01 0.03 0.1 0.3"}
    local config=${CONFIG:-jobs/configs/codec_wide.yaml}
    export WANDB_MODE=${WANDB_MODE:-disabled}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
    mkdir -p "$OUT/runs" "$OUT/logs"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null ||
        echo "no GPU" >"$OUT/gpu.txt"

    start=$SECONDS
    local pids=() lambdas rc i
    read -ra lambdas <<<"$LAMBDAS"
    for lam in "${lambdas[@]}"; do
        timeout --kill-after=10 "$BUDGET" "$PY" src/train_ae.py --data "$DATA" --out "$OUT/runs/lambda$lam" \
            --config "$config" rd_lambda="$lam" wandb=false "$@" >"$OUT/logs/lambda$lam.log" 2>&1 &
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
            "$PY" experiments/gpu/pack_checkpoint.py "$run" "$PACK/codec_$(basename "$run").pt" --float16 || true
        done
        tar -czf "$PACK/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' --exclude='files' --exclude='wandb' "$OUT"
        ls -la "$PACK"
    fi
}

# ---- collect-codecs: one codec family from `codecs` (REP: its OUT): its training histories, deadline
# log and GPU into outs/full/NAME/
collect_codecs() {
    set -e
    local REP=${1:?usage: experiments/gpu/run.sh collect-codecs REP NAME}
    local NAME=${2:?usage: experiments/gpu/run.sh collect-codecs REP NAME}
    mkdir -p "outs/full/$NAME"
    for run in "$REP"/runs/lambda*/; do cp "$run/history.json" "outs/full/$NAME/$(basename "$run").json"; done
    cp "$REP"/steps.txt "$REP"/gpu.txt "outs/full/$NAME/"
}

cmd=${1:-}
shift || true
case "$cmd" in
report) report "$@" ;;
collect) collect "$@" ;;
codecs) codecs "$@" ;;
collect-codecs) collect_codecs "$@" ;;
*)
    sed -n '2,28p' "$0"
    exit 2
    ;;
esac
