#!/usr/bin/env bash
# The shipped v2 codec (models/codec-v2) and its figures in REPORT.md: the CPU recipe
# jobs/configs/codec/cpu.yaml through src/train_codec.py (train -> export -> rd), then copied here.
#
#   bash experiments/codec/v2.sh DATA [RUNS]    DATA: CIFAR-10 source (the JPEG archive); RUNS: default runs
#   RD_ONLY=1 bash experiments/codec/v2.sh DATA [RUNS]   only the RD evaluation, of the shipped model as it is
#                                                         (after a change of the file format or the coder)
#
# Resumable: training continues from RUNS/codec_v2/last.pt and finished steps are skipped. About 75 min of
# one core for training, then ~45 min for the RD evaluation (AVIF at speed 0 is most of it; its curve is
# cached in RUNS/codec_v2/rd/baselines/). On a GPU use jobs/configs/codec/full.yaml (the pipeline's recipe).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/codec/v2.sh DATA [RUNS]}
RUNS=${2:-runs}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

mkdir -p outs/codec_v2/rd
if [[ -n ${RD_ONLY:-} ]]; then
    $PY src/rd_eval.py --data "$DATA" --model models/codec-v2 --out "$RUNS/codec_v2/rd" --splits test --limit 2000 \
        --no-wandb
else
    $PY src/train_codec.py --data "$DATA" --out "$RUNS/codec_v2" --recipe jobs/configs/codec/cpu.yaml --no-wandb
    cp "$RUNS/codec_v2/history.json" "$RUNS/codec_v2/config.yaml" outs/codec_v2/
    rm -rf models/codec-v2
    cp -r "$RUNS/codec_v2/model" models/codec-v2
fi
cp "$RUNS/codec_v2/rd/rd.json" "$RUNS/codec_v2/rd/rd_test.png" outs/codec_v2/rd/
$PY jobs/report.py
