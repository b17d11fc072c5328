#!/usr/bin/env bash
# outs/codec_v2_refine (issue #26): what encoder-side refinement adds to the shipped codec v2. Every
# quality level of models/codec-v2 coded as real files, plainly and with 30 refinement steps per image
# (src/cifarae/codec/hyperprior_codec.py: Adam on the image's own rate + lambda * 255^2 * MSE; each image
# keeps the cheaper of its plain and refined file, measured on the real files), on a
# stratified subset of 400 test images, with the paired gain (bootstrap) and both against AVIF, WebP
# and JPEG. Refinement encodes one image at a time at ~1 img/s on one core, so this subset is smaller than
# the main evaluation's 2,000 (outs/codec_v2/rd). One core, more than an hour for ten levels.
#
#   bash experiments/codec/refine_v2.sh DATA
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/codec/refine_v2.sh DATA}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$PY src/rd_eval.py --data "$DATA" --model models/codec-v2 --out outs/codec_v2_refine --splits test \
    --limit 400 --refine-steps 30 --no-files --no-wandb
rm -rf outs/codec_v2_refine/baselines  # Pillow's cached curves: large, and recomputed by a rerun
