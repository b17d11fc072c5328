#!/usr/bin/env bash
# Stop what slurm/local/start.sh started: cancel the jobs, then end each daemon by the PID that
# start.sh recorded, newest first. Daemons it did not start are left running.
set -uo pipefail

STATE_DIR=${SLURM_LOCAL_STATE:-/run/cifarae-slurm}
[ -d "$STATE_DIR" ] || { echo "slurm/local: nothing to stop ($STATE_DIR does not exist)"; exit 0; }

if [ -s "$STATE_DIR/slurmctld.pid" ] && scontrol ping 2>/dev/null | grep -q UP; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

for name in slurmd slurmctld slurmdbd mariadbd munged; do
  f="$STATE_DIR/$name.pid"
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm/local: $name (pid $pid) did not stop in 10s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    echo "slurm/local: stopped $name (pid $pid)"
  fi
  rm -f "$f"
done
