#!/usr/bin/env bash
# Run one src/ script with the right launcher for this machine, the same way from make, from a
# Slurm job (one task per node), and inside the Docker/Apptainer image.
#
#   jobs/launch.sh src/train_ae.py --data PATH --out RUN [key=value ...]
#
# Environment:
#   GPUS          processes per machine (default: every visible GPU, or 1 on a machine without
#                 one). GPUS=0 runs one process on the CPU even where GPUs exist.
#   PYTHON        interpreter (default: .venv/bin/python when it exists, else python3)
#   LAUNCHER      accelerate | torchrun: the multi-process launcher (default: accelerate where
#                 GPUs are visible, torchrun where not; accelerate's workers also run on a CPU)
#   NUM_MACHINES, MACHINE_RANK, MAIN_ADDR, MAIN_PORT
#                 multi-machine rendezvous. Under `srun` with one task per node they default to
#                 SLURM_STEP_NUM_TASKS (= SLURM_NNODES), SLURM_PROCID (= SLURM_NODEID) and the
#                 first host of the allocation.
#
# Launchers: one process -> python itself; several with GPUs -> `accelerate launch --multi_gpu`;
# several without GPUs -> `torchrun` CPU processes (gloo), because `accelerate launch --cpu`
# starts only one (LAUNCHER chooses otherwise).
#
# Signals: SIGTERM and SIGUSR1 (Slurm pre-emption, time limit, `scancel --signal`) are passed
# to the training processes, which save last.pt and exit 75 (REQUEUE_EXIT_CODE). The launcher
# process itself ignores them, so it outlives its workers while they save; a stopped run
# always exits 75 from here, even where torchrun turns its workers' 75 into 1. Ctrl-C stops
# the run the same way (then exits 130).
set -uo pipefail

# shellcheck source=jobs/signals.sh
source "$(dirname "${BASH_SOURCE[0]}")/signals.sh"
say() { echo "launch: $*" >&2; }

[ $# -ge 1 ] || { echo "usage: jobs/launch.sh SCRIPT [ARGS...]" >&2; exit 2; }
script=$1
shift
[ -f "$script" ] || { echo "error: $script does not exist (run from the repository root)" >&2; exit 2; }

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

visible_gpus() {
  if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
    case "$CUDA_VISIBLE_DEVICES" in
    "" | -1 | NoDevFiles) echo 0 ;;
    *) echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c . ;;
    esac
  elif command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
  else
    echo 0
  fi
}

ngpu=$(visible_gpus)
host=$(hostname -s 2>/dev/null || hostname)
if [ "${GPUS:-}" = 0 ]; then
  export CUDA_VISIBLE_DEVICES=""
  ngpu=0
  procs=1
else
  procs=${GPUS:-$((ngpu > 0 ? ngpu : 1))}
fi
machines=${NUM_MACHINES:-${SLURM_STEP_NUM_TASKS:-1}}
for n in "$procs" "$machines"; do
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "error: GPUS/NUM_MACHINES must be whole numbers, got '$n'" >&2; exit 2; }
done
rank=${MACHINE_RANK:-$([ -n "${SLURM_STEP_NUM_TASKS:-}" ] && echo "${SLURM_PROCID:-0}" || echo 0)}
if [ "$machines" -gt 1 ] && [ -z "${MAIN_ADDR:-}" ]; then
  MAIN_ADDR=$(scontrol show hostnames "${SLURM_STEP_NODELIST:-$SLURM_JOB_NODELIST}" 2>/dev/null | head -n1)
  [ -n "$MAIN_ADDR" ] || { echo "error: $machines machines but no MAIN_ADDR (and no Slurm node list)" >&2; exit 2; }
fi
MAIN_PORT=${MAIN_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 10000))}
total=$((procs * machines))

# Threads per process: the CPUs Slurm gave this task, shared among its processes.
if [ -z "${OMP_NUM_THREADS:-}" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  export OMP_NUM_THREADS=$((SLURM_CPUS_PER_TASK / procs > 0 ? SLURM_CPUS_PER_TASK / procs : 1))
fi

launcher=${LAUNCHER:-$([ "$ngpu" -gt 0 ] && echo accelerate || echo torchrun)}
case "$launcher" in accelerate | torchrun) ;; *) echo "error: LAUNCHER=$launcher; use accelerate or torchrun" >&2; exit 2 ;; esac
multi=(--num_machines "$machines" --machine_rank "$rank" --main_process_ip "${MAIN_ADDR:-}" --main_process_port "$MAIN_PORT")
if [ "$total" -le 1 ]; then
  cmd=("$PYTHON" "$script" "$@")
  where=$([ "$ngpu" -gt 0 ] && echo "1 GPU" || echo "the CPU")
  say "1 process on $where ($host)"
elif [ "$launcher" = accelerate ]; then
  if [ "$ngpu" -gt 0 ] && [ "$procs" -gt "$ngpu" ]; then
    echo "error: GPUS=$procs but only $ngpu GPU(s) visible on $host" >&2
    exit 2
  fi
  cmd=("$PYTHON" -m accelerate.commands.launch --multi_gpu --num_processes "$total" --mixed_precision no
    --dynamo_backend no)
  if [ "$machines" -gt 1 ]; then cmd+=("${multi[@]}"); else cmd+=(--num_machines 1 --main_process_port 0); fi
  cmd+=("$script" "$@")
  say "accelerate launch --multi_gpu: $procs process(es) on $host$([ "$ngpu" -gt 0 ] || echo " (no GPU: on the CPU)")," \
    "machine $rank of $machines ($total in all)"
else
  cmd=("$PYTHON" -m torch.distributed.run --nproc_per_node "$procs")
  if [ "$machines" -gt 1 ]; then
    cmd+=(--nnodes "$machines" --node_rank "$rank" --master_addr "$MAIN_ADDR" --master_port "$MAIN_PORT")
  else
    cmd+=(--standalone)
  fi
  cmd+=("$script" "$@")
  if [ "$ngpu" -gt 0 ]; then
    say "torchrun: $procs process(es) on $host, machine $rank of $machines ($total in all)"
  else
    say "no GPU on $host: running $procs CPU process(es) with torchrun (gloo DDP), machine $rank of $machines" \
      "($total in all), instead of accelerate launch --multi_gpu"
  fi
fi
say "${cmd[*]}"

interrupted=""
forward_signals launch
trap 'interrupted=1; _forward TERM' INT

# The launcher ignores SIGTERM/SIGUSR1 (an ignored signal stays ignored across exec, and the
# engine installs its own handlers in the workers): they go to its workers. A single python
# process gets the defaults back (a child does not inherit traps) and the signals directly.
if [ "$total" -le 1 ]; then
  "${cmd[@]}" &
  wait_forwarding $!
else
  (
    trap '' TERM USR1
    exec "${cmd[@]}"
  ) &
  wait_forwarding $! children
fi
rc=$?
stopped=$SIGNALLED
if [ -n "$stopped" ] && [ "$rc" -ne 0 ]; then
  [ -n "$interrupted" ] && exit 130
  [ "$rc" -ne "$REQUEUE_EXIT_CODE" ] && say "stopped by SIG$stopped (launcher exit $rc): exiting $REQUEUE_EXIT_CODE"
  exit "$REQUEUE_EXIT_CODE"
fi
exit "$rc"
