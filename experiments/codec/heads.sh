#!/usr/bin/env bash
# What moves the codec's encoder (issue #26)? The decoder probe (decoder_probe.py) found the shipped model's encoder
# the limit, not its decoder. Two runs of one recipe through src/train_codec.py (train -> export) from the same seed:
# as it is (the control) and with one change to the analysis side, one core each. Then heads_compare.py codes 1,000
# stratified validation images at every level with the shipped model and both runs (real files), and compares them
# (BD-rate, PSNR at equal bpp, paired bootstrap). Every outs/ folder below was made with model 67d76467e978 shipped
# (until commit ab842f6; the finetune modes train that model on): to repeat one, check that commit out.
#
#   bash experiments/codec/heads.sh finetune DATA [RUNS]   heads.yaml: the shipped model trained on for 3 epochs,
#                                                          analysis_blocks=1 (~65 min) -> outs/codec_heads
#   bash experiments/codec/heads.sh scratch DATA [RUNS]    heads_scratch.yaml: codec/gpu.yaml's design from scratch,
#                                                          5 epochs, analysis_blocks=2 (~110 min)
#                                                          -> outs/codec_heads_scratch
#   bash experiments/codec/heads.sh stem DATA [RUNS]       the same recipe with skip_from_stem=true (the skip latent
#                                                          also reads the stem's full-resolution features); its
#                                                          control is scratch's (~110 min) -> outs/codec_stem
#   bash experiments/codec/heads.sh both DATA [RUNS]       the same recipe with both changes (analysis_blocks=2,
#                                                          skip_from_stem=true), against scratch's control and
#                                                          its blocks run (~110 min) -> outs/codec_stem_blocks
#   bash experiments/codec/heads.sh clip DATA [RUNS]       the same recipe with clip_quantiles=false (grad_clip
#                                                          leaves out the quantiles), against scratch's control
#                                                          (~110 min) -> outs/codec_clip
#   bash experiments/codec/heads.sh finetune_clip DATA [RUNS]  heads.yaml with clip_quantiles=false: the shipped
#                                                          model trained on without the quantiles in the clip,
#                                                          against finetune's control (~75 min)
#                                                          -> outs/codec_finetune_clip
#   bash experiments/codec/heads.sh next DATA [RUNS]       the same recipe with both of codec/full.yaml's changes
#                                                          (analysis_blocks=2, clip_quantiles=false): do they add up?
#                                                          Against scratch's control (~110 min) -> outs/codec_next_probe
#   bash experiments/codec/heads.sh skip64 DATA [RUNS]     codec/full.yaml's design (next's arm) for 3 epochs, as it
#                                                          is and with skip_channels=64 (twice the 16x16 skip latent's
#                                                          channels): does more latent at block 1's resolution lift
#                                                          the high rates? Both arms trained, short enough for one
#                                                          session (~110 min) -> outs/codec_skip64
#   OMP_NUM_THREADS=2 bash experiments/codec/heads.sh latent16 DATA [RUNS]
#                                                          skip64's recipe with latent_size=16: the main latent at
#                                                          16x16 (block 1 pools, blocks 2 and 3 do not), against
#                                                          skip64's control (trained already, so the arm gets both
#                                                          cores: ~105 min) -> outs/codec_latent16
#   bash experiments/codec/heads.sh blocks4 DATA [RUNS]    skip64's recipe with analysis_blocks=4 (twice the residual
#                                                          blocks before each latent head), against skip64's control
#                                                          (~80 min) -> outs/codec_blocks4
#   bash experiments/codec/heads.sh blocks8 DATA [RUNS]    the same with analysis_blocks=8, also compared with
#                                                          blocks4's run: run beside blocks4 (one core each), it
#                                                          finishes last (~90 min) -> outs/codec_blocks8
#   bash experiments/codec/heads.sh width50 DATA [RUNS]    skip64's recipe with analysis_width=0.5 (the two blocks'
#                                                          inner width half their channels, not a quarter), against
#                                                          skip64's control (~85 min) -> outs/codec_width50
#   bash experiments/codec/heads.sh width100 DATA [RUNS]   the same with analysis_width=1 (as wide as their channels),
#                                                          also compared with width50's run: run beside width50 (one
#                                                          core each), it finishes last (~95 min) -> outs/codec_width100
#   OMP_NUM_THREADS=2 bash experiments/codec/heads.sh subpositions DATA [RUNS]
#                                                          skip64's recipe with context=subpositions (the skip
#                                                          latent's sub-positions coded one after another in each
#                                                          checkerboard pass), against skip64's control (trained
#                                                          already, so the arm gets both cores: ~70 min)
#                                                          -> outs/codec_subpositions
#
# Each change's parameters are built last, so from one seed every other initial weight is the control's.
# DATA: CIFAR-10 source (the JPEG archive); RUNS: default runs. Resumable: training continues from last.pt, a
# finished export is skipped, coded curves are cached in RUNS/codec_heads_curves.
# The times above assume the shipped model's curve is in that cache; with an empty cache, coding it adds up to ~15 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
modes="finetune|scratch|stem|both|clip|finetune_clip|next|skip64|latent16|blocks4|blocks8|width50|width100|subpositions"
usage="usage: experiments/codec/heads.sh $modes DATA [RUNS]"
# name: the outs/ folder and the runs' prefix; arm and change: the changed run; control: the control run's prefix;
# also: another run of the same recipe for the comparison (NAME=FOLDER under RUNS), its history copied too;
# base: overrides of the recipe for both runs
full_design=(analysis_blocks=2 clip_quantiles=false epochs=3)  # codec/full.yaml's design, 3 epochs: skip64 onwards
case ${1:-} in
finetune) recipe=experiments/codec/heads.yaml name=codec_heads arm=blocks change=(analysis_blocks=1) ;;
scratch) recipe=experiments/codec/heads_scratch.yaml name=codec_heads_scratch arm=blocks change=(analysis_blocks=2) ;;
stem) recipe=experiments/codec/heads_scratch.yaml name=codec_stem arm=stem change=(skip_from_stem=true)
    control=codec_heads_scratch ;;
both) recipe=experiments/codec/heads_scratch.yaml name=codec_stem_blocks arm=both
    change=(analysis_blocks=2 skip_from_stem=true) control=codec_heads_scratch also=blocks=codec_heads_scratch_blocks ;;
clip) recipe=experiments/codec/heads_scratch.yaml name=codec_clip arm=clip change=(clip_quantiles=false)
    control=codec_heads_scratch ;;
finetune_clip) recipe=experiments/codec/heads.yaml name=codec_finetune_clip arm=clip change=(clip_quantiles=false)
    control=codec_heads ;;
next) recipe=experiments/codec/heads_scratch.yaml name=codec_next_probe arm=next
    change=(analysis_blocks=2 clip_quantiles=false) control=codec_heads_scratch ;;
skip64) recipe=experiments/codec/heads_scratch.yaml name=codec_skip64 arm=skip64
    base=("${full_design[@]}") change=(skip_channels=64) ;;
latent16) recipe=experiments/codec/heads_scratch.yaml name=codec_latent16 arm=latent16
    base=("${full_design[@]}") change=(latent_size=16) control=codec_skip64 ;;
blocks4) recipe=experiments/codec/heads_scratch.yaml name=codec_blocks4 arm=blocks4
    base=("${full_design[@]}") change=(analysis_blocks=4) control=codec_skip64 ;;
blocks8) recipe=experiments/codec/heads_scratch.yaml name=codec_blocks8 arm=blocks8
    base=("${full_design[@]}") change=(analysis_blocks=8) control=codec_skip64
    also=blocks4=codec_blocks4_blocks4 ;;
width50) recipe=experiments/codec/heads_scratch.yaml name=codec_width50 arm=width50
    base=("${full_design[@]}") change=(analysis_width=0.5) control=codec_skip64 ;;
width100) recipe=experiments/codec/heads_scratch.yaml name=codec_width100 arm=width100
    base=("${full_design[@]}") change=(analysis_width=1) control=codec_skip64 also=width50=codec_width50_width50 ;;
subpositions) recipe=experiments/codec/heads_scratch.yaml name=codec_subpositions arm=subpositions
    base=("${full_design[@]}") change=(context=subpositions) control=codec_skip64 ;;
*) echo "$usage" >&2 && exit 2 ;;
esac
control=${control:-$name}
DATA=${2:?$usage}
RUNS=${3:-runs}
PY=${PY:-.venv/bin/python}
declare -A runs
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one core a run when both arms train
train() {  # $1: the run folder; then its overrides (after base's)
    local run=$1
    shift
    $PY src/train_codec.py --data "$DATA" --out "$run" --recipe "$recipe" --no-wandb --no-size-limits \
        ${base[@]+"${base[@]}"} "$@" --steps train export  # a probe's model is measured, not shipped: no size limits
}
code() {  # one model's curve into the cache, one core each; the comparison below reads them back
    $PY experiments/codec/heads_compare.py --data "$DATA" --models "$@" --cache "$RUNS/codec_heads_curves" \
        --out "$RUNS/${name}_coding"
}
runs=([control]="$RUNS/${control}_control" [$arm]="$RUNS/${name}_$arm")
wait_all() {  # every background job, failing if one failed (a stopped run exits 75): nothing is coded half-trained
    local pid
    for pid in $(jobs -p); do wait "$pid"; done
}
# each run is coded as soon as it is trained, and the shipped model's curve on the control's core after its own
{ train "${runs[control]}" && code "control=${runs[control]}/model" && code shipped=models/codec-v2; } &
{ train "${runs[$arm]}" "${change[@]}" && code "$arm=${runs[$arm]}/model"; } &
wait_all
mkdir -p "outs/$name"
for a in control "$arm"; do cp "${runs[$a]}/history.json" "outs/$name/history_$a.json"; done
models=(shipped=models/codec-v2 "control=${runs[control]}/model")
if [ -n "${also:-}" ]; then
    models+=("${also%%=*}=$RUNS/${also#*=}/model")
    cp "$RUNS/${also#*=}/history.json" "outs/$name/history_${also%%=*}.json"
fi
$PY experiments/codec/heads_compare.py --data "$DATA" --models "${models[@]}" "$arm=${runs[$arm]}/model" \
    --cache "$RUNS/codec_heads_curves" --out "outs/$name"
