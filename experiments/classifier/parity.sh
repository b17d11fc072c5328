#!/usr/bin/env bash
# outs/clf_parity (issue #28): the classifier recipe against airbench94 on the same data and epochs
# (outs/airbench_ref). jobs/configs/clf_10ep.yaml (10 epochs) or airbench_net.yaml (20 epochs) from
# scratch on the AE's backbone class, fit on all 50,000 training images, scored on the 10,000 test
# images; seeds 0 and 1 side by side, one core each (fp32: bf16 is ~10x slower on these CPUs), or the
# SEEDS given. Each run resumes from its last.pt, so the script can be rerun after a stop. OVERRIDES
# (key=value ...) change the recipe, for a run that measures one piece of it; give such runs their own
# RUNS and OUT (default outs/clf_parity).
#
#   [SEEDS="0 1"] [OVERRIDES="k=v ..."] [OUT=outs/clf_parity] bash experiments/classifier/parity.sh DATA [RUNS] [EPOCHS=10|20]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/classifier/parity.sh DATA [RUNS] [EPOCHS=10|20]}
RUNS=${2:-runs/report}/parity
EPOCHS=${3:-10}
case $EPOCHS in
    10) CONFIG=jobs/configs/clf_10ep.yaml ;;
    20) CONFIG=jobs/configs/airbench_net.yaml ;;
    *) echo "error: EPOCHS must be 10 or 20, not $EPOCHS" >&2; exit 2 ;;
esac
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
read -r -a overrides <<< "${OVERRIDES:-}"
run_seed() {
    local run=$RUNS/e${EPOCHS}_s$1
    $PY src/train_clf.py --data "$DATA" --out "$run" --config $CONFIG --mode scratch \
        seed="$1" precision=fp32 wandb=false "${overrides[@]}"
    $PY src/evaluate.py --run "$run" --data "$DATA" --splits test --precision fp32 --no-wandb
}
mkdir -p "$(dirname "$RUNS")"
pids=()
for seed in ${SEEDS:-0 1}; do
    run_seed "$seed" > "$RUNS-e${EPOCHS}_s$seed.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
OUT=${OUT:-outs/clf_parity}
mkdir -p "$OUT"
for seed in ${SEEDS:-0 1}; do
    run=$RUNS/e${EPOCHS}_s$seed
    cp "$run/history.json" "$OUT/e${EPOCHS}_s$seed-history.json"
    cp "$run/config.yaml" "$OUT/e${EPOCHS}_s$seed-config.yaml"
    cp "$run/eval/metrics.json" "$OUT/e${EPOCHS}_s$seed.json"
done
