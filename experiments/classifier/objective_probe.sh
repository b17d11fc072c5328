#!/usr/bin/env bash
# outs/objective_probe (issue #28): does masked-image pretraining give the classifier a better encoder than
# plain reconstruction? A small CPU comparison at an equal budget: two half-width AEs (jobs/configs/cpu_ae.yaml,
# 3 epochs on 20,000 training images, fp32), objective=reconstruct and objective=masked, then a linear probe
# of each (jobs/configs/cpu_clf.yaml + clf_linear.yaml, 3 epochs, all labels). One core, ~25 min.
#
#   bash experiments/classifier/objective_probe.sh DATA [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/classifier/objective_probe.sh DATA [RUNS]}
RUNS=${2:-runs/report}/objective_probe
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
mkdir -p outs/objective_probe
for objective in reconstruct masked; do
    $PY src/train_ae.py --data "$DATA" --out "$RUNS/ae-$objective" --config jobs/configs/cpu_ae.yaml \
        objective=$objective epochs=3 train_subset=20000 precision=fp32 wandb=false
    $PY src/train_clf.py --data "$DATA" --out "$RUNS/linear-$objective" --config jobs/configs/cpu_clf.yaml \
        --mode linear --encoder "$RUNS/ae-$objective" lr=0.2 logit_scale=1.0 epochs=3 precision=fp32 wandb=false
    $PY src/evaluate.py --run "$RUNS/linear-$objective" --data "$DATA" --splits test --precision fp32 --no-wandb
    cp "$RUNS/ae-$objective/history.json" "outs/objective_probe/ae-$objective.json"
    cp "$RUNS/linear-$objective/eval/metrics.json" "outs/objective_probe/linear-$objective.json"
done
