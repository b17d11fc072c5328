#!/usr/bin/env bash
# Submit the whole chain to Slurm: AE pretraining -> classifier -> evaluation, each stage a job
# that starts only when the one before it succeeded (--dependency=afterok, and
# --kill-on-invalid-dep=yes so a failed stage cancels the later ones instead of leaving them
# pending for ever). Prints the job ids; --wait follows the jobs and reports how each ended.
#
#   slurm/pipeline.sh --data PATH [--run DIR] [--profile smoke|full] [--wait] [-- key=value ...]
#
# Options (each also read from the environment variable in capitals):
#   --data PATH        CIFAR-10: cifar-10-batches-py root, image folder, .tar.gz, or cache .pt
#   --run DIR          pipeline directory (default runs/<profile>): stages write DIR/ae,
#                      DIR/clf-<mode>, and DIR/<stage>/eval/; logs go to DIR/<stage>/slurm-<id>.out
#                      (the evaluation job's to DIR/slurm-<id>.out)
#   --profile NAME     smoke (tiny, minutes on a CPU) or full (default), i.e. jobs/configs/NAME.yaml
#   --config FILE      a YAML config for both training stages instead of the profile's
#   --mode MODE        classifier mode: finetune (default), linear or scratch
#   --gpus N           GPUs per node to request (default: the sbatch scripts' 1; 0 for CPU nodes)
#   --procs N          training processes per node (default: --gpus; on CPU nodes N torchrun processes)
#   --nodes N          nodes for the training stages (default 1): one task per node, srun on each
#   --cpus N           CPUs per task (default: the sbatch scripts' 8)
#   --time T           time limit of each training stage, e.g. 04:00:00
#   --partition P      Slurm partition
#   --image IMAGE      run every stage inside this Apptainer/Docker image (docker/README.md)
#   --eval-args "..."  extra src/evaluate.py flags, e.g. "--splits test --no-wandb"
#   --wait             wait for the jobs, report each stage's outcome, exit 0 only if all succeeded
#   SBATCH_ARGS="..."  further sbatch options for every stage
# Everything after the options (or after --) is a key=value config override for training.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() {
  echo "pipeline: error: $*" >&2
  exit 2
}
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-0}"
}

DATA=${DATA:-} RUN=${RUN:-} PROFILE=${PROFILE:-full} CONFIG=${CONFIG:-} MODE=${MODE:-finetune}
GPUS=${GPUS:-} PROCS=${PROCS:-} NODES=${NODES:-} CPUS=${CPUS:-} TIME=${TIME:-} PARTITION=${PARTITION:-}
IMAGE=${IMAGE:-} EVAL_ARGS=${EVAL_ARGS:-} WAIT=""
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
  -h | --help) usage ;;
  --wait) WAIT=1 ;;
  --data | --run | --profile | --config | --mode | --gpus | --procs | --nodes | --cpus | --time | --partition | --image | \
    --eval-args)
    [ $# -ge 2 ] || die "$1 needs a value"
    var=${1#--}
    var=${var//-/_}
    printf -v "${var^^}" '%s' "$2"
    shift
    ;;
  --data=* | --run=* | --profile=* | --config=* | --mode=* | --gpus=* | --procs=* | --nodes=* | --cpus=* | --time=* | \
    --partition=* | --image=* | --eval-args=*)
    var=${1%%=*}
    var=${var#--}
    var=${var//-/_}
    printf -v "${var^^}" '%s' "${1#*=}"
    ;;
  --) shift; overrides+=("$@"); break ;;
  -*) die "unknown option $1 (see --help)" ;;
  *=*) overrides+=("$1") ;;
  *) die "unexpected argument '$1': overrides look like key=value (see --help)" ;;
  esac
  shift
done

command -v sbatch >/dev/null || die "sbatch not found; this submits to Slurm (run locally with: make pipeline)"
[ -n "$DATA" ] || die "pass --data <CIFAR-10 dir, .tar.gz or cache .pt> (or DATA=...)"
[ -e "$DATA" ] || die "data path $DATA does not exist"
case "$MODE" in finetune | linear | scratch) ;; *) die "--mode $MODE: use finetune, linear or scratch" ;; esac
if [ -n "$CONFIG" ]; then
  [ -f "$CONFIG" ] || die "config file $CONFIG does not exist"
  CONFIG=$(realpath "$CONFIG")
else
  [ -f "$ROOT/jobs/configs/$PROFILE.yaml" ] || die "no profile '$PROFILE' (jobs/configs/$PROFILE.yaml); use smoke or full"
fi
DATA=$(realpath "$DATA")
RUN=$(realpath -m "${RUN:-$ROOT/runs/$PROFILE}")
AE=$RUN/ae
CLF=$RUN/clf-$MODE
mkdir -p "$AE" "$CLF"  # Slurm writes each log into its run directory, which must exist

common=(--parsable --chdir="$ROOT")
[ -z "$PARTITION" ] || common+=(--partition="$PARTITION")
[ -z "$CPUS" ] || common+=(--cpus-per-task="$CPUS")
train=("${common[@]}")
evaluate=("${common[@]}")
if [ -n "$GPUS" ]; then
  train+=(--gpus-per-node="$GPUS")
  evaluate+=(--gpus-per-node="$((GPUS > 0 ? 1 : 0))")  # evaluation is one process
fi
[ -z "$NODES" ] || train+=(--nodes="$NODES")
[ -z "$TIME" ] || train+=(--time="$TIME")
# shellcheck disable=SC2206
extra=(${SBATCH_ARGS:-})
env_common=(CIFARAE_ROOT="$ROOT" DATA="$DATA" PROFILE="$PROFILE" CONFIG="$CONFIG" IMAGE="$IMAGE" GPUS="$PROCS")
submitted=()

submit() {  # submit NAME VAR=VALUE... -- SBATCH-ARGS...: print the new job id
  local name=$1 vars=() out
  shift
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  if ! out=$(env "${env_common[@]}" "${vars[@]}" sbatch "$@" 2>&1); then
    [ ${#submitted[@]} -eq 0 ] || scancel "${submitted[@]}" 2>/dev/null || true
    die "sbatch refused the $name stage: $out${submitted[*]:+ (cancelled jobs ${submitted[*]})}"
  fi
  echo "${out%%;*}"
}

ae_id=$(submit ae RUN="$AE" -- "${train[@]}" "${extra[@]}" --job-name=cifarae-ae \
  --output="$AE/slurm-%j.out" slurm/train_ae.sbatch "${overrides[@]}")
submitted+=("$ae_id")
clf_id=$(submit clf RUN="$CLF" ENCODER="$AE" MODE="$MODE" -- "${train[@]}" "${extra[@]}" --job-name=cifarae-clf \
  --dependency="afterok:$ae_id" --kill-on-invalid-dep=yes --output="$CLF/slurm-%j.out" \
  slurm/train_clf.sbatch "${overrides[@]}")
submitted+=("$clf_id")
eval_id=$(submit eval RUNS="$AE $CLF" -- "${evaluate[@]}" "${extra[@]}" --job-name=cifarae-eval \
  --dependency="afterok:$clf_id" --kill-on-invalid-dep=yes --output="$RUN/slurm-%j.out" slurm/evaluate.sbatch \
  ${EVAL_ARGS:+$EVAL_ARGS})  # split into words on purpose

echo "pipeline: $RUN (profile ${CONFIG:-$PROFILE}, data $DATA)"
printf '  %-5s job %-8s %-18s -> %s\n' ae "$ae_id" "" "$AE  (log slurm-$ae_id.out)" \
  clf "$clf_id" "after ae succeeds" "$CLF  (log slurm-$clf_id.out)" \
  eval "$eval_id" "after clf succeeds" "$AE/eval, $CLF/eval  (log $RUN/slurm-$eval_id.out)"
echo "job ids: ae=$ae_id clf=$clf_id eval=$eval_id"
[ -n "$WAIT" ] || {
  echo "follow with: squeue -j $ae_id,$clf_id,$eval_id   (or run again with --wait)"
  exit 0
}

# ------------------------------------------------------------------ --wait: follow and report
job_info() {  # job_info ID: "STATE EXIT REASON" from scontrol, or from sacct once Slurm forgot it
  local line state exitc reason
  if line=$(scontrol show job -o "$1" 2>/dev/null) && [ -n "$line" ]; then
    state=$(sed -n 's/.*JobState=\([^ ]*\).*/\1/p' <<<"$line")
    exitc=$(sed -n 's/.* ExitCode=\([^ ]*\).*/\1/p' <<<"$line")
    reason=$(sed -n 's/.* Reason=\([^ ]*\).*/\1/p' <<<"$line")
  else
    IFS='|' read -r state exitc < <(sacct -n -X -P -j "$1" -o State,ExitCode 2>/dev/null | head -n1)
    state=${state%% *}
    reason=None
  fi
  echo "${state:-UNKNOWN} ${exitc:-?} ${reason:-None}"
}
terminal() {
  case "$1" in
  COMPLETED | FAILED | CANCELLED | TIMEOUT | OUT_OF_MEMORY | NODE_FAIL | BOOT_FAIL | DEADLINE | PREEMPTED | UNKNOWN) return 0 ;;
  *) return 1 ;;
  esac
}

trap 'echo; echo "pipeline: stopped waiting; the jobs go on (scancel $ae_id $clf_id $eval_id to stop them)"; exit 130' INT
names=(ae clf eval)
ids=("$ae_id" "$clf_id" "$eval_id")
logs=("$AE/slurm-$ae_id.out" "$CLF/slurm-$clf_id.out" "$RUN/slurm-$eval_id.out")
last=""
while :; do
  done_all=1 now=""
  for i in 0 1 2; do
    read -r state _ _ < <(job_info "${ids[$i]}")
    now+="${names[$i]}=$state "
    terminal "$state" || done_all=""
  done
  [ "$now" = "$last" ] || echo "pipeline: $now"
  last=$now
  [ -z "$done_all" ] || break
  sleep 2
done

failed=0 culprit=""
for i in 0 1 2; do
  read -r state exitc reason < <(job_info "${ids[$i]}")
  if [ "$state" = COMPLETED ]; then
    echo "pipeline: ${names[$i]} (job ${ids[$i]}) succeeded"
    continue
  fi
  failed=1
  if [ -n "$culprit" ] && [ "$state" = CANCELLED ]; then
    echo "pipeline: ${names[$i]} (job ${ids[$i]}) was cancelled without running, because $culprit did not succeed" \
      "(afterok dependency${reason:+, $reason})"
    continue
  fi
  culprit=${names[$i]}
  detail=""
  if [ -f "${logs[$i]}" ]; then
    detail=$(grep -m1 -E '^(error|Traceback)' "${logs[$i]}" || tail -n 3 "${logs[$i]}" | tr '\n' ' ')
  fi
  echo "pipeline: ${names[$i]} (job ${ids[$i]}) FAILED: state $state, exit code ${exitc%%:*}: ${detail:-no log}" \
    "(log ${logs[$i]})"
done
if [ "$failed" = 0 ]; then
  echo "pipeline: all stages succeeded; metrics in $AE/eval and $CLF/eval"
else
  echo "pipeline: FAILED at the $culprit stage"
fi
exit "$failed"
