#!/usr/bin/env bash
# The shipped codec (models/codec-v2): jobs/configs/codec/full.yaml trained on one GPU, then evaluated on CPUs.
#
#   BUDGET=540 PACK=DIR bash experiments/gpu/codec.sh train DATA WORK    ONE GPU: train + export -> WORK/codec
#   bash experiments/gpu/codec.sh collect DATA RUN                       CPUs: rd -> outs/codec_v2_subpositions/,
#                                                                        models/codec-v2
#
# RECIPE=FILE trains another recipe the same way (default jobs/configs/codec/full.yaml), e.g. the GPU chain that
# made the model shipped before, jobs/configs/codec/gpu_top.yaml; `collect` is full.yaml's.
#
# DATA: a CIFAR-10 source (.tar.gz or folder) or a prepared cache. `train` prepares the data cache in
# WORK, then runs src/train_codec.py --steps train export under a deadline of BUDGET seconds (full.yaml's chain:
# full_base.yaml, 44 epochs from scratch, full_context.yaml's 6, full_levels.yaml's 2, then its own 4 on the
# decoder alone: an estimated 10 minutes on an H200; a run cut by the deadline resumes when run again). PACK=DIR: WORK/codec without its checkpoints, as DIR/{codec,model}.tar.gz (history, config and the exported model), small enough for what one device call
# brings back. `collect` takes RUN, those archives unpacked into one folder (or the run itself), trains what
# it lacks (a run with its model and no checkpoint was trained elsewhere), runs the RD evaluation (about 20
# minutes on 2 cores, plus ~15 for AVIF's curve the first time) and copies it to outs/codec_v2_subpositions/ and
# the model to models/codec-v2.
#
# How the shipped model was made: full_base.yaml on 2 CPU cores across sessions (src/train_codec.py's resume;
# model 486cffa0b41a), then full_context.yaml's 6 epochs on 2 CPU threads with that model as RUN/base/model (model
# fd696459458a, outs/codec_v2_subpositions_6ep/; at 3 epochs 4a318be8491e, outs/codec_v2_subpositions_3ep/),
# full_levels.yaml's 2 epochs with fd696459458a as RUN/base/model (model 572d1ae57e83, outs/codec_v2_floors_3x/;
# with the 1 bpp levels at 1.5 instead, 6e92633d9e53, outs/codec_v2_floors_1p5x/), all shipped before, then
# full.yaml's 4 epochs on the decoder with 572d1ae57e83 as RUN/base/model and `collect` here. The
# model before 486cffa0b41a (outs/codec_v2_gpu/): gpu.yaml -> gpu_long.yaml on an H200 (commits cac8017 and 43f00fe,
# then named full_base.yaml and full_long.yaml), then gpu_top.yaml's one epoch on the CPU, by `collect` at commit
# ab842f6.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PYTHONUNBUFFERED=1

train() {
    local data=$1 work=$2 start=$SECONDS
    PY=${PY:-python3}
    export WANDB_MODE=disabled OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
    mkdir -p "$work"
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    } >"$work/gpu.txt" 2>&1
    local cache
    cache=$("$PY" src/prepare_data.py --data "$data" --cache-dir "$work/data" | sed -n 's/^cache \(.*\) ready:.*/\1/p')
    [ -f "$cache" ] || { echo "no data cache from $data" >&2; exit 1; }
    # best.pt is kept every epoch: a run cut by the deadline still exports, and a rerun resumes it
    timeout --kill-after=5 $((${BUDGET:-540} - (SECONDS - start) - 20)) "$PY" src/train_codec.py --data "$cache" \
        --out "$work/codec" --recipe "${RECIPE:-jobs/configs/codec/full.yaml}" --steps train export --no-wandb "${@:3}" \
        >"$work/codec.log" 2>&1
    echo "train_codec: rc=$? after $((SECONDS - start))s" | tee -a "$work/gpu.txt"
    grep -a "model id\|\] epoch" "$work/codec.log" | tail -4
    if [ -n "${PACK:-}" ]; then
        mkdir -p "$PACK"
        # the run without checkpoints or models, and the exported model (a chain's first steps' are only its start)
        tar -czf "$PACK/codec.tar.gz" -C "$work" --exclude=last.pt --exclude=best.pt --exclude='*.pt.tmp' \
            --exclude=model codec codec.log gpu.txt
        tar -czf "$PACK/model.tar.gz" -C "$work" codec/model
        ls -la "$PACK"
    fi
}

collect() {  # collect DATA RUN: on CPUs, what RUN lacks of full.yaml, the RD evaluation, the copies
    set -e
    local data=$1 run=$2
    PY=${PY:-.venv/bin/python}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
    "$PY" src/train_codec.py --data "$data" --out "$run" --recipe jobs/configs/codec/full.yaml --no-wandb
    mkdir -p outs/codec_v2_subpositions/rd
    cp "$run"/history.json "$run"/config.yaml outs/codec_v2_subpositions/
    cp "$run"/rd/rd.json "$run"/rd/rd_test.png outs/codec_v2_subpositions/rd/
    rm -rf models/codec-v2
    cp -r "$run/model" models/codec-v2
    "$PY" jobs/report.py
}

cmd=${1:-}
shift || true
case "$cmd:$#" in
train:[2-9]*) train "$@" ;;
collect:2) collect "$@" ;;
*)
    sed -n '2,6p' "$0"
    exit 2
    ;;
esac
