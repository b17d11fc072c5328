#!/usr/bin/env bash
# REPORT.md's generalisation question (docs/autoencoder-log.md §8) on the CPU: the report AE and the fine-tuned classifier under synthetic shifts.
#
#   bash experiments/generalisation/run.sh DATA [RUNS]    DATA: CIFAR-10 source (e.g. the JPEG archive); RUNS: default runs/report
#
# Needs RUNS/ae (experiments/autoencoder/run.sh) and RUNS/grid/finetune-f1-s0 (experiments/classifier/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/generalisation/run.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}
for run in ae grid/finetune-f1-s0; do
    [ -f "$RUNS/$run/best.pt" ] || {
        echo "error: no $RUNS/$run: run experiments/autoencoder/run.sh and experiments/classifier/run.sh first" >&2
        exit 2
    }
done

# outs/shift (§8): AE reconstruction PSNR and classifier accuracy against shift severity, 1,000 test images
$PY experiments/generalisation/shift_eval.py --data "$DATA" --ae "$RUNS/ae" --clf "$RUNS/grid/finetune-f1-s0" \
    --out outs/shift --images 1000
$PY jobs/report.py
