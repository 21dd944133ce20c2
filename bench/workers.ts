/**
 * bench/workers: warm workers on 3 real daemons, side by side with a cold process per request and (with --bullmq)
 * BullMQ's in-process no-op job handler on Redis (shared/peers).
 *
 * - warm round trip (sequential): local (the session's worker is on the node asked) and remote;
 * - sustained requests per second across 3 nodes: one request per API call, and batches of requests per call;
 * - a cold process per request (a new `node echo_worker.mjs` each time);
 * - a worker that takes 2 s to start (as importing torch and loading a model does): first against second request.
 *
 *   npm run bench -- workers [--lat N] [--tp N] [--conc N] [--batch N] [--bullmq]
 */
import { writeFileSync } from 'node:fs'
import { Agent, globalAgent } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT } from '../tests/helpers/paths.ts'
import { runBullmq } from './peer.ts'
import { type Gridd, call, fmt, reportResets, median, percentile, startCluster, table, withCluster } from './lib.ts'

const { values } = parseArgs({
  options: {
    lat: { type: 'string', default: '2000' },
    tp: { type: 'string', default: '20000' },
    conc: { type: 'string', default: '64' },
    batch: { type: 'string', default: '100' },
    cold: { type: 'string', default: '50' },
    bullmq: { type: 'boolean', default: false }
  }
})
const LAT_N = Number(values.lat)
const TP_N = Number(values.tp)
const CONC = Number(values.conc)
const BATCH = Number(values.batch)
const COLD_N = Number(values.cold)

interface CallOut { results?: Array<{ ok: boolean }>, result?: unknown, error?: unknown, nodeName: string }

function client (socket: string): (body: unknown) => Promise<CallOut> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 })
  return async body => {
    const r = await call(agent, socket, 'POST', '/call', body)
    const out = JSON.parse(r.text) as CallOut
    if (r.status !== 200 || out.error !== undefined || out.results?.some(x => !x.ok) === true) throw new Error(r.text.slice(0, 300))
    return out
  }
}

async function timed (n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    out.push(performance.now() - t0)
  }
  return out
}

async function pool (total: number, conc: number, fn: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: conc }, async () => { while (next < total) await fn(next++) }))
  return (performance.now() - t0) / 1000
}

async function main (): Promise<void> {
  const peer = values.bullmq === true ? await runBullmq() : undefined
  const ex = join(ROOT, 'examples/workers')
  const cfgDir = join(ROOT, 'dist/bench')
  const cfg = join(cfgDir, 'workers-bench.yaml')
  writeFileSync(cfg, `
tasks:
  echo:
    command: [${process.execPath}, ${ex}/echo_worker.mjs]
    worker: {concurrency: 64, cpus: 0, maxWorkers: 1}
  heavy:
    command: [${process.execPath}, ${ex}/echo_worker.mjs]
    env: {ECHO_STARTUP_SECONDS: "2"}
    worker: {concurrency: 1, cpus: 0}
`)
  const c = await startCluster(3, { args: () => ['--config', cfg, '--metrics-listen', 'off'] })
  await withCluster(c, async () => {
    await c.converged()
    const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    const calls = [n1, n2, n3].map(n => client(n.socket))
    const call1 = calls[0] as ReturnType<typeof client>
    // pin one session to n1 (local for n1) and one to n2 (remote for n1)
    await call1({ type: 'echo', session: 'local', node: 'n1', payload: 0 })
    await call1({ type: 'echo', session: 'remote', node: 'n2', payload: 0 })
    for (let i = 0; i < 200; i++) { await call1({ type: 'echo', session: 'local', payload: i }); await call1({ type: 'echo', session: 'remote', payload: i }) }
    const local = await timed(LAT_N, async () => await call1({ type: 'echo', session: 'local', payload: { n: 1 } }))
    const remote = await timed(LAT_N, async () => await call1({ type: 'echo', session: 'remote', payload: { n: 1 } }))
    const localCheck = await call1({ type: 'echo', session: 'local', payload: 1 })
    const remoteCheck = await call1({ type: 'echo', session: 'remote', payload: 1 })
    if (localCheck.nodeName !== 'n1' || remoteCheck.nodeName !== 'n2') throw new Error(`sessions moved: ${localCheck.nodeName} ${remoteCheck.nodeName}`)

    // sustained: requests without a session, spread over the 3 nodes' workers, submitted through all 3 APIs
    await pool(2000, CONC, async i => { await (calls[i % 3] as ReturnType<typeof client>)({ type: 'echo', payload: i }) })
    const singleSecs = await pool(TP_N, CONC, async i => { await (calls[i % 3] as ReturnType<typeof client>)({ type: 'echo', payload: i }) })
    const batches = Math.ceil(TP_N / BATCH)
    // at most 900 requests in flight in all: even if every batch met the same node, its queue (1000) would not fill
    const batchSecs = await pool(batches, Math.min(CONC, Math.max(1, Math.floor(900 / BATCH))), async i => {
      await (calls[i % 3] as ReturnType<typeof client>)({ type: 'echo', payloads: Array.from({ length: BATCH }, (_, j) => i * BATCH + j) })
    })

    // a cold process per request: the same echo program, started for each request as a task
    const cold = await timed(COLD_N, async () => {
      const r = await call(globalAgent, n1.socket, 'POST', '/tasks', { command: [process.execPath, '-e', 'process.stdout.write(JSON.stringify({echo:1}))'], node: 'n1' })
      if (!r.text.includes('"status":"completed"')) throw new Error(r.text.slice(-200))
    })

    // a worker that loads something heavy: its session's first request pays the load, the next ones do not
    const t0 = performance.now()
    await call1({ type: 'heavy', session: 'model', payload: 1 })
    const firstMs = performance.now() - t0
    const next = await timed(50, async () => await call1({ type: 'heavy', session: 'model', payload: 2 }))

    const ratio = (ours: number, theirs: number | undefined, higherIsBetter: boolean): string => theirs === undefined ? '-' : `${fmt(higherIsBetter ? ours / theirs : theirs / ours)}x`
    table('Warm workers: round trip of one request (sequential), ms', ['path', 'p50', 'p99', 'BullMQ no-op job p50 / p99', 'ahead of BullMQ (p50)'], [
      ['warm worker, same node (API on the session\'s node)', median(local), percentile(local, 99), peer === undefined ? '-' : `${fmt(peer.lat_p50_ms ?? NaN)} / ${fmt(peer.lat_p99_ms ?? NaN)}`, ratio(median(local), peer?.lat_p50_ms, false)],
      ['warm worker, remote (API on another node)', median(remote), percentile(remote, 99), '-', ratio(median(remote), peer?.lat_p50_ms, false)],
      ['cold process per request (node -e, as a task)', median(cold), percentile(cold, 99), '-', '-']
    ])
    table('Warm workers: sustained echo requests per second, 3 nodes', ['how', 'requests/s', 'BullMQ no-op jobs/s', 'ahead of BullMQ'], [
      [`one request per API call, ${CONC} in flight over 3 APIs`, TP_N / singleSecs, peer?.noop_tasks_per_s === undefined ? '-' : fmt(peer.noop_tasks_per_s), ratio(TP_N / singleSecs, peer?.noop_tasks_per_s, true)],
      [`${BATCH} requests per API call, over 3 APIs`, (batches * BATCH) / batchSecs, '-', ratio((batches * BATCH) / batchSecs, peer?.noop_tasks_per_s, true)]
    ])
    table('Warm workers: a session whose worker takes 2 s to load', ['first request (ms)', 'later requests p50 (ms)', 'speed-up'], [[firstMs, median(next), `${fmt(firstMs / median(next), 0)}x`]])
  })
}

await main()
reportResets()
process.exit(0)
