#!/usr/bin/env bash
# Do residual analysis blocks before the latent heads move the codec's RD curve (issue #26)? The decoder probe
# (decoder_probe.py) found the shipped model's encoder the limit, not its decoder. Two runs of one recipe through
# src/train_codec.py (train -> export), side by side on one core each, from the same seed: as it is (the control)
# and with residual bottleneck blocks before each latent head. Then heads_compare.py codes 1,000 stratified
# validation images at every level with the shipped model and both runs (real files), and compares them
# (BD-rate, PSNR at equal bpp, paired bootstrap).
#
#   bash experiments/codec/heads.sh finetune DATA [RUNS]   heads.yaml: the shipped model trained on for 3 epochs,
#                                                          analysis_blocks=1 (~65 min) -> outs/codec_heads
#   bash experiments/codec/heads.sh scratch DATA [RUNS]    heads_scratch.yaml: full_base.yaml's design from scratch,
#                                                          5 epochs, analysis_blocks=2 (~110 min) -> outs/codec_heads_scratch
#
# DATA: CIFAR-10 source (the JPEG archive); RUNS: default runs. Resumable: training continues from last.pt, a
# finished export is skipped, coded curves are cached in RUNS/codec_heads_curves.
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: experiments/codec/heads.sh finetune|scratch DATA [RUNS]"
case ${1:-} in
finetune) recipe=experiments/codec/heads.yaml blocks=1 name=codec_heads ;;
scratch) recipe=experiments/codec/heads_scratch.yaml blocks=2 name=codec_heads_scratch ;;
*) echo "$usage" >&2 && exit 2 ;;
esac
DATA=${2:?$usage}
RUNS=${3:-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
train() {  # $1: the arm's name; then its overrides
    local arm=$1
    shift
    $PY src/train_codec.py --data "$DATA" --out "$RUNS/${name}_$arm" --recipe "$recipe" --no-wandb "$@" \
        --steps train export
}
code() {  # one model's curve into the cache, one core each; the comparison below reads them back
    $PY experiments/codec/heads_compare.py --data "$DATA" --models "$@" --cache "$RUNS/codec_heads_curves" \
        --out "$RUNS/${name}_coding"
}
train control &
train blocks "analysis_blocks=$blocks" &
wait
code "control=$RUNS/${name}_control/model" &
code "blocks=$RUNS/${name}_blocks/model" &
wait
mkdir -p "outs/$name"
for arm in control blocks; do cp "$RUNS/${name}_$arm/history.json" "outs/$name/history_$arm.json"; done
$PY experiments/codec/heads_compare.py --data "$DATA" --models shipped=models/codec-v2 \
    "control=$RUNS/${name}_control/model" "blocks=$RUNS/${name}_blocks/model" \
    --cache "$RUNS/codec_heads_curves" --out "outs/$name"
