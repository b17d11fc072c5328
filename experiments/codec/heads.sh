#!/usr/bin/env bash
# outs/codec_heads (issue #26): do residual analysis blocks before the latent heads move the codec's RD curve?
# The decoder probe (decoder_probe.py) found the shipped model's encoder the limit, not its decoder. Two runs of
# heads.yaml through src/train_codec.py (train -> export), side by side on one core each (~65 min): the shipped
# model trained on for 3 epochs as it is (the control), and the same with analysis_blocks=1, from the same seed.
# Then heads_compare.py codes 1,000 stratified validation images at every level with the shipped model and both
# runs (real files), and compares them (BD-rate, PSNR at equal bpp, paired bootstrap).
#
#   bash experiments/codec/heads.sh DATA [RUNS]    DATA: CIFAR-10 source (the JPEG archive); RUNS: default runs
#
# Resumable: training continues from last.pt, a finished export is skipped, coded curves are cached in RUNS.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/codec/heads.sh DATA [RUNS]}
RUNS=${2:-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
train() {  # $1: the arm's name; then its overrides (before --steps, which takes the words after it)
    local arm=$1
    shift
    $PY src/train_codec.py --data "$DATA" --out "$RUNS/codec_heads_$arm" --recipe experiments/codec/heads.yaml \
        --no-wandb "$@" --steps train export
}
train control &
train blocks analysis_blocks=1 &
wait
mkdir -p outs/codec_heads
for arm in control blocks; do cp "$RUNS/codec_heads_$arm/history.json" "outs/codec_heads/history_$arm.json"; done
$PY experiments/codec/heads_compare.py --data "$DATA" --models shipped=models/codec-v2 \
    "control=$RUNS/codec_heads_control/model" "blocks=$RUNS/codec_heads_blocks/model" \
    --cache "$RUNS/codec_heads_curves" --out outs/codec_heads
