#!/usr/bin/env bash
# Codec v2 at half width on a CPU, the models shipped before the GPU-trained one (experiments/gpu/codec.sh),
# and their figures in REPORT.md's design loop, in three recipes through src/train_codec.py (train -> export
# -> rd), each measured on the same 2,000 stratified test images:
#   1. jobs/configs/codec/cpu.yaml into RUNS/codec_v2_base: the hyperprior with six levels, 4 epochs
#      (~75 min on one core) -> outs/codec_v2_base (the design loop's "before");
#   2. jobs/configs/codec/cpu_context.yaml from it into RUNS/codec_v2_context: a checkerboard context and four
#      lower levels, 4 epochs (~35 min with OMP_NUM_THREADS=2) -> outs/codec_v2_context;
#   3. jobs/configs/codec/cpu_long.yaml from that into RUNS/codec_v2_cpu: 8 epochs more (~70 min)
#      -> outs/codec_v2_cpu (shipped as model 7212e5003754 until commit 43f00fe).
#
#   bash experiments/codec/v2.sh DATA [RUNS]    DATA: CIFAR-10 source (the JPEG archive); RUNS: default runs
#
# Resumable: training continues from last.pt and finished steps are skipped. Each RD evaluation takes ~40 min
# for the codec; AVIF at speed 0 takes ~30 min more, once (its curve is cached in rd/baselines/ and shared).
# On a GPU use jobs/configs/codec/full.yaml (the pipeline's recipe, experiments/gpu/codec.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/codec/v2.sh DATA [RUNS]}
RUNS=${2:-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

mkdir -p outs/codec_v2_cpu/rd outs/codec_v2_context/rd outs/codec_v2_base/rd "$RUNS/codec_v2_cpu/rd" \
    "$RUNS/codec_v2_context/rd"
$PY src/train_codec.py --data "$DATA" --out "$RUNS/codec_v2_base" --recipe jobs/configs/codec/cpu.yaml --no-wandb
cp "$RUNS/codec_v2_base/history.json" "$RUNS/codec_v2_base/config.yaml" outs/codec_v2_base/
cp "$RUNS/codec_v2_base/rd/rd.json" "$RUNS/codec_v2_base/rd/rd_test.png" outs/codec_v2_base/rd/
cp -rn "$RUNS/codec_v2_base/rd/baselines" "$RUNS/codec_v2_context/rd/"
$PY src/train_codec.py --data "$DATA" --out "$RUNS/codec_v2_context" --recipe jobs/configs/codec/cpu_context.yaml \
    --no-wandb "init_from=$RUNS/codec_v2_base"
cp "$RUNS/codec_v2_context/history.json" "$RUNS/codec_v2_context/config.yaml" outs/codec_v2_context/
cp "$RUNS/codec_v2_context/rd/rd.json" "$RUNS/codec_v2_context/rd/rd_test.png" outs/codec_v2_context/rd/
cp -rn "$RUNS/codec_v2_context/rd/baselines" "$RUNS/codec_v2_cpu/rd/"
$PY src/train_codec.py --data "$DATA" --out "$RUNS/codec_v2_cpu" --recipe jobs/configs/codec/cpu_long.yaml \
    --no-wandb "init_from=$RUNS/codec_v2_context"
cp "$RUNS/codec_v2_cpu/history.json" "$RUNS/codec_v2_cpu/config.yaml" outs/codec_v2_cpu/
cp "$RUNS/codec_v2_cpu/rd/rd.json" "$RUNS/codec_v2_cpu/rd/rd_test.png" outs/codec_v2_cpu/rd/
$PY jobs/report.py
