#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for `make test-cluster`.
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge if missing, start
#                                   munged, slurmctld, slurmd; wait for an idle node
#   scripts/slurm-local.sh stop     stop what `start` started (and nothing else)
#   scripts/slurm-local.sh env      print `export SLURM_CONF=...` for sbatch & co.
#
# Why a private config: the daemons and every client read $SLURM_CONF, so the
# test cluster never touches /etc/slurm of a machine that has a real one.
# Why pid files: `stop` must end only the daemons this script started, so a
# munged someone else runs is reused and left alone.
# Idempotent: `start` on a running test cluster only waits for it; `stop` on a
# stopped one does nothing.
set -euo pipefail

DIR=${SODL_SLURM_DIR:-/tmp/sodl-slurm}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

log() { echo "slurm-local: $*" >&2; }

alive() {  # alive NAME: the daemon we started under NAME is running
    local pidfile=$DIR/$1.pid
    [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]} (Debian packages)"
    # policy-rc.d exit 101: the packages' own init scripts must not start
    # daemons with the system config; this script starts them with its own.
    local policy=/usr/sbin/policy-rc.d had_policy=1
    [[ -e $policy ]] || { had_policy=0; printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; }
    # apt's list is fetched only when the first try cannot find the packages.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null \
        || { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null; }
    ((had_policy)) || rm -f $policy
}

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    # The cores this process may use (a container's cpuset), not the host's;
    # without OMP_*, which GNU nproc obeys.
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    # Memory: what slurmd detects, less 5% so the node is never drained for
    # "low RealMemory" when the detection varies a little between runs.
    mem_mb=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem_mb=$((${mem_mb:-4096} * 95 / 100))
    # cgroups: only where systemd owns a writable cgroup tree (Slurm 22.05
    # needs it for cgroup v2); in a container, plain process tracking.
    local proctrack=proctrack/linuxproc task=task/none
    if [[ $(cat /proc/1/comm) == systemd && -w /sys/fs/cgroup ]]; then
        proctrack=proctrack/cgroup task=task/cgroup
        printf 'CgroupPlugin=autodetect\nConstrainCores=yes\nConstrainRAMSpace=yes\n' >"$DIR/cgroup.conf"
    fi
    cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: one node, this machine's cores and memory.
ClusterName=sodl-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=$proctrack
TaskPlugin=$task
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Trust this file over hardware detection (a container's view of CPUs varies).
SlurmdParameters=config_overrides
ReturnToService=2
# A cancelled task gets SIGTERM, then SIGKILL 5 s later (the default is 30 s).
KillWait=5
# Keep finished jobs visible to squeue/scontrol for 10 minutes (no slurmdbd here).
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is already answering: reuse it
    fi
    [[ -s /etc/munge/munge.key ]] || { mkdir -p /etc/munge; mungekey --create --keyfile /etc/munge/munge.key; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$DIR/munged.pid"  # ours: `stop` ends it
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    log "munged does not answer"; return 1
}

wait_idle() {
    local state
    for _ in $(seq 120); do
        state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
        [[ $state == idle ]] && { log "node $(hostname -s) idle ($(sinfo -h -N -o %c | head -1) CPUs)"; return 0; }
        # A node left down or drained by an earlier run: bring it back.
        [[ $state == down* || $state == drain* ]] && scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
        sleep 0.5
    done
    log "the node never became idle (last state: ${state:-none}); see $DIR/*.log"
    return 1
}

start() {
    install_packages
    if alive slurmctld && alive slurmd; then wait_idle; return; fi
    stop  # half a cluster (one daemon died): start both afresh
    mkdir -p "$DIR/state" "$DIR/spool"
    write_conf
    start_munge
    slurmctld -c -f "$CONF"   # -c: no jobs from an earlier run
    slurmd -c -f "$CONF"
    wait_idle
}

stop() {
    local name pid
    # Jobs first: slurmstepd and the job's processes outlive a stopped slurmd.
    # Every job on this private cluster is the test's own.
    if alive slurmctld && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
        scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 40); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.5; done
        log "cancelled the jobs left in the queue"
    fi
    for name in slurmd slurmctld munged; do
        alive "$name" || { rm -f "$DIR/$name.pid"; continue; }
        pid=$(cat "$DIR/$name.pid")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        rm -f "$DIR/$name.pid"
        log "stopped $name ($pid)"
    done
}

case ${1:-} in
    start)
        ((EUID == 0)) || { log "run as root (it installs packages and starts daemons)"; exit 1; }
        mkdir -p "$DIR"
        # A start that fails half-way stops the daemons it had started.
        trap 'log "start failed; stopping what it started"; stop' EXIT
        start
        trap - EXIT ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
