#!/usr/bin/env bash
# outs/objectives (issue #28): does the AE's pretraining objective change what its encoder is worth to the
# classifier? The report run's AE (objective=reconstruct) and the same recipe with objective=masked
# (jobs/configs/report.yaml: half width, 4 epochs), each under jobs/configs/grid_objectives.yaml's grid
# (linear probe and fine-tune at 1%, 10% and 100% of the labels, two seeds), beside scratch (once), then
# one table and plot of all of them (jobs/clf_grid.py --merge). Run experiments/report/run.sh first: the
# reconstruct grid extends its grid, reusing the cells it already has. The two grids run side by side,
# one core each (about 1.7 hours on 2 cores); a stopped run resumes when the command is run again.
#
#   bash experiments/report/objectives.sh DATA [RUNS]    # RUNS: default runs/report, as for run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/report/objectives.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
P=$RUNS/pipeline-report G=jobs/configs/grid_objectives.yaml O=$RUNS/objectives
if [ ! -f "$P/ae/best.pt" ]; then
    echo "error: no report run under $P; run experiments/report/run.sh $DATA $RUNS first" >&2
    exit 2
fi
mkdir -p "$O"

$PY jobs/clf_grid.py --data "$DATA" --encoder "$P/ae" --out "$P/grid" --grid $G --no-wandb >"$O/grid-reconstruct.log" 2>&1 &
reconstruct=$!
$PY src/train_ae.py --data "$DATA" --out "$O/ae-masked" --config jobs/configs/report.yaml objective=masked >"$O/ae-masked.log" 2>&1
$PY jobs/clf_grid.py --data "$DATA" --encoder "$O/ae-masked" --out "$O/grid-masked" --grid $G --no-wandb \
    --modes linear finetune >"$O/grid-masked.log" 2>&1
wait $reconstruct
$PY jobs/clf_grid.py --merge "$P/grid" "$O/grid-masked" --out "$O/grid"

D=outs/objectives
rm -rf "$D"
mkdir -p "$D/histories/reconstruct" "$D/histories/masked"
cp "$O"/grid/grid.* "$D"/
# histories/reconstruct/: the report run's grid (with the scratch cells); histories/masked/: the masked AE's
for cell in "$P"/grid/*-f*-s*/; do cp "$cell/history.json" "$D/histories/reconstruct/$(basename "$cell").json"; done
for cell in "$O"/grid-masked/*-f*-s*/; do cp "$cell/history.json" "$D/histories/masked/$(basename "$cell").json"; done
cp "$O"/ae-masked/history.json "$D"/ae-masked-history.json
cp "$O"/ae-masked/config.yaml "$D"/ae-masked-config.yaml
grep -rlF "$PWD/" "$D" | xargs -r sed -i -e "s#$PWD/##g" -e "s#$(dirname "$PWD")/#../#g"
$PY jobs/report.py
