#!/usr/bin/env bash
# The commands behind the full-size (GPU) figures in REPORT.md: outs/full/ and outs/gpu/.
#
#   bash jobs/report_runs_gpu.sh collect DATA REP     after step 1, on the machine that holds REP
#   bash jobs/report_runs_gpu.sh codecs REP NAME      after `PACK=DIR jobs/gpu_codec.sh DATA REP`
#
# 1. On one GPU (an H200 here), with the data prepared (src/prepare_data.py --data <archive>):
#      BUDGET=510 PROFILE_S=125 BENCH_S=40 SWEEP_S=65 TRAIN_S=20 RD_LIMIT=1000 PACK=<dir> \
#          bash jobs/gpu_report.sh data/cifar10-jpeg-<fingerprint>.pt REP
#    then, alone on the GPU, the profile again with more time (the first one was cut at its limit):
#      BENCH_S=60 SWEEP_S=105 TRAIN_S=30 bash bench/gpu_check.sh data/cifar10-jpeg-<fingerprint>.pt
#    gpu_report.sh's deadline cut the prior refits and the RD evaluation; PACK brought the codec
#    weights (and the AE backbone) back, and step 2 runs those on the CPUs.
# 2. `collect`: the grid table from the evaluated cells, the codec prior refits and the
#    rate-distortion evaluation (CPU), one more codec point above 2 bpp (the λ=0.035 codec
#    fine-tuned at λ=0.2 on 12,000 images on the CPU, since the λ=0.1 weights stayed on the GPU
#    machine), then copies figures and metrics into outs/full/.
# 3. `codecs`: one codec family from jobs/gpu_codec.sh (outs/full/codec_wide came from
#    `PACK=DIR BUDGET=470 bash jobs/gpu_codec.sh data/cifar10-jpeg-<fingerprint>.pt REP`): its
#    training histories, deadline log and GPU into outs/full/NAME/.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}
case "${1:-}" in
codecs)
    REP=${2:?usage: jobs/report_runs_gpu.sh codecs REP NAME}
    NAME=${3:?usage: jobs/report_runs_gpu.sh codecs REP NAME}
    mkdir -p "outs/full/$NAME"
    for run in "$REP"/runs/lambda*/; do cp "$run/history.json" "outs/full/$NAME/$(basename "$run").json"; done
    cp "$REP"/steps.txt "$REP"/gpu.txt "outs/full/$NAME/"
    exit 0
    ;;
collect) ;;
*)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
DATA=${2:?usage: jobs/report_runs_gpu.sh collect DATA REP}
REP=${3:?usage: jobs/report_runs_gpu.sh collect DATA REP}
R=$REP/runs
CODECS=${CODECS:-runs/gpu/codec}  # the packed codec_lambda*.pt, each copied to $CODECS/lambda*/best.pt

$PY jobs/clf_grid.py --data "$DATA" --out "$R/grid" --grid jobs/configs/gpu_clf_grid.yaml --tabulate --no-wandb
for run in "$CODECS"/lambda*; do
    [ -f "$run/codec.pt" ] || $PY src/codec_fit.py --run "$run" --data "$DATA"
done
RD=$CODECS/../rd
# shellcheck disable=SC2046
[ -f "$RD/rd.json" ] || $PY src/rd_eval.py --data "$DATA" --runs $(ls -d "$CODECS"/lambda*) --out "$RD" --splits test val --threads 2
HI=$CODECS/../codec_cpu/lambda0.2
[ -f "$HI/best.pt" ] || $PY src/train_ae.py --data "$DATA" --out "$HI" --config jobs/configs/full.yaml \
    entropy_model=factorized latent_channels=48 init_from="$CODECS/lambda0.035/codec.pt" rd_lambda=0.2 epochs=1 \
    train_subset=12000 val_subset=1000 batch_size=128 lr=0.0005 warmup_epochs=0.05 wandb=false
[ -f "$HI/codec.pt" ] || $PY src/codec_fit.py --run "$HI" --data "$DATA"
# shellcheck disable=SC2046
[ -f "$RD/../rd4/rd.json" ] || $PY src/rd_eval.py --data "$DATA" --runs $(ls -d "$CODECS"/lambda*) "$HI" \
    --out "$RD/../rd4" --splits test val --threads 2 --reuse "$RD/rd.json"

mkdir -p outs/full/ae outs/full/grid/histories outs/full/budget outs/full/codec outs/full/rd
cp "$R"/ae/eval/*.png "$R"/ae/eval/metrics.json "$R"/ae/eval/metrics.csv "$R"/ae/history.json "$R"/ae/config.yaml outs/full/ae/
cp "$R"/grid/grid.* outs/full/grid/
for cell in "$R"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/full/grid/histories/$(basename "$cell").json"; done
cp "$R"/grid/finetune-f1-s0/config.yaml outs/full/grid/config_finetune.yaml
cp "$R"/grid/scratch-f1-s0/config.yaml outs/full/grid/config_scratch.yaml
cp "$R"/grid/linear-f1-s0/config.yaml outs/full/grid/config_linear.yaml
for run in "$R"/budget/*/; do cp "$run/history.json" "outs/full/budget/$(basename "$run").json"; done
for run in "$R"/codec/lambda*/; do cp "$run/history.json" "outs/full/codec/$(basename "$run").json"; done
cp "$RD"/../rd4/rd.json "$RD"/../rd4/*.png outs/full/rd/
cp "$HI"/history.json outs/full/codec/lambda0.2-cpu.json
cp "$REP"/steps.txt "$REP"/gpu.txt outs/full/
$PY jobs/report.py
