#!/usr/bin/env bash
# Does sharing one set of transforms across eleven levels cost the shipped codec at 1 bpp (issue #26)? levels.yaml
# trains the shipped model on at the three levels around 1 bpp only; heads_compare.py then codes the same 1,000
# stratified validation images with it and with the shipped model (real files) and compares them at equal bpp
# (paired bootstrap) -> outs/codec_levels. One core, ~45 min of training plus ~20 of coding.
#
#   bash experiments/codec/levels.sh DATA [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: experiments/codec/levels.sh DATA [RUNS]"
DATA=${1:?$usage}
RUNS=${2:-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
run=$RUNS/codec_levels
$PY src/train_codec.py --data "$DATA" --out "$run" --recipe experiments/codec/levels.yaml --no-wandb \
    --steps train export
mkdir -p outs/codec_levels
cp "$run/history.json" outs/codec_levels/history.json
$PY experiments/codec/heads_compare.py --data "$DATA" --models shipped=models/codec-v2 "three_levels=$run/model" \
    --cache "$RUNS/codec_heads_curves" --out outs/codec_levels
