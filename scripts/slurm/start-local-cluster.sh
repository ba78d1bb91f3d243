#!/usr/bin/env bash
# A throw-away single-node SLURM cluster for tests (recipe: ../shared/docs/slurm-local.md §1):
# Debian's slurmctld + slurmd + munge, no cgroups, no systemd, SlurmUser=root. Installs the packages
# when missing (needs root and Debian's package index), writes /etc/slurm/slurm.conf for this host,
# starts munged, slurmctld and slurmd, and waits for the node to be idle. Safe to run twice.
set -euo pipefail
# Root is needed (packages, /etc, daemons running as root); use sudo when not root.
if [[ "$(id -u)" -ne 0 ]]; then
  exec sudo -E "$0" "$@"
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
H="$(hostname)"
getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/slurm
chown munge:munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=localtest
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MaxArraySize=10001
MinJobAge=600
NodeName=$H CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
  state="$(sinfo -h -o %T 2>/dev/null | head -1 || true)"
  [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] && break
  [[ "$state" == down* || "$state" == drain* ]] && scontrol update nodename="$H" state=resume || true
  sleep 1
done
sinfo
