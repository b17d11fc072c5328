#!/usr/bin/env bash
# Submit the whole pipeline to Slurm: jobs/pipeline.yaml's stages (AE -> classifiers and codec ->
# evaluation), each a job, or a job array, that starts only when the stages before it succeeded.
# Run it, or submit it: from the repository root, both do the same.
#
#   slurm/pipeline.sh --data PATH [--run DIR] [--profile smoke|full] [--wait] [key=value ...]
#   sbatch slurm/pipeline.sh --data PATH ...     (the job submits the stages, then ends)
#
# The options are jobs/pipeline.py's (`slurm/pipeline.sh --help` lists them): --profile (default
# full), --modes, --no-codec, --gpus, --procs, --nodes, --cpus, --time, --partition, --image,
# --eval-args, --grid. Logs go to RUN/logs/<stage>-<job>.out; --wait follows the jobs and reports
# how each stage ended. SBATCH_ARGS="..." adds sbatch options to every stage.
#SBATCH --job-name=cifarae-pipeline
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --output=%x-%j.out
set -euo pipefail

# Under sbatch this runs as a copy in Slurm's spool directory, so the checkout is CIFARAE_ROOT,
# else this script's own, else the directory the job was submitted from.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=""
for dir in "${CIFARAE_ROOT:-}" "$here" "${SLURM_SUBMIT_DIR:-}"; do
  if [ -n "$dir" ] && [ -f "$dir/jobs/pipeline.yaml" ]; then
    ROOT=$(cd "$dir" && pwd)
    break
  fi
done
if [ -z "$ROOT" ]; then
  echo "error: no cifarae checkout in CIFARAE_ROOT (${CIFARAE_ROOT:-unset}) or the submit directory" \
    "(${SLURM_SUBMIT_DIR:-$PWD}); run sbatch from the repository root or set CIFARAE_ROOT" >&2
  exit 2
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
export CIFARAE_ROOT=$ROOT PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
exec "$PYTHON" "$ROOT/jobs/pipeline.py" --executor sbatch "$@"
