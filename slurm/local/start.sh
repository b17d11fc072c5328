#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this machine (Debian 12, as root, no systemd), with
# accounting (slurmdbd + MariaDB) so that sacct and submitit work. Idempotent: a daemon that is
# already up is left alone. Every daemon this script starts has its PID recorded in $STATE_DIR,
# and slurm/local/stop.sh stops exactly those, by PID.
#
#   sudo bash slurm/local/start.sh        # packages: munge slurmctld slurmd slurm-client slurmdbd mariadb-server
#
# Writes /etc/slurm/slurm.conf and slurmdbd.conf (marked as written by this script) and refuses to
# touch ones it did not write, so it never clobbers a real cluster's configuration.
set -euo pipefail

STATE_DIR=${SLURM_LOCAL_STATE:-/run/cifarae-slurm}
CONF_DIR=/etc/slurm
MARK="# written by cifarae slurm/local/start.sh"
PARTITION=${SLURM_LOCAL_PARTITION:-debug}

die() { echo "slurm/local/start.sh: $*" >&2; exit 1; }
log() { echo "slurm/local: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (it starts system daemons)"
for cmd in munged mariadbd slurmdbd slurmctld slurmd sinfo; do
  command -v "$cmd" >/dev/null || die "$cmd not found; apt-get install munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
done
mkdir -p "$STATE_DIR"

host=$(hostname -s)
if ! getent hosts "$host" >/dev/null; then
  echo "127.0.0.1 $host" >>/etc/hosts
fi

# Is the daemon whose PID we recorded in $1.pid still running?
ours_alive() {
  local f="$STATE_DIR/$1.pid"
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || die "$what did not come up within ${secs}s (logs in $STATE_DIR)"
    sleep 0.2
  done
}

write_conf() {  # write_conf FILE CONTENT: only files this script wrote before (or new ones)
  local file=$1 content=$2
  if [ -e "$file" ] && ! grep -qF "$MARK" "$file"; then
    die "$file exists and was not written by this script; not touching a real cluster's configuration"
  fi
  printf '%s\n%s\n' "$MARK" "$content" >"$file.tmp"
  if [ -e "$file" ] && cmp -s "$file.tmp" "$file"; then
    rm -f "$file.tmp"
  else
    mv "$file.tmp" "$file"
  fi
}

# ---------------------------------------------------------------- configuration
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.85)}' /proc/meminfo)
mkdir -p "$CONF_DIR"
write_conf "$CONF_DIR/slurm.conf" "ClusterName=cifarae
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerParameters=sched_interval=2
KillWait=30
AuthInfo=cred_expire=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP"
write_conf "$CONF_DIR/slurmdbd.conf" "AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE_DIR/slurmdbd.pid
LogFile=$STATE_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageLoc=slurm_acct_db
StorageUser=slurm"
chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
chmod 600 "$CONF_DIR/slurmdbd.conf"
chown slurm:slurm "$STATE_DIR"  # slurmdbd and slurmctld write their PID and log files here

# ---------------------------------------------------------------- 1. munged
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  mkdir -p /run/munge /var/log/munge
  chown munge:munge /run/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged sh -c 'munge -n | unmunge'
  cp /run/munge/munged.pid "$STATE_DIR/munged.pid"
  log "started munged (pid $(cat "$STATE_DIR/munged.pid"))"
fi

# ---------------------------------------------------------------- 2. MariaDB
sock=/run/mysqld/mysqld.sock
if mariadb-admin --socket="$sock" ping >/dev/null 2>&1; then
  log "MariaDB already running"
else
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$STATE_DIR/mariadb-install.log" 2>&1
  mariadbd --user=mysql --skip-networking --socket="$sock" >"$STATE_DIR/mariadbd.log" 2>&1 &
  echo $! >"$STATE_DIR/mariadbd.pid"  # mariadbd does not fork: $! is the server itself
  wait_for 30 MariaDB mariadb-admin --socket="$sock" ping
  log "started MariaDB (pid $(cat "$STATE_DIR/mariadbd.pid"))"
fi
mariadb --socket="$sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# ---------------------------------------------------------------- 3-5. Slurm daemons
if ours_alive slurmdbd || sacctmgr -n list cluster >/dev/null 2>&1; then
  log "slurmdbd already running"
else
  slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  log "started slurmdbd (pid $(cat "$STATE_DIR/slurmdbd.pid"))"
fi
if ours_alive slurmctld || scontrol ping 2>/dev/null | grep -q UP; then
  log "slurmctld already running"
else
  slurmctld
  wait_for 30 slurmctld sh -c 'scontrol ping | grep -q UP'
  log "started slurmctld (pid $(cat "$STATE_DIR/slurmctld.pid"))"
fi
if ours_alive slurmd; then
  log "slurmd already running"
else
  slurmd
  wait_for 10 slurmd test -s "$STATE_DIR/slurmd.pid"
  log "started slurmd (pid $(cat "$STATE_DIR/slurmd.pid"))"
fi

# ---------------------------------------------------------------- node ready
end=$((SECONDS + 60))
while :; do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n1)
  case "$state" in
  idle | mixed | allocated | completing) break ;;
  drain* | down* | *drain | *down) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
  esac
  [ "$SECONDS" -lt "$end" ] || die "node $host is '$state', not idle, after 60s (see $STATE_DIR/slurmd.log)"
  sleep 0.3
done
log "cluster up: node $host ($cpus CPUs, ${mem_mb} MB), partition $PARTITION, state $state"
