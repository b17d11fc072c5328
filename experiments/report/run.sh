#!/usr/bin/env bash
# REPORT.md's evaluation figures: ONE pipeline run of the shipped recipes (jobs/pipeline.py --profile
# report: the AE, the classifier grid and the codec at a 2-core CPU budget, about 1.5 hours on the local
# Slurm cluster), then the shift study on its AE and fine-tuned classifier, copied into one folder per
# product: outs/autoencoder/, outs/classifier/, outs/codec/ (figures and metrics, no checkpoints).
#
#   bash experiments/report/run.sh DATA [RUNS]    DATA: CIFAR-10 source (e.g. the JPEG archive); RUNS: default runs/report
#
# Needs a Slurm cluster (slurm/local/start.sh); EXECUTOR=local runs the stages here instead. A killed
# run resumes: run the same command again (each stage resumes from its runs' last checkpoints).
# On a GPU cluster, the full-size recipes: PROFILE=full GPUS=1 CPUS=8 GRID=jobs/configs/gpu_clf_grid.yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/report/run.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
EXECUTOR=${EXECUTOR:-submitit}
PROFILE=${PROFILE:-report}
GPUS=${GPUS:-0}
CPUS=${CPUS:-1}
GRID=${GRID:-jobs/configs/grid_report.yaml}
export WANDB_MODE=${WANDB_MODE:-offline}
P=$RUNS/pipeline-$PROFILE
mkdir -p "$P"

# AE -> (the grid's six classifiers, the codec) -> evaluation of every run on every split -> grid table
$PY jobs/pipeline.py --executor "$EXECUTOR" --data "$DATA" --run "$P" --profile "$PROFILE" \
    --grid "$GRID" --gpus "$GPUS" --cpus "$CPUS" --eval-args "--precision bf16" | tee "$RUNS/pipeline-$PROFILE.log"
# the shift study: the pipeline's AE and its fine-tuned classifier under synthetic shifts, 1,000 test images
$PY experiments/generalisation/shift_eval.py --data "$DATA" --ae "$P/ae" --clf "$P/grid/finetune-f1-s0" \
    --out "$P/shift" --images 1000

A=outs/autoencoder C=outs/classifier K=outs/codec
rm -rf "$A" "$C" "$K"
mkdir -p "$A" "$C/histories" "$K"
cp "$P"/ae/eval/*.png "$P"/ae/eval/metrics.json "$P"/ae/eval/metrics.csv "$P"/ae/history.json "$P"/ae/config.yaml "$A"/
cp "$P"/shift/shift_psnr.png "$P"/shift/shift.json "$A"/
cp "$P"/grid/grid.* "$C"/
for cell in "$P"/grid/*-f*-s*/; do cp "$cell/history.json" "$C/histories/$(basename "$cell").json"; done
cp "$P"/grid/finetune-f1-s0/eval/*.png "$P"/grid/finetune-f1-s0/eval/metrics.json "$P"/grid/finetune-f1-s0/eval/metrics.csv "$C"/
cp "$P"/grid/finetune-f1-s0/config.yaml "$C"/config_finetune.yaml
cp "$P"/shift/shift_accuracy.png "$C"/
cp "$P"/codec/history.json "$P"/codec/config.yaml "$K"/ 2>/dev/null || true
cp "$P"/codec/rd/rd.json "$P"/codec/rd/rd_*.png "$K"/
if [ "$EXECUTOR" != local ]; then
    ids=$(sed -n 's/^job ids: //p' "$RUNS/pipeline-$PROFILE.log" | grep -o '=[0-9]*' | tr -d = | paste -sd,)
    sacct -j "$ids" --parsable2 -o JobID,JobName,State,Elapsed,Start,End >"$A"/jobs.txt
fi
# The launcher passes absolute paths to its jobs; the committed files name them from the checkout.
grep -rlF "$PWD/" "$A" "$C" "$K" | xargs -r sed -i -e "s#$PWD/##g" -e "s#$(dirname "$PWD")/#../#g"
$PY jobs/report.py
