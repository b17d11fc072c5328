#!/usr/bin/env bash
# Does sharing one set of transforms across eleven levels cost the shipped codec at the floors (issue #26)? The shipped
# model trained on at fewer levels; heads_compare.py then codes the same 1,000 stratified validation images with it and
# with the shipped model (real files) and compares them at equal bpp (paired bootstrap). One core, resumable.
#
#   bash experiments/codec/levels.sh three DATA [RUNS]   levels.yaml: the three levels around 1 bpp only, 2 epochs
#                                                        (~40 min of training, ~20 of coding) -> outs/codec_levels
#   bash experiments/codec/levels.sh six DATA [RUNS]     levels_six.yaml: every other level, so six across the whole
#                                                        curve, 2 epochs (~40 min, ~5 of coding) -> outs/codec_levels_six
#   bash experiments/codec/levels.sh three-2bpp DATA [RUNS]  levels_2bpp.yaml: the three levels around 2 bpp only
#                                                        -> outs/codec_levels_2bpp
#   bash experiments/codec/levels.sh floors DATA [RUNS]  levels_floors.yaml: eleven levels, nine of them between 0.7
#                                                        and 2.3 bpp, the span kept -> outs/codec_levels_floors
#   bash experiments/codec/levels.sh weighted DATA [RUNS]  levels_weighted.yaml: the eleven levels, each drawn in
#                                                        inverse proportion to its loss -> outs/codec_levels_weighted
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: experiments/codec/levels.sh three|six|three-2bpp|floors|weighted DATA [RUNS]"
case ${1:-} in
three) recipe=experiments/codec/levels.yaml name=codec_levels arm=three_levels ;;
six) recipe=experiments/codec/levels_six.yaml name=codec_levels_six arm=six_levels ;;
three-2bpp) recipe=experiments/codec/levels_2bpp.yaml name=codec_levels_2bpp arm=three_levels_2bpp ;;
floors) recipe=experiments/codec/levels_floors.yaml name=codec_levels_floors arm=floor_levels ;;
weighted) recipe=experiments/codec/levels_weighted.yaml name=codec_levels_weighted arm=weighted_levels ;;
*) echo "$usage" >&2 && exit 2 ;;
esac
DATA=${2:?$usage}
RUNS=${3:-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
run=$RUNS/$name
$PY src/train_codec.py --data "$DATA" --out "$run" --recipe "$recipe" --no-wandb --steps train export
mkdir -p "outs/$name"
cp "$run/history.json" "outs/$name/history.json"
$PY experiments/codec/heads_compare.py --data "$DATA" --models shipped=models/codec-v2 "$arm=$run/model" \
    --cache "$RUNS/codec_heads_curves" --out "outs/$name"
