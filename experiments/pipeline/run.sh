#!/usr/bin/env bash
# docs/pipeline-log.md §11: the whole chain through the project's own launcher on the CPU: jobs/pipeline.py
# (submitit) on the local Slurm cluster (slurm/local/start.sh: 2 CPUs, one CPU per job).
#
#   bash experiments/pipeline/run.sh DATA [RUNS]    DATA: CIFAR-10 source (e.g. the JPEG archive); RUNS: default runs/report
#
# The run goes into RUNS/pipeline; figures, metrics and the Slurm accounting (no checkpoints) are
# copied into outs/pipeline/ and the tables regenerated (jobs/report.py). EXECUTOR=local runs the
# pipeline's stages here, one after the other, instead of as Slurm jobs (and writes no accounting).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/pipeline/run.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
EXECUTOR=${EXECUTOR:-submitit}
export WANDB_MODE=${WANDB_MODE:-offline}
P=$RUNS/pipeline
mkdir -p "$P"

# outs/pipeline/{ae,grid}, outs/pipeline/jobs.txt: jobs/pipeline.yaml's stages without the codec stage:
# the AE (cpu_pipeline.yaml: half width, 5 epochs), then the 12-cell classifier grid (clf_grid.yaml's
# budgets) as one job array, src/evaluate.py on every run and split (an array), and the grid table
$PY jobs/pipeline.py --executor "$EXECUTOR" --data "$DATA" --run "$P" --config jobs/configs/cpu_pipeline.yaml \
    --grid jobs/configs/clf_grid.yaml --no-codec --gpus 0 --cpus 1 --eval-args "--precision bf16" | tee "$RUNS/pipeline.log"

# outs/pipeline/{codec,rd}, the codec branch of that run (the v1 codec: codec_init.py, one 1-epoch codec
# per λ, prior refits, rd_eval.py on 2,000 test and validation images), were made by this script at
# commit cdeb663; the v1 codec has been removed since, and the pipeline's codec stage is now
# src/train_codec.py with a recipe (jobs/configs/codec/).
mkdir -p outs/pipeline/ae outs/pipeline/grid/histories
cp "$P"/ae/eval/*.png "$P"/ae/eval/metrics.json "$P"/ae/eval/metrics.csv "$P"/ae/history.json "$P"/ae/config.yaml outs/pipeline/ae/
cp "$P"/grid/grid.* outs/pipeline/grid/
for cell in "$P"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/pipeline/grid/histories/$(basename "$cell").json"; done
cp "$P"/grid/finetune-f1-s0/config.yaml outs/pipeline/grid/config_finetune.yaml
if [ "$EXECUTOR" != local ]; then
    ids=$(sed -n 's/^job ids: //p' "$RUNS/pipeline.log" | grep -o '=[0-9]*' | tr -d = | paste -sd,)
    sacct -j "$ids" --parsable2 -o JobID,JobName,State,Elapsed,Start,End >outs/pipeline/jobs.txt
fi
# The launcher passes absolute paths to its jobs; the committed files name them from the checkout.
grep -rlF "$PWD/" outs/pipeline | xargs -r sed -i -e "s#$PWD/##g" -e "s#$(dirname "$PWD")/#../#g"
$PY jobs/report.py
