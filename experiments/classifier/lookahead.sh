#!/usr/bin/env bash
# outs/clf_lookahead (issue #28): Lookahead off vs on (lookahead_every=0 / 5), clf.yaml's recipe otherwise,
# airbench's layout at quarter width, scratch, 5 epochs on a 20,000-image stratified subset of the 50,000
# (val_size=0), batch 256 with lr scaled to it (1.5 x 256/1024), fp32 (bf16 is ~10x slower on this CPU),
# one thread; resumable (a finished run is skipped).
#
#   bash experiments/classifier/lookahead.sh DATA [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/classifier/lookahead.sh DATA [RUNS]}
R=${2:-runs/report}/lookahead
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=disabled
for la in 0 5; do
    out=$R/la$la
    [ -f "$out/eval/metrics.json" ] && continue
    $PY src/train_clf.py --data "$DATA" --out "$out" --mode scratch --config jobs/configs/airbench_net.yaml \
        "widths=[24,32,64,64]" epochs=5 train_subset=20000 batch_size=256 lr=0.375 precision=fp32 \
        lookahead_every=$la wandb=false
    $PY src/evaluate.py --run "$out" --data "$DATA" --splits test --no-wandb
done
for la in 0 5; do
    mkdir -p "outs/clf_lookahead/la$la"
    cp "$R/la$la/config.yaml" "$R/la$la/history.json" "outs/clf_lookahead/la$la/"
    cp "$R/la$la/eval/metrics.json" "outs/clf_lookahead/la$la/metrics.json"
done
$PY - "$R" <<'PY'
import json, sys
from pathlib import Path
runs = {k: Path(sys.argv[1]) / k for k in ("la0", "la5")}
hist = {k: json.loads((r / "history.json").read_text()) for k, r in runs.items()}
summary = {
    "what": "Lookahead off (lookahead_every=0) vs on (5), clf.yaml's recipe otherwise, airbench layout at widths "
    "[24,32,64,64], scratch, 5 epochs, 20,000-image subset of all 50,000 (val_size=0), batch 256, lr 0.375, fp32, "
    "1 CPU thread, seed 0",
    "test_accuracy": {k: json.loads((r / "eval/metrics.json").read_text())["test"]["accuracy"] for k, r in runs.items()},
    "final_train_loss": {k: h[-1]["train_loss"] for k, h in hist.items()},
    "train_time_s": {k: round(sum(e["epoch_time_s"] for e in h), 1) for k, h in hist.items()},
}
Path("outs/clf_lookahead/summary.json").write_text(json.dumps(summary, indent=1) + "\n")
PY
