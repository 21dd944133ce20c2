#!/usr/bin/env bash
# Workflow DAGs of `true` on Slurm (Debian slurm-wlm), the cluster brought up as shared/peers/bench_slurm.sh does it:
# munged + slurmctld + 3 slurmd on this host (n1..n3, CPUs=4 each), config, state and munge key under WORKDIR.
# Two shapes, each job a batch job that logs its start and end (epoch ms) around `true`:
# - wide: a start job, a job array of WIDE tasks `--dependency=afterok:START`, an end job `afterok:ARRAY`;
# - chain: CHAIN jobs, each `sbatch --dependency=afterok:PREVIOUS`, all submitted up front.
# The makespan runs from the first sbatch to the last job's logged end; the overhead per job is the makespan minus the
# critical path's task time, over the jobs (WIDE + 2, or CHAIN). Prints `NAME median= X runs=...` lines.
# Slurm daemons listen on all interfaces on their ports (no bind option); all traffic goes to 127.0.0.1.
#
# Usage: bash bench/peers/slurm-dag.sh   (env: WORKDIR REPEATS=1 WIDE=990 CHAIN=20 PORT_BASE=6860 SCHED_PARAMS=batch_sched_delay=0)
set -euo pipefail

WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/peers/slurm-dag}
REPEATS=${REPEATS:-1}
WIDE=${WIDE:-990}
CHAIN=${CHAIN:-20}
PORT_BASE=${PORT_BASE:-6860}
SCHED_PARAMS=${SCHED_PARAMS-batch_sched_delay=0}
NODES=3

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
SLURM_V=$(slurmctld -V | awk '{print $2}')

rm -rf "$WORKDIR"; mkdir -p "$WORKDIR"; cd "$WORKDIR"
D=$PWD
mkdir -p munge-key munge-run state log
chmod 700 munge-key; chmod 755 munge-run
for n in $(seq 1 $NODES); do mkdir -p "spool/n$n"; done
mungekey --create --keyfile="$D/munge-key/munge.key" --force

HOST=$(hostname -s)
cat > slurm.conf <<EOF
ClusterName=peersdag
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=${PORT_BASE}
SlurmdPort=$((PORT_BASE+1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge-run/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=10
SlurmctldTimeout=10
InactiveLimit=0
KillWait=5
MaxJobCount=50000
MaxArraySize=$((WIDE > 1000 ? WIDE + 1 : 1001))
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
${SCHED_PARAMS:+SchedulerParameters=$SCHED_PARAMS}
NodeName=n[1-${NODES}] NodeHostname=${HOST} NodeAddr=127.0.0.1 Port=[$((PORT_BASE+11))-$((PORT_BASE+10+NODES))] CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=n[1-${NODES}] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$D/slurm.conf

PIDS=()
cleanup() {
  set +e
  squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null
  sleep 1
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM -- "-$p" 2>/dev/null; done
  sleep 1
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL -- "-$p" 2>/dev/null; done
}
trap cleanup EXIT

setsid munged -F --force --socket="$D/munge-run/munge.sock" --key-file="$D/munge-key/munge.key" \
  --log-file="$D/log/munged.log" --pid-file="$D/munge-run/munged.pid" --seed-file="$D/munge-key/munged.seed" \
  > log/munged.out 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$D/munge-run/munge.sock" ] && break; sleep 0.1; done
setsid slurmctld -D -f "$SLURM_CONF" > log/slurmctld.out 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
for n in $(seq 1 $NODES); do setsid slurmd -D -f "$SLURM_CONF" -N "n$n" > "log/slurmd.n$n.out" 2>&1 & PIDS+=($!); done
for _ in $(seq 100); do [ "$(sinfo -h -o %t | sort -u)" = idle ] && break; sleep 0.2; done
[ "$(sinfo -h -o %t | sort -u)" = idle ] || { echo "slurm nodes did not come up" >&2; sinfo >&2; exit 1; }

active_jobs() { squeue -h -t PD,R,CG,CF,S -o %i | wc -l; }
wait_idle() { # fails when a job can never run (a dependency that failed)
  while [ "$(active_jobs)" -gt 0 ]; do
    if squeue -h -o %r | grep -q DependencyNeverSatisfied; then echo "a dependency was never satisfied" >&2; return 1; fi
    sleep 0.2
  done
}
now_ms() { date +%s%3N; }
# a batch job around `true` that logs "S TAG ms" and "E TAG ms" (TAG may use $SLURM_ARRAY_TASK_ID)
job() { # log tag sbatch-args...
  local log=$1 tag=$2; shift 2
  sbatch --parsable -n1 -o /dev/null "$@" --wrap \
    "echo S $tag \$(date +%s%3N) >> $log; true; echo E $tag \$(date +%s%3N) >> $log"
}

RESULTS="$D/results.jsonl"; : > "$RESULTS"
for r in $(seq 1 "$REPEATS"); do
  # wide: start -> array of WIDE -> end (WIDE=0: no wide DAG)
  wait_idle
  if [ "$WIDE" -gt 0 ]; then
  L="$D/wide$r.log"; : > "$L"
  T0=$(now_ms)
  S=$(job "$L" start)
  A=$(job "$L" 'w$SLURM_ARRAY_TASK_ID' --array="1-$WIDE" --dependency="afterok:$S")
  job "$L" end --dependency="afterok:$A" >/dev/null
  wait_idle
  python3 - wide "$r" "$T0" "$L" "$WIDE" >> "$RESULTS" <<'EOF'
import json, sys
shape, run, t0, log, n = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
s, e = {}, {}
for line in open(log):
    p = line.split()
    if len(p) == 3: (s if p[0] == "S" else e)[p[1]] = float(p[2])
task = lambda k: e[k] - s[k]
wide = [k for k in e if k.startswith("w")]
makespan = (e["end"] - t0) / 1000
critical = (task("start") + max(task(k) for k in wide) + task("end")) / 1000
out = lambda m, v: print(json.dumps({"run": run, "metric": m, "value": v}))
out("wide_jobs_done", len(e)); out("wide_makespan_s", makespan)
out("wide_overhead_ms", (makespan - critical) / (n + 2) * 1000)
out("wide_layer_jobs_per_s", len(wide) / ((max(e[k] for k in wide) - min(s[k] for k in wide)) / 1000))
EOF
  fi
  # chain: CHAIN jobs, each after the one before (CHAIN=0: no chain)
  [ "$CHAIN" -gt 0 ] || { echo "slurm dag run $r done" >&2; continue; }
  L="$D/chain$r.log"; : > "$L"
  T0=$(now_ms)
  P=$(job "$L" c1)
  for i in $(seq 2 "$CHAIN"); do P=$(job "$L" "c$i" --dependency="afterok:$P"); done
  T1=$(now_ms)
  wait_idle
  python3 - chain "$r" "$T0" "$L" "$CHAIN" "$T1" >> "$RESULTS" <<'EOF'
import json, sys
shape, run, t0, log, n, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
s, e = {}, {}
for line in open(log):
    p = line.split()
    if len(p) == 3: (s if p[0] == "S" else e)[p[1]] = float(p[2])
makespan = (e["c%d" % n] - t0) / 1000
critical = sum(e[k] - s[k] for k in e) / 1000
out = lambda m, v: print(json.dumps({"run": run, "metric": m, "value": v}))
out("chain_jobs_done", len(e)); out("chain_makespan_s", makespan); out("chain_task_s", critical)
out("chain_overhead_ms", (makespan - critical) / n * 1000); out("chain_submit_s", (t1 - t0) / 1000)
EOF
  echo "slurm dag run $r done" >&2
done

cleanup; trap - EXIT
echo "== Slurm ${SLURM_V}: slurmctld + ${NODES} slurmd (CPUs=4 each), SchedulerParameters=${SCHED_PARAMS:-default}; wide: start, array of ${WIDE}, end; chain of ${CHAIN} (sbatch --dependency=afterok)"
python3 - "$RESULTS" <<'EOF'
import json, sys, statistics, collections
vals = collections.defaultdict(list)
for line in open(sys.argv[1]):
    d = json.loads(line); vals[d["metric"]].append(d["value"])
for k, v in vals.items():
    print(f"{k:30s} median={statistics.median(v):12.3f}  runs=" + ", ".join(f"{x:.3f}" for x in v))
EOF
