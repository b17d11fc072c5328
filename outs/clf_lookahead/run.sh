#!/usr/bin/env bash
# Lookahead off vs on (lookahead_every=0 / 5), clf.yaml's recipe otherwise, airbench's layout at quarter
# width, scratch, 5 epochs on a 20,000-image stratified subset of the 50,000 (val_size=0), batch 256 with
# lr scaled to it (1.5 x 256/1024), fp32 (bf16 is ~10x slower on this CPU), one thread; resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-data/cifar10-jpeg-df0fd86d6b0fa80f.pt}
R=runs/issue28/lookahead
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
for la in 0 5; do
    out=$R/la$la
    [ -f "$out/eval/metrics.json" ] && continue
    .venv/bin/python src/train_clf.py --data "$DATA" --out "$out" --mode scratch --config jobs/configs/airbench_net.yaml \
        "widths=[24,32,64,64]" epochs=5 train_subset=20000 batch_size=256 lr=0.375 precision=fp32 \
        lookahead_every=$la wandb=false
    .venv/bin/python src/evaluate.py --run "$out" --data "$DATA" --splits test --no-wandb
done
