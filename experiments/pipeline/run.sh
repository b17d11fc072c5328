#!/usr/bin/env bash
# docs/pipeline-log.md §11: the whole chain through the project's own launcher on the CPU: jobs/pipeline.py
# (submitit) on the local Slurm cluster (slurm/local/start.sh: 2 CPUs, one CPU per job), then the
# codec branch from the pipeline's autoencoder.
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

# outs/pipeline/{codec,rd}: the codec branch, which §11's run submitted through the launcher's former
# --lambdas flag (--lambdas 0.004,0.012,0.035 --codec-epochs 1 --rd-limit 2000; the pipeline's codec
# stage is now src/train_codec.py with a recipe): codec_init.py on the pipeline's AE, one 1-epoch codec
# run per λ (the GPU report's codec settings on cpu_pipeline.yaml), the prior refits, then rd_eval.py on
# 2,000 stratified test and validation images. One thread per process, as each Slurm job had one CPU.
C=$P/codec
lambdas=(0.004 0.012 0.035)
export OMP_NUM_THREADS=1
$PY src/codec_init.py --ae "$P/ae" --out "$C/init.pt" --data "$DATA" --latent-channels 48
for lam in "${lambdas[@]}"; do
    $PY src/train_ae.py --data "$DATA" --config jobs/configs/cpu_pipeline.yaml --out "$C/lambda$lam" rd_lambda="$lam" \
        entropy_model=factorized latent_channels=48 init_from="$C/init.pt" lr=0.001 warmup_epochs=0.2 epochs=1 &
done
wait
for lam in "${lambdas[@]}"; do $PY src/codec_fit.py --run "$C/lambda$lam" --data "$DATA"; done
$PY src/rd_eval.py --data "$DATA" --runs "${lambdas[@]/#/$C/lambda}" --out "$P/rd" --splits test val --limit 2000
unset OMP_NUM_THREADS

mkdir -p outs/pipeline/ae outs/pipeline/grid/histories outs/pipeline/rd outs/pipeline/codec
cp "$P"/ae/eval/*.png "$P"/ae/eval/metrics.json "$P"/ae/eval/metrics.csv "$P"/ae/history.json "$P"/ae/config.yaml outs/pipeline/ae/
cp "$P"/grid/grid.* outs/pipeline/grid/
for cell in "$P"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/pipeline/grid/histories/$(basename "$cell").json"; done
cp "$P"/grid/finetune-f1-s0/config.yaml outs/pipeline/grid/config_finetune.yaml
cp "$P"/rd/rd.json "$P"/rd/rd_*.png outs/pipeline/rd/
for run in "$C"/lambda*/; do cp "$run/history.json" "outs/pipeline/codec/$(basename "$run").json"; done
if [ "$EXECUTOR" != local ]; then
    ids=$(sed -n 's/^job ids: //p' "$RUNS/pipeline.log" | grep -o '=[0-9]*' | tr -d = | paste -sd,)
    sacct -j "$ids" --parsable2 -o JobID,JobName,State,Elapsed,Start,End >outs/pipeline/jobs.txt
fi
# The launcher passes absolute paths to its jobs; the committed files name them from the checkout.
grep -rlF "$PWD/" outs/pipeline | xargs -r sed -i -e "s#$PWD/##g" -e "s#$(dirname "$PWD")/#../#g"
$PY jobs/report.py
