#!/usr/bin/env bash
# outs/photos (REPORT: "Does the model generalize to new data?"): held-out photos of other sizes through the
# shipped codec, against AVIF, WebP and JPEG (experiments/generalisation/photos.py). The photos are five of
# the sample images bundled in scikit-image 0.26.0's wheel (public domain or CC0; skimage/data/README.txt):
# astronaut 512x512, chelsea 451x300, coffee 600x400, rocket 640x427, motorcycle_left 741x500.
# pip fetches the wheel (no install); one core, ~15 min.
#
#   bash experiments/generalisation/photos.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$PY -m pip download --quiet --no-deps --dest "$work" scikit-image==0.26.0
photos=(astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png)
$PY -m zipfile -e "$work"/scikit_image-*.whl "$work/unpacked" >/dev/null
args=()
for photo in "${photos[@]}"; do args+=("$work/unpacked/skimage/data/$photo"); done
$PY experiments/generalisation/photos.py --photos "${args[@]}" --out outs/photos ${1:+--model "$1"}
