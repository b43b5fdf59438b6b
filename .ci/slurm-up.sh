#!/usr/bin/env bash
# Install and start a one-node SLURM cluster on a Debian CI machine (root, no systemd).
#
# Idempotent: packages are installed only when missing, daemons started only when not
# running. The node advertises one fake GPU (gres/gpu backed by /dev/null) so that rules
# with `resources: gpu=1` are scheduled exactly as on a GPU cluster (torch inside the job
# still sees no CUDA device and falls back to CPU). Status polling must use squeue: there
# is no slurmdbd, so sacct cannot answer (see workflow/profiles/slurm-ci/config.yaml).
#
# Usage: .ci/slurm-up.sh            (prints the sinfo line and exits 0 when the node is idle)
# Env:   SLURM_UP_TIMEOUT  seconds to wait for the node to become idle (default 30)
set -euo pipefail

die() {
    echo "slurm-up: ERROR: $*" >&2
    exit 1
}
log() { echo "slurm-up: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts daemons)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu only"

# --- 1. packages -----------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null ||
        die "apt-get install slurm-wlm munge failed"
fi

NODE=$(hostname -s)
CPUS=$(nproc)
# RealMemory must not exceed what slurmd detects, else the node goes `inval`.
MEM_MB=$(($(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 85 / 100))

# --- 2. munge --------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge: /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
    for _ in $(seq 10); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || die "munge credential round trip failed"
fi

# --- 3. slurm.conf + gres.conf -----------------------------------------------------------------
install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm /run/slurm
install -d /var/spool/slurmd /etc/slurm
conf=$(
    cat <<EOF
# Written by tomosynth .ci/slurm-up.sh: one-node CI cluster with a fake GPU.
ClusterName=localci
SlurmctldHost=${NODE}
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue/scontrol this long (s): squeue status polling needs
# MinJobAge >= 3 x the plugin's init interval, and tests read scontrol records after a run.
MinJobAge=1800
GresTypes=gpu
NodeName=${NODE} CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
)
gres="NodeName=${NODE} Name=gpu File=/dev/null"
changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
    printf '%s\n' "$conf" >/etc/slurm/slurm.conf
    changed=1
fi
if [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$gres" ]; then
    printf '%s\n' "$gres" >/etc/slurm/gres.conf
    changed=1
fi

# --- 4. daemons ----------------------------------------------------------------------------------
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ "$changed" -eq 1 ]; then
    # A new configuration: stop what runs (by PID) and forget saved node state.
    for f in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
        if alive "$f"; then
            kill "$(cat "$f")"
            for _ in $(seq 20); do alive "$f" || break; sleep 0.25; done
        fi
    done
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
fi
if ! alive /run/slurm/slurmctld.pid; then
    log "starting slurmctld"
    /usr/sbin/slurmctld || die "slurmctld did not start; see /var/log/slurm/slurmctld.log"
fi
if ! alive /run/slurm/slurmd.pid; then
    log "starting slurmd"
    /usr/sbin/slurmd || die "slurmd did not start; see /var/log/slurm/slurmd.log"
fi

# --- 5. wait until the node is idle, fail fast otherwise -------------------------------------------
state=""
for _ in $(seq "${SLURM_UP_TIMEOUT:-30}"); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -n1 || true)
    case "$state" in idle | mixed | allocated) break ;; esac
    # A node left down/drained by an earlier run: return it to service.
    case "$state" in down* | drain* | inval*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;; esac
    sleep 1
done
case "$state" in
    idle | mixed | allocated) ;;
    *)
        scontrol show node "$NODE" 2>/dev/null | grep -i -E 'state|reason' >&2 || true
        tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        die "node ${NODE} is '${state:-unknown}', not idle"
        ;;
esac
timeout 30 srun -t 1 --gpus=1 true || die "srun --gpus=1 test job failed"
log "cluster up: $(sinfo -h -o '%P %a %D %T %N %G')"
