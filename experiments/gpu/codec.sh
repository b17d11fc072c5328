#!/usr/bin/env bash
# Codec v2 on one GPU in one device call: jobs/configs/codec/full.yaml (full-width encoder, from scratch)
# and gpu_long.yaml (the shipped model trained on) side by side, each for as many epochs as fit.
#
#   BUDGET=530 PACK=DIR bash experiments/gpu/codec.sh DATA WORK
#
# DATA: a CIFAR-10 source (.tar.gz or folder) or a prepared cache. WORK holds the data cache and the runs
# (WORK/<recipe>/, with its exported model/). BUDGET: seconds for the whole script. Small CIFAR nets leave
# most of a large GPU idle, so the recipes train as concurrent processes. The epochs= of each real run
# come from a timed one-epoch run on CAL_N training images (also concurrent, so the timing sees the
# sharing), so that each run's cosine schedule ends before the deadline rather than being cut.
# PACK=DIR: one archive per recipe (history, config, logs, exported model) and steps.txt, few enough files
# for what one device call brings back. Then, on CPUs: src/train_codec.py --steps rd with the unpacked run.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
[ $# -eq 2 ] || { sed -n '2,13p' "$0"; exit 2; }
DATA=$1 WORK=$2
BUDGET=${BUDGET:-530}
CAL_N=${CAL_N:-9000}
read -ra RECIPES <<<"${RECIPES:-full gpu_long}"
read -ra EXTRA <<<"${EXTRA:-}" # key=value for every run (a CPU dry run: EXTRA="train_subset=512 val_subset=256" TRAIN_N=512)
TRAIN_N=${TRAIN_N:-45000}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
start=$SECONDS
mkdir -p "$WORK"
: >"$WORK/steps.txt"
log() { echo "$* (+$((SECONDS - start))s)" | tee -a "$WORK/steps.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$WORK/steps.txt" 2>&1
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' >>"$WORK/steps.txt"

# 1. one data cache for every run
cache=$("$PY" src/prepare_data.py --data "$DATA" --cache-dir "$WORK/data" | sed -n 's/^cache \(.*\) ready:.*/\1/p')
[ -f "$cache" ] || { log "data: no cache from $DATA"; exit 1; }
log "data: $cache"

train() {  # train RECIPE OUT LOG [key=value ...]: the recipe's train step under the deadline
    local recipe=$1 out=$2 logfile=$3
    shift 3
    timeout --kill-after=5 $((deadline - SECONDS)) "$PY" src/train_codec.py --data "$cache" --out "$out" \
        --recipe "jobs/configs/codec/$recipe.yaml" --steps train --no-wandb "${EXTRA[@]}" "$@" >"$logfile" 2>&1
}

# 2. one timed epoch on CAL_N images per recipe, concurrently
deadline=$((start + BUDGET))
for r in "${RECIPES[@]}"; do
    [ -n "${EPOCHS:-}" ] && echo "0 0" >"$WORK/cal_$r.rc" && continue
    (
        t0=$SECONDS
        train "$r" "$WORK/cal_$r" "$WORK/cal_$r.log" epochs=1 train_subset="$CAL_N" val_subset=1000
        echo "$? $((SECONDS - t0))" >"$WORK/cal_$r.rc"
    ) &
done
wait
# 3. each real run gets the epochs that fit: startup + epochs x (TRAIN_N images + validation), 5% to spare
deadline=$((start + BUDGET - 40)) # then export and packing
for r in "${RECIPES[@]}"; do
    read -r rc wall <"$WORK/cal_$r.rc"
    if [ "$rc" != 0 ]; then
        log "$r: the timed epoch failed (rc=$rc):"
        tail -5 "$WORK/cal_$r.log" | tee -a "$WORK/steps.txt"
        continue
    fi
    if [ -n "${EPOCHS:-}" ]; then # a known speed: no timed epoch
        epochs=$EPOCHS
    else
    epochs=$("$PY" - "$WORK/cal_$r/history.json" "$wall" "$CAL_N" "$TRAIN_N" $((deadline - SECONDS)) <<'EOF'
import json, sys
history, wall, n, train_n, left = json.load(open(sys.argv[1])), float(sys.argv[2]), *map(int, sys.argv[3:6])
per_image = history[-1]["epoch_time_s"] / n  # training; a validation image costs about half of one
startup = wall - per_image * (n + 1000 / 2)  # process start, data onto the device
epoch_s = 1.05 * per_image * (train_n + 5000 / 2) + 2  # + last.pt and best.pt
print(max(1, int((left - startup) / epoch_s)))
EOF
    )
    fi
    log "$r: timed epoch ${wall}s on $CAL_N images -> epochs=$epochs"
    (
        train "$r" "$WORK/$r" "$WORK/$r.log" epochs="$epochs"
        log "$r: training rc=$?"
    ) &
done
wait
deadline=$((start + BUDGET))

# 4. export each run (best.pt: kept every epoch, so a run cut by the deadline still exports)
for r in "${RECIPES[@]}"; do
    [ -f "$WORK/$r/best.pt" ] || continue
    timeout $((deadline - SECONDS)) "$PY" src/train_codec.py --data "$cache" --out "$WORK/$r" \
        --recipe "jobs/configs/codec/$r.yaml" --steps export --no-wandb >>"$WORK/$r.log" 2>&1
    log "$r: export rc=$? $(grep -o 'model id .*' "$WORK/$r.log" | tail -1)"
    "$PY" -c 'import json, sys; h = json.load(open(sys.argv[1])); print(sys.argv[2], h[-1])' \
        "$WORK/$r/history.json" "$r" | tee -a "$WORK/steps.txt"
done

if [ -n "${PACK:-}" ]; then
    mkdir -p "$PACK"
    for r in "${RECIPES[@]}"; do
        [ -d "$WORK/$r" ] || continue
        tar -czf "$PACK/$r.tar.gz" -C "$WORK" --exclude='*.pt.tmp' --exclude="$r/last.pt" --exclude="$r/best.pt" \
            "$r" "$r.log" "cal_$r.log"
    done
    cp "$WORK/steps.txt" "$PACK/"
    ls -la "$PACK"
fi
log "done"
