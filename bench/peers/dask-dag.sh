#!/usr/bin/env bash
# Workflow DAGs of `true` on Dask distributed (Debian python3-distributed): a scheduler and 3 workers (NTHREADS each,
# no nanny) on 127.0.0.1, as shared/peers/bench_dask.sh runs them. Each job is a `dask.delayed` call that runs
# `subprocess.run(["/bin/true"])` and returns its start and end; two graphs, submitted whole with client.compute:
# - wide: a start, WIDE jobs that each take the start's result, an end that takes all of theirs;
# - chain: CHAIN jobs, each taking the one before's result.
# The makespan runs from client.compute to the results at the client; the overhead per job is the makespan minus the
# critical path's task time, over the jobs (WIDE + 2, or CHAIN). Prints `NAME median= X runs=...` lines.
#
# Usage: bash bench/peers/dask-dag.sh   (env: WORKDIR REPEATS=1 WORKERS=3 NTHREADS=4 WIDE=990 CHAIN=100 SCHED_PORT=8797)
set -euo pipefail

WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/peers/dask-dag}
REPEATS=${REPEATS:-1}
WORKERS=${WORKERS:-3}
NTHREADS=${NTHREADS:-4}
WIDE=${WIDE:-990}
CHAIN=${CHAIN:-100}
SCHED_PORT=${SCHED_PORT:-8797}
PY=/usr/bin/python3

mkdir -p "$WORKDIR"; cd "$WORKDIR"
if ! $PY -c 'import distributed' 2>/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-distributed >/dev/null
fi
DASK_V=$($PY -c 'import distributed; print(distributed.__version__)')

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

cat > dag.py <<'EOF'
import json, os, subprocess, sys, time
from dask import delayed
from distributed import Client

def run_true(name, *deps):
    t0 = time.time()
    subprocess.run(["/bin/true"], check=True)
    return (name, t0, time.time())

def out(run, metric, value):
    print(json.dumps({"run": run, "metric": metric, "value": value}), flush=True)

run, wide_n, chain_n, addr = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = Client(addr, timeout=30)
c.wait_for_workers(int(os.environ["WORKERS"]))
job = lambda name, *deps: delayed(run_true, pure=False)(name, *deps, dask_key_name="%s-%d" % (name, run))
task = lambda r: r[2] - r[1]

if wide_n > 0:
    start = job("start")
    wide = [job("w%d" % i, start) for i in range(wide_n)]
    end = job("end", *wide)
    t0 = time.time()
    res = c.gather(c.compute([start, end] + wide))
    t1 = time.time()
    s, e, w = res[0], res[1], res[2:]
    makespan = t1 - t0
    critical = task(s) + max(task(x) for x in w) + task(e)
    out(run, "wide_jobs_done", len(res)); out(run, "wide_makespan_s", makespan)
    out(run, "wide_overhead_ms", (makespan - critical) / (wide_n + 2) * 1000)
    out(run, "wide_layer_jobs_per_s", wide_n / (max(x[2] for x in w) - min(x[1] for x in w)))

if chain_n > 0:
    chain = [job("c0")]
    for i in range(1, chain_n): chain.append(job("c%d" % i, chain[-1]))
    t0 = time.time()
    res = c.gather(c.compute(chain))
    t1 = time.time()
    makespan = t1 - t0
    critical = sum(task(x) for x in res)
    out(run, "chain_jobs_done", len(res)); out(run, "chain_makespan_s", makespan); out(run, "chain_task_s", critical)
    out(run, "chain_overhead_ms", (makespan - critical) / chain_n * 1000)
c.close()
EOF

setsid $PY -m distributed.cli.dask_scheduler --host 127.0.0.1 --port "$SCHED_PORT" --no-dashboard > scheduler.log 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do grep -q "Scheduler at" scheduler.log 2>/dev/null && break; sleep 0.1; done
grep -q "Scheduler at" scheduler.log || { echo "dask scheduler did not start" >&2; cat scheduler.log >&2; exit 1; }
for i in $(seq 1 "$WORKERS"); do
  setsid $PY -m distributed.cli.dask_worker "tcp://127.0.0.1:$SCHED_PORT" --host 127.0.0.1 \
    --nthreads "$NTHREADS" --no-nanny --no-dashboard --name "w$i" > "worker$i.log" 2>&1 &
  PIDS+=($!)
done

RESULTS="$WORKDIR/results.jsonl"; : > "$RESULTS"
export WORKERS
for r in $(seq 1 "$REPEATS"); do
  $PY dag.py "$r" "$WIDE" "$CHAIN" "tcp://127.0.0.1:$SCHED_PORT" >> "$RESULTS" 2>>client.err || { tail -20 client.err >&2; exit 1; }
  echo "dask dag run $r done" >&2
done

cleanup; trap - EXIT
echo "== Dask distributed ${DASK_V}: 1 scheduler + ${WORKERS} workers x ${NTHREADS} threads, no nanny; dask.delayed subprocess.run(true): wide: start, ${WIDE}, end; chain of ${CHAIN}"
$PY - "$RESULTS" <<'EOF'
import json, sys, statistics, collections
vals = collections.defaultdict(list)
for line in open(sys.argv[1]):
    d = json.loads(line); vals[d["metric"]].append(d["value"])
for k, v in vals.items():
    print(f"{k:30s} median={statistics.median(v):12.3f}  runs=" + ", ".join(f"{x:.3f}" for x in v))
EOF
