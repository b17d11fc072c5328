#!/usr/bin/env bash
# The autoencoder's CPU figures (half width) of docs/autoencoder-log.md §5-§6 (the report AE, its evaluation,
# the design iterations and bottleneck sizes) and docs/pipeline-log.md §10's CPU benchmarks.
#
#   bash experiments/autoencoder/run.sh DATA [RUNS]    DATA: CIFAR-10 source (e.g. the JPEG archive); RUNS: default runs/report
#
# Resumable: run it again and finished runs are skipped. Runs go into RUNS; figures and metrics (no
# checkpoints) are copied into outs/ and the tables regenerated (jobs/report.py). Run this first:
# experiments/classifier/run.sh and experiments/generalisation/run.sh start from RUNS/ae.
# On a shared CPU, OMP_NUM_THREADS=1 with two scripts side by side beat one script with 2 threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/autoencoder/run.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}

# outs/ae (§5, §6): the autoencoder (half-width backbone, latent 12x8x8 = 4x), evaluated on every split
$PY src/train_ae.py --data "$DATA" --out "$RUNS/ae" --config jobs/configs/cpu_ae.yaml
$PY src/evaluate.py --run "$RUNS/ae" --data "$DATA"
mkdir -p outs/ae
cp "$RUNS"/ae/eval/*.png "$RUNS"/ae/eval/metrics.* "$RUNS"/ae/history.json "$RUNS"/ae/config.yaml outs/ae/

# outs/ablations (§6 design iterations): variants of the AE at an equal small budget
$PY experiments/autoencoder/ablations.py --data "$DATA" --out "$RUNS/ablations"
mkdir -p outs/ablations && cp "$RUNS"/ablations/ablations.* outs/ablations/

# outs/bottleneck (§6): 3, 6, 12 and 24 latent channels at an equal budget (2 epochs on the whole
# training split), each scored on the test split
$PY experiments/autoencoder/ablations.py --data "$DATA" --out "$RUNS/bottleneck" --only latent_3 latent_6 base latent_24 \
    --evaluate train_subset=0 val_subset=1000 epochs=2
mkdir -p outs/bottleneck && cp "$RUNS"/bottleneck/ablations.* outs/bottleneck/

# outs/bench.json, outs/bench_idle.json (§10): the benchmarks; the second on an idle machine, for the
# training-step and loader rows
$PY bench/bench.py --data "$DATA"
$PY bench/bench.py --data "$DATA" --only loader,ae,clf --out outs/bench_idle.json
# outs/bench_cpu_sweep.json (§10): the AE step's precision / memory-layout sweep (same loader, batch 256)
$PY bench/bench.py --data "$DATA" --only sweep --sweep-batches 256 --steps 4 --warmup 2 --out outs/bench_cpu_sweep.json
# outs/bench_cpu_sweep_clf.json (§10): the classifier step's, with torch.compile (on the idle machine)
$PY bench/bench.py --data "$DATA" --only sweep --sweep-task clf --sweep-compile --sweep-batches 256 --steps 4 --warmup 2 \
    --out outs/bench_cpu_sweep_clf.json
# outs/bench_convs.json (§10): the convolutions alone vs the AE step, bf16 + channels_last against fp32
# NCHW (the bound on the step ratio); one thread, beside the full-width classifier runs of §7
$PY bench/bench.py --data "$DATA" --only convs,ae --threads 1 --out outs/bench_convs.json

$PY jobs/report.py
