# shellcheck shell=bash
# Sourced by jobs/launch.sh and slurm/common.sh: the requeue exit code, and the one helper that
# passes Slurm's stop signals (SIGTERM, SIGUSR1) on to a child process and waits for its exit.
#
#   forward_signals NAME          trap SIGTERM/SIGUSR1 now (before the child starts)
#   child & wait_forwarding $! [children]
#                                 wait for the child, passing each signal on to it (or, with
#                                 "children", to its own children: a launcher's workers); returns
#                                 its exit status. SIGNALLED holds the last signal passed on.

# shellcheck disable=SC2034 # used by the scripts that source this file
REQUEUE_EXIT_CODE=75 # src/cifarae/errors.py: the run saved last.pt after a stop signal

SIGNALLED=""
_forward_name=""
_forward_pid=""
_forward_children=""
_forward_pending=""

# shellcheck disable=SC2329  # called from the traps
_forward() {
  SIGNALLED=$1
  _forward_pending=1
  [ -n "$_forward_pid" ] || return 0 # not started yet: wait_forwarding passes it on
  local targets=$_forward_pid
  [ -z "$_forward_children" ] || targets=$(cat /proc/"$_forward_pid"/task/*/children 2>/dev/null)
  echo "$_forward_name: SIG$1: passing it on" >&2
  # shellcheck disable=SC2086
  [ -z "$targets" ] || kill -s "$1" $targets 2>/dev/null || true
}

forward_signals() {
  _forward_name=$1
  trap '_forward TERM' TERM
  trap '_forward USR1' USR1
}

wait_forwarding() {
  _forward_pid=$1
  _forward_children=${2:-}
  [ -z "$SIGNALLED" ] || _forward "$SIGNALLED"
  local rc=0 status retry=""
  # A trapped signal interrupts `wait` (status 128+n); wait again for the real exit status.
  while :; do
    _forward_pending=""
    wait "$_forward_pid" && status=0 || status=$?
    [ "$status" -eq 127 ] && [ -n "$retry" ] && break # already collected before the trap ran
    rc=$status
    [ -n "$_forward_pending" ] || break
    retry=1
  done
  trap - TERM USR1
  _forward_pid=""
  return "$rc"
}
