# shellcheck shell=bash
# Shared by slurm/*.sbatch (sourced, not run): find the checkout, pick the config, run a src/
# script on every node of the allocation (inside the container image when IMAGE is set),
# pass Slurm's stop signals on to it, and requeue the job when the engine saved last.pt and
# exited 75, so that the job resumes from it.
#
# Environment (sbatch passes the submitting shell's environment on):
#   CIFARAE_ROOT  the checkout (default: the directory sbatch was called from)
#   PROFILE       smoke | full (default full): the config jobs/configs/$PROFILE.yaml ...
#   CONFIG        ... or this YAML config for the training stages
#   GPUS          processes per node (default: the GPUs Slurm gave the job per node, else one
#                 CPU process; on a node without GPUs, GPUS=N runs N torchrun CPU processes)
#   IMAGE         run inside this Apptainer/Docker image (slurm/container.sh)
#   PYTHON        interpreter on the host (default .venv/bin/python, else python3)

set -euo pipefail
REQUEUE_EXIT_CODE=75  # as src/cifarae/engine.py

CIFARAE_ROOT=${CIFARAE_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
export CIFARAE_ROOT
cd "$CIFARAE_ROOT" || exit 2
if [ ! -f jobs/launch.sh ] || [ ! -d src ]; then
  echo "error: $CIFARAE_ROOT is not a cifarae checkout; submit from the repository root or set CIFARAE_ROOT" >&2
  exit 2
fi

PROFILE=${PROFILE:-full}
if [ -z "${CONFIG:-}" ]; then
  CONFIG=jobs/configs/$PROFILE.yaml
  if [ ! -f "$CONFIG" ]; then
    echo "error: no profile '$PROFILE' ($CONFIG does not exist); use PROFILE=smoke|full or CONFIG=<file>" >&2
    exit 2
  fi
fi

# Processes per node: GPUS, else the GPUs Slurm allocated per node ("a100:4" -> 4).
if [ -z "${GPUS:-}" ] && [ -n "${SLURM_GPUS_PER_NODE:-}" ]; then
  GPUS=${SLURM_GPUS_PER_NODE##*:}
fi
export GPUS=${GPUS:-}
# Multi-node rendezvous at the first host of the allocation, on a port derived from the job id.
if [ -n "${SLURM_JOB_NODELIST:-}" ]; then
  MAIN_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
  export MAIN_ADDR
fi
export MAIN_PORT=${MAIN_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 10000))}

# stage SCRIPT ARGS...: run SCRIPT with jobs/launch.sh. A job with several tasks (one per node:
# --nodes=N --ntasks-per-node=1) runs it with srun on every node, and launch.sh takes the
# machine count and rank from srun. The batch shell's SIGUSR1/SIGTERM (#SBATCH
# --signal=B:USR1@...) is passed on; srun passes it to every process of the step.
stage() {
  local cmd=(bash jobs/launch.sh "$@")
  [ -z "${IMAGE:-}" ] || cmd=(bash slurm/container.sh "${cmd[@]}")
  if [ "${SLURM_NTASKS:-1}" -gt 1 ]; then
    export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}  # srun no longer inherits --cpus-per-task
    cmd=(srun --kill-on-bad-exit=1 --ntasks="$SLURM_NTASKS" "${cmd[@]}")
  fi
  echo "stage: job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-$(hostname)}" \
    "${IMAGE:+in image $IMAGE }at $(date -Is): $*"
  "${cmd[@]}" &
  local pid=$! rc=0 status retry=""
  pending=""
  # shellcheck disable=SC2064
  trap "pending=1; echo 'stage: SIGUSR1, passing it on'; kill -USR1 $pid 2>/dev/null" USR1
  # shellcheck disable=SC2064
  trap "pending=1; echo 'stage: SIGTERM, passing it on'; kill -TERM $pid 2>/dev/null" TERM
  while :; do  # a trapped signal interrupts wait; wait again for the real exit status
    pending=""
    wait "$pid" && status=0 || status=$?
    [ "$status" -eq 127 ] && [ -n "$retry" ] && break
    rc=$status
    [ -n "$pending" ] || break
    retry=1
  done
  trap - USR1 TERM
  if [ "$rc" -eq "$REQUEUE_EXIT_CODE" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "stage: stopped after saving last.pt; requeueing job $SLURM_JOB_ID, which resumes from it"
    if scontrol requeue "$SLURM_JOB_ID"; then
      sleep 120 &  # Slurm ends this run of the job now
      wait $! || true
    fi
    echo "stage: could not requeue job $SLURM_JOB_ID; submit it again to resume from last.pt" >&2
  fi
  echo "stage: exit $rc at $(date -Is)"
  return "$rc"
}

need() {  # need VAR DESCRIPTION: fail in one line when the variable is empty
  if [ -z "${!1:-}" ]; then
    echo "error: set $1=<$2> (slurm/pipeline.sh sets it for each stage)" >&2
    exit 2
  fi
}
