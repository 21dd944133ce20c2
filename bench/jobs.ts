/**
 * bench/jobs: `gridctl distribute` on 3 real daemons: N items of `true` through Grid against the machine's own limit
 * (bare child_process.spawn of `true` at the same concurrency, on this one machine), each daemon's peak RSS during the
 * job, and the origin killed mid-job: the extra makespan, items lost, items that succeeded and ran again.
 *
 * Then W items through warm workers (an echo worker in Node, on every node).
 *
 * First, in the same run, the peers of --peers (default all: bullmq, dask, slurm; none for none), each sized the same:
 * bench/peers/jobs.ts. A peer that fails to install or run is reported as such.
 *
 *   npm run bench -- jobs [--items N] [--conc N] [--failover-items N] [--worker-items N] [--peers LIST] [--slurm-array N]
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { JobRecord } from '../proto/index.ts'
import { fetchMetrics, metricValue } from '../tests/helpers/metrics.ts'
import { ROOT } from '../tests/helpers/paths.ts'
import { cpuSeconds, fmt, rssBytes, sleep, startCluster, table, waitFor, withCluster, type Cluster, type Gridd } from './lib.ts'
import { parsePeers } from './peer.ts'
import { jobPeers, measured, printNoopPeers, printSpawnPeers, SLURM_ARRAY_MAX } from './peers/jobs.ts'

const { values } = parseArgs({
  options: {
    items: { type: 'string', default: '10000' },
    conc: { type: 'string', default: '24' },
    'failover-items': { type: 'string', default: '600' },
    'worker-items': { type: 'string', default: '100000' },
    'max-parallel': { type: 'string' },
    peers: { type: 'string', default: 'all' },
    'slurm-array': { type: 'string' }
  }
})
const N = Number(values.items)
const CONC = Number(values.conc)
const FO_N = Number(values['failover-items'])
const W_N = Number(values['worker-items'])

async function spawnTrue (): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn('true', [], { stdio: 'ignore' })
    p.on('exit', code => { code === 0 ? resolve() : reject(new Error(`exit ${code ?? '?'}`)) })
    p.on('error', reject)
  })
}

/** GNU parallel running `true` N times, CONC at once (when it is installed). */
async function gnuParallel (n: number, conc: number): Promise<number | undefined> {
  const t0 = performance.now()
  const code = await new Promise<number | null>(resolve => {
    const p = spawn('sh', ['-c', `seq ${n} | parallel -j ${conc} true`], { stdio: ['ignore', 'ignore', 'ignore'] })
    p.on('error', () => { resolve(null) })
    p.on('exit', resolve)
  })
  return code === 0 ? (performance.now() - t0) / 1000 : undefined
}

async function bare (n: number, conc: number): Promise<number> {
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: conc }, async () => { while (next++ < n) await spawnTrue() }))
  return (performance.now() - t0) / 1000
}

/** Samples every daemon's RSS (every 200 ms) and V8 heap used (its metrics, every second) while `fn` runs; the peak of each. */
async function peakRss<T> (c: Cluster, fn: () => Promise<T>): Promise<{ result: T, peakMiB: number[], heapMiB: number[] }> {
  const peaks = c.nodes.map(() => 0)
  const heaps = c.nodes.map(() => 0)
  let on = true
  const sampler = (async () => {
    for (let k = 0; on; k++) {
      c.nodes.forEach((n, i) => { try { if (n.pid > 0) peaks[i] = Math.max(peaks[i] ?? 0, rssBytes(n.pid)) } catch { /* it stopped */ } })
      if (k % 5 === 0) {
        await Promise.all(c.nodes.map(async (n, i) => {
          try { heaps[i] = Math.max(heaps[i] ?? 0, metricValue(await fetchMetrics(n.socket), 'grid_nodejs_heap_size_used_bytes')) } catch { /* it stopped */ }
        }))
      }
      await sleep(200)
    }
  })()
  try {
    return { result: await fn(), peakMiB: peaks.map(b => b / 1024 / 1024), heapMiB: heaps.map(b => b / 1024 / 1024) }
  } finally {
    on = false
    await sampler
  }
}

async function distribute (n: Gridd, args: string[]): Promise<{ secs: number, job: JobRecord }> {
  const t0 = performance.now()
  const r = await n.ctl(['distribute', '-o', 'json', ...args], { timeoutMs: 1_800_000 })
  const secs = (performance.now() - t0) / 1000
  if (r.code !== 0) throw new Error(`distribute exit ${r.code}: ${r.stderr.slice(-500)}`)
  return { secs, job: JSON.parse(r.stdout) as JobRecord }
}

const lines = (p: string): string[] => existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter(l => l !== '') : []

async function main (): Promise<void> {
  const peers = await jobPeers(parsePeers(values.peers), { items: N, workerItems: W_N, slurmArray: Number(values['slurm-array'] ?? Math.min(N, SLURM_ARRAY_MAX)) })
  const bareSecs = N > 0 ? await bare(N, CONC) : 0
  const parallelSecs = N > 0 ? await gnuParallel(N, CONC) : undefined
  const parallelFig = parallelSecs === undefined ? undefined : measured(N, parallelSecs)
  const cfg = join(tmpdir(), `grid-bench-jobs-${process.pid}.yaml`)
  writeFileSync(cfg, `tasks:\n  nodeecho:\n    command: [${process.execPath}, ${join(ROOT, 'examples/workers/echo_worker.mjs')}]\n    worker: {concurrency: 64, cpus: 0}\n`)
  const c = await startCluster(3, { args: () => ['--config', cfg, '--slots', String(Math.max(1, Math.round(CONC / 3)))] })
  await withCluster(c, async () => {
    await c.converged()
    const n1 = c.node('n1')
    if (N > 0) {
    const { result: grid, peakMiB, heapMiB } = await peakRss(c, async () => await distribute(n1, ['--count', String(N), '--', 'true']))
    table(`${N} items of true (3 nodes on one machine, ${CONC} at once)`, ['how', 'seconds', 'items/s', 'vs bare spawn'], [
      ['bare spawn of true', fmt(bareSecs), fmt(N / bareSecs, 0), '100 %'],
      ...(parallelSecs === undefined ? [] : [['GNU parallel (one node)', fmt(parallelSecs), fmt(N / parallelSecs, 0), `${fmt((bareSecs / parallelSecs) * 100, 0)} %`]]),
      ['gridctl distribute', fmt(grid.secs), fmt(N / grid.secs, 0), `${fmt((bareSecs / grid.secs) * 100, 0)} %`]
    ])
    if (parallelSecs !== undefined) console.log(`Grid's rate is ${fmt((parallelSecs / grid.secs) * 100, 0)} % of GNU parallel's (goal: at least 90 %)`)
    printSpawnPeers(peers, N, CONC, measured(N, grid.secs), parallelFig)
    table('daemon memory during the job (peak)', ['node', 'RSS MiB', 'heap used MiB'], peakMiB.map((m, i) => [`n${i + 1}`, fmt(m, 0), fmt(heapMiB[i] ?? NaN, 0)]))
    }

    if (W_N > 0) {
      // each daemon's CPU seconds for the job: on a shared machine, a steadier measure of its cost than the rate
      const cpu0 = c.nodes.map(n => cpuSeconds(n.pid))
      const w = await peakRss(c, async () => await distribute(n1, ['--type', 'nodeecho', '--count', String(W_N), ...(values['max-parallel'] === undefined ? [] : ['--max-parallel', values['max-parallel']])]))
      const cpu = c.nodes.map((n, i) => cpuSeconds(n.pid) - (cpu0[i] ?? 0))
      table(`${W_N} items through warm workers (echo, 3 nodes)`, ['seconds', 'items/s', 'peak RSS n1 / n2 / n3 (MiB)', 'peak heap used (MiB)', 'daemon CPU s n1 / n2 / n3'], [
        [fmt(w.result.secs), fmt(W_N / w.result.secs, 0), w.peakMiB.map(m => fmt(m, 0)).join(' / '), w.heapMiB.map(m => fmt(m, 0)).join(' / '), cpu.map(x => fmt(x, 1)).join(' / ')]
      ])
      printNoopPeers(peers, W_N, measured(W_N, w.result.secs))
    }

    if (FO_N === 0) return
    // the origin killed mid-job: items of 50 ms on n2, driven by n1
    const ran = join(c.root, 'fo-ran')
    const script = `echo "$GRID_ITEM_INDEX" >> ${ran}-$GRID_NODE_NAME; sleep 0.05`
    const calm = await distribute(c.node('n2'), ['--count', String(FO_N), '--node', 'n2', '--', 'sh', '-c', 'sleep 0.05'])
    const r = await n1.ctl(['distribute', '--detach', '--count', String(FO_N), '--node', 'n2', '--', 'sh', '-c', script])
    if (r.code !== 0) throw new Error(`distribute --detach exit ${r.code}: ${r.stderr}`)
    const id = r.stdout.trim()
    const t0 = performance.now()
    await waitFor('a third of the items to run', () => lines(`${ran}-n2`).length >= FO_N / 3, { timeoutMs: 600_000 })
    await n1.kill()
    const done = await waitFor('the job to finish on n3', async () => {
      const j = await c.node('n3').api.get<JobRecord>(`/jobs/${id}`)
      return j.finishedAt !== null ? j : undefined
    }, { timeoutMs: 600_000, intervalMs: 100 })
    const secs = (performance.now() - t0) / 1000
    const all = lines(`${ran}-n2`).map(Number)
    const counts = new Map<number, number>()
    for (const i of all) counts.set(i, (counts.get(i) ?? 0) + 1)
    const lost = FO_N - counts.size
    const rerun = [...counts.values()].filter(n => n > 1).length
    table(`${FO_N} items of 50 ms on one node, the origin killed a third of the way`, ['run', 'seconds', 'status', 'lost', 're-run'], [
      ['no failure (driven by n2)', fmt(calm.secs), calm.job.status, '0', '0'],
      ['origin n1 killed', fmt(secs), done.status, String(lost), String(rerun)]
    ])
  })
}

await main()
