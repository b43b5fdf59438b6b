#!/usr/bin/env bash
# Stop the one-node CI SLURM cluster started by .ci/slurm-up.sh (by PID, never by name).
# Usage: .ci/slurm-down.sh [--purge]   (--purge also deletes saved job/node state)
set -uo pipefail

for f in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" && echo "slurm-down: stopped $(basename "$f" .pid) ($pid)" >&2
    fi
done
if [ "${1:-}" = "--purge" ]; then
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
fi
exit 0
