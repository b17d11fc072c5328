#!/usr/bin/env bash
# The shipped codec (models/codec-v2): jobs/configs/codec/full.yaml's chain trained on one GPU, then
# evaluated on CPUs.
#
#   BUDGET=540 PACK=DIR bash experiments/gpu/codec.sh train DATA WORK    ONE GPU: train + export -> WORK/codec
#   bash experiments/gpu/codec.sh collect DATA RUN                       CPUs: rd -> outs/codec_v2/, models/codec-v2
#
# RECIPE=FILE trains another recipe the same way (default jobs/configs/codec/full.yaml), e.g. the next candidate,
# experiments/gpu/codec_next.yaml; `collect` is full.yaml's.
#
# DATA: a CIFAR-10 source (.tar.gz or folder) or a prepared cache. `train` prepares the data cache in
# WORK, then runs src/train_codec.py --steps train export under a deadline of BUDGET seconds: the chain,
# full_base.yaml -> full_long.yaml -> full.yaml, takes about 8 minutes on an H200. PACK=DIR: WORK/codec
# without its checkpoints, as DIR/{codec,model,base_model}.tar.gz (histories and configs; the two exported
# models), small enough for what one device call brings back. `collect` takes RUN, those archives unpacked
# into one folder (or the run itself), trains the steps it lacks (a step with its model and no checkpoint
# was trained elsewhere), runs the RD evaluations of its last two steps (about 22 minutes each on 2 cores
# once AVIF's curve is cached) and copies them to outs/codec_v2/ and the model to models/codec-v2.
#
# How the shipped model was made: full_base.yaml and full_long.yaml (then named full.yaml and
# full_long.yaml) in two device calls on an H200 with the data archive (commits cac8017 and 43f00fe):
# full_base.yaml's 9 epochs beside a probe that shared the GPU, then full_long.yaml's 20 epochs alone;
# then `collect` here, which trained full.yaml's one epoch on the CPU (11 minutes with OMP_NUM_THREADS=2).
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
        # three archives, each under what one device call brings back in a file: the run without checkpoints or
        # models, and the exported models of the last two steps (the first step's is only their start)
        tar -czf "$PACK/codec.tar.gz" -C "$work" --exclude=last.pt --exclude=best.pt --exclude='*.pt.tmp' \
            --exclude=model codec codec.log gpu.txt
        tar -czf "$PACK/model.tar.gz" -C "$work" codec/model
        if [ -d "$work/codec/base/model" ]; then tar -czf "$PACK/base_model.tar.gz" -C "$work" codec/base/model; fi
        ls -la "$PACK"
    fi
}

collect() {  # collect DATA RUN: on CPUs, what RUN lacks of full.yaml's chain, the RD evaluations, the copies
    set -e
    local data=$1 run=$2
    PY=${PY:-.venv/bin/python}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
    "$PY" src/train_codec.py --data "$data" --out "$run/base" --recipe jobs/configs/codec/full_long.yaml --steps rd \
        --no-wandb
    mkdir -p "$run/rd"
    cp -rn "$run/base/rd/baselines" "$run/rd/" # AVIF's, WebP's and JPEG's curves: the same images
    "$PY" src/train_codec.py --data "$data" --out "$run" --recipe jobs/configs/codec/full.yaml --no-wandb
    mkdir -p outs/codec_v2/rd outs/codec_v2/base/rd outs/codec_v2/base/base
    for step in . base base/base; do cp "$run/$step"/history.json "$run/$step"/config.yaml "outs/codec_v2/$step/"; done
    for step in . base; do cp "$run/$step"/rd/rd.json "$run/$step"/rd/rd_test.png "outs/codec_v2/$step/rd/"; done
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
