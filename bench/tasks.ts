/**
 * bench/tasks: dispatch overhead, throughput and failover of `true` tasks on 3 real daemons, side by side with the
 * machine's limit (bare child_process.spawn of `true`) and, with --bullmq, with BullMQ on Redis (shared/peers).
 *
 *   npm run bench -- tasks [--lat N] [--tp N] [--conc N] [--failovers N] [--bullmq]
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { TaskRecord } from '../proto/index.ts'
import { GRIDCTL } from '../tests/helpers/paths.ts'
import { runBullmq } from './peer.ts'
import { type Cluster, type Gridd, call, cpuSeconds, fmt, reportResets, median, percentile, sleep, startCluster, table, waitFor, withCluster } from './lib.ts'

const { values } = parseArgs({
  options: {
    lat: { type: 'string', default: '500' },
    ctl: { type: 'string', default: '50' },
    tp: { type: 'string', default: '4000' },
    conc: { type: 'string', default: '96' },
    failovers: { type: 'string', default: '3' },
    bullmq: { type: 'boolean', default: false }
  }
})
const LAT_N = Number(values.lat)
const CTL_N = Number(values.ctl)
const TP_N = Number(values.tp)
const CONC = Number(values.conc)
const FAILOVERS = Number(values.failovers)

/** A keep-alive HTTP client of one daemon's socket: what an application calling the API would use. */
function client (socket: string): { run: (body: unknown) => Promise<void>, get: <T>(path: string) => Promise<T> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 })
  const run = async (body: unknown): Promise<void> => {
    const r = await call(agent, socket, 'POST', '/tasks', body)
    if (r.status !== 200 || !r.text.includes('"type":"exit"') || !r.text.includes('"status":"completed"')) throw new Error(`task did not complete: ${r.status} ${r.text.slice(-300)}`)
  }
  const get = async <T>(path: string): Promise<T> => JSON.parse((await call(agent, socket, 'GET', path)).text) as T
  return { run, get }
}

/** When each event of a task stream reached the client, ms after the request was sent (first of each type). */
type Marks = Record<string, number[]>
const EVENT_TYPES = ['accepted', 'placed', 'started', 'exit'] as const

/** One task through the API, reading its NDJSON stream as it comes: when each event type arrived goes into `marks`. */
async function timedRun (socket: string, agent: Agent, body: unknown, marks: Marks): Promise<number> {
  const payload = JSON.stringify(body)
  const t0 = performance.now()
  const seen = new Map<string, number>()
  await new Promise<void>((resolve, reject) => {
    const req = request({ socketPath: socket, agent, method: 'POST', path: '/v1/tasks', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, res => {
      let rest = ''
      res.on('data', d => {
        const at = performance.now() - t0
        const lines = (rest + String(d)).split('\n')
        rest = lines.pop() ?? ''
        for (const l of lines) {
          const type = /"type":"(\w+)"/.exec(l)?.[1]
          if (type !== undefined && !seen.has(type)) seen.set(type, at)
        }
      })
      res.on('end', () => { seen.has('exit') ? resolve() : reject(new Error(`task did not complete: ${res.statusCode ?? 0}`)) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
  const total = performance.now() - t0
  for (const t of EVENT_TYPES) (marks[t] ??= []).push(seen.get(t) ?? NaN)
  return total
}

async function spawnTrue (): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn('true', [], { stdio: 'ignore' })
    p.on('exit', code => { code === 0 ? resolve() : reject(new Error(`exit ${code ?? '?'}`)) })
    p.on('error', reject)
  })
}

async function timed (n: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    out.push(performance.now() - t0)
  }
  return out
}

async function pool (n: number, conc: number, fn: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < n) await fn(next++)
  }))
  return (performance.now() - t0) / 1000
}

async function gridctlTrue (n1: Gridd): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [GRIDCTL, '--socket', n1.socket, 'run', '--node', 'n2', '--', 'true'], { stdio: 'ignore' })
    p.on('exit', code => { code === 0 ? resolve() : reject(new Error(`gridctl exit ${code ?? '?'}`)) })
  })
}

async function failover (c: Cluster, round: number): Promise<{ detectMs: number, rerunMs: number }> {
  const origin = c.node('n1')
  const marker = join(c.root, `fo-${round}`)
  const r = await origin.ctl(['run', '--detach', '--label', 'role=worker', '--', 'sh', '-c', `if [ "$GRID_ATTEMPT" = 1 ]; then touch ${marker}; sleep 300; fi`])
  const id = r.stdout.trim()
  await waitFor('the first attempt to run', () => existsSync(marker))
  const t = await waitFor('the record to show running', async () => {
    const x = await origin.api.get<TaskRecord>(`/tasks/${id}`)
    return x.status === 'running' ? x : undefined
  })
  const victim = c.node(t.nodeName as string)
  const killedAt = Date.now()
  await victim.kill()
  const dead = waitFor('n1 to see the victim dead', async () => (await origin.states())[victim.name] === 'dead' ? Date.now() : undefined, { intervalMs: 5 })
  const rerun = await waitFor('the task to run again', async () => {
    const x = await origin.api.get<TaskRecord>(`/tasks/${id}`)
    return x.attempts >= 2 && x.startedAt !== null && x.status !== 'pending' ? x : undefined
  }, { timeoutMs: 60_000, intervalMs: 10 })
  const detectMs = await dead - killedAt
  // restart the victim so the next round has a full cluster
  await victim.start()
  await c.converged()
  return { detectMs, rerunMs: Date.parse(rerun.startedAt as string) - killedAt }
}

async function main (): Promise<void> {
  // the peer first, so that its figures come from this same run and machine, with nothing of ours running
  const peer = values.bullmq === true ? await runBullmq() : undefined
  // the machine's limit: bare spawns of `true`
  await timed(50, spawnTrue)
  const bare = await timed(LAT_N, spawnTrue)
  const bareRate = TP_N / await pool(TP_N, 16, spawnTrue)

  const c = await startCluster(3, { args: i => ['--metrics-listen', 'off', ...(i === 0 ? [] : ['--label', 'role=worker'])] })
  await withCluster(c, async () => {
    await c.converged()
    const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    const api = client(n1.socket)
    // warm up every path
    for (let i = 0; i < 50; i++) await api.run({ command: ['true'], node: 'n2' })
    // the daemons' own CPU (not their spawners'): a figure the machine's other load hardly moves
    const daemonCpu = (): number => [n1, n2, n3].reduce((sum, n) => sum + cpuSeconds(n.pid), 0)
    // and their write system calls (sockets, pipes, files): how many times a task wakes another process
    const daemonWrites = (): number => [n1, n2, n3].reduce((sum, n) => sum + Number(/syscw: (\d+)/.exec(readFileSync(`/proc/${n.pid}/io`, 'utf8'))?.[1] ?? NaN), 0)
    let w0 = daemonWrites()
    let cpu0 = daemonCpu()
    const apiLat = await timed(LAT_N, async () => { await api.run({ command: ['true'], node: 'n2' }) })
    const remoteCpuMs = (daemonCpu() - cpu0) * 1000 / LAT_N
    const remoteWrites = (daemonWrites() - w0) / LAT_N
    cpu0 = daemonCpu()
    w0 = daemonWrites()
    const localLat = await timed(LAT_N, async () => { await api.run({ command: ['true'], node: 'n1' }) })
    const localCpuMs = (daemonCpu() - cpu0) * 1000 / LAT_N
    const localWrites = (daemonWrites() - w0) / LAT_N
    // where the time goes: when each event reaches the client
    const evAgent = new Agent({ keepAlive: true, maxSockets: 1 })
    const remoteMarks: Marks = {}
    const localMarks: Marks = {}
    for (let i = 0; i < Math.min(LAT_N, 300); i++) {
      await timedRun(n1.socket, evAgent, { command: ['true'], node: 'n2' }, remoteMarks)
      await timedRun(n1.socket, evAgent, { command: ['true'], node: 'n1' }, localMarks)
    }
    await timed(5, async () => { await gridctlTrue(n1) })
    const ctlLat = await timed(CTL_N, async () => { await gridctlTrue(n1) })

    // throughput: many tasks in flight, submitted through all three nodes, placed by least-loaded
    const clients = [n1, n2, n3].map(n => client(n.socket))
    await pool(300, CONC, async i => { await (clients[i % 3] as ReturnType<typeof client>).run({ command: ['true'] }) })
    cpu0 = daemonCpu()
    w0 = daemonWrites()
    const tpSeconds = await pool(TP_N, CONC, async i => { await (clients[i % 3] as ReturnType<typeof client>).run({ command: ['true'] }) })
    const rate = TP_N / tpSeconds
    const tpCpuMs = (daemonCpu() - cpu0) * 1000 / TP_N
    const tpWrites = (daemonWrites() - w0) / TP_N
    // the records of tasks other nodes ran reach n1 a moment later: wait until each says where it ran
    let spread: TaskRecord[] = []
    await waitFor('task records to say where each task ran', async () => {
      spread = await n1.api.get<TaskRecord[]>('/tasks')
      return spread.slice(0, TP_N).every(t => t.nodeName !== undefined)
    }, { timeoutMs: 30_000 }).catch(() => {})
    const perNode: Record<string, number> = {}
    for (const t of spread.slice(0, TP_N)) perNode[t.nodeName ?? '?'] = (perNode[t.nodeName ?? '?'] ?? 0) + 1

    const fos: Array<{ detectMs: number, rerunMs: number }> = []
    for (let i = 0; i < FAILOVERS; i++) fos.push(await failover(c, i))

    const ratio = (ours: number, theirs: number | undefined, higherIsBetter: boolean): string =>
      theirs === undefined ? '-' : `${fmt(higherIsBetter ? ours / theirs : theirs / ours)}x`

    table('Tasks: round trip of one `true` task (sequential), ms', ['path', 'p50', 'p99', 'overhead p50 vs bare spawn', 'BullMQ p50 / p99', 'ahead of BullMQ (p50)'], [
      ['bare child_process.spawn(true), local', median(bare), percentile(bare, 99), '-', '-', '-'],
      ['API, origin n1 -> executor n2 (remote)', median(apiLat), percentile(apiLat, 99), fmt(median(apiLat) - median(bare)), peer === undefined ? '-' : `${fmt(peer.lat_p50_ms ?? NaN)} / ${fmt(peer.lat_p99_ms ?? NaN)}`, ratio(median(apiLat), peer?.lat_p50_ms, false)],
      ['API, run on the origin itself', median(localLat), percentile(localLat, 99), fmt(median(localLat) - median(bare)), '-', '-'],
      ['gridctl run (a new CLI process each time)', median(ctlLat), percentile(ctlLat, 99), fmt(median(ctlLat) - median(bare)), '-', '-']
    ])
    table('Tasks: when each event reaches the client (ms after the request, medians, interleaved runs)', ['path', ...EVENT_TYPES], [
      ['remote (n1 -> n2)', ...EVENT_TYPES.map(t => median(remoteMarks[t] ?? []))],
      ['local (n1)', ...EVENT_TYPES.map(t => median(localMarks[t] ?? []))]
    ])
    table('Tasks: the 3 daemons\' cost per task (CPU: user + system; spawners not counted)', ['per task', 'remote, sequential', 'local, sequential', `sustained, ${CONC} in flight`], [
      ['CPU ms', remoteCpuMs, localCpuMs, tpCpuMs],
      ['write system calls', remoteWrites, localWrites, tpWrites]
    ])
    table('Tasks: sustained `true` tasks per second, 3 nodes', ['what', 'tasks/s', 'of bare spawn rate', 'BullMQ spawn jobs/s', 'ahead of BullMQ'], [
      ['bare spawn, 16 in flight, one process (the machine\'s limit)', bareRate, '100%', '-', '-'],
      [`grid, ${CONC} in flight via 3 APIs, least-loaded (${Object.entries(perNode).map(([k, v]) => `${k}:${v}`).join(' ')})`, rate, `${fmt(100 * rate / bareRate, 0)}%`, peer?.spawn_tasks_per_s === undefined ? '-' : fmt(peer.spawn_tasks_per_s), ratio(rate, peer?.spawn_tasks_per_s, true)]
    ])
    table('Failover: kill -9 of the executor of a running task', ['round', 'kill -> seen dead (ms)', 'kill -> running again (ms)'], fos.map((f, i) => [String(i + 1), f.detectMs, f.rerunMs]))
    console.log(`\nfailover median: kill -> running again ${fmt(median(fos.map(f => f.rerunMs)))} ms${peer?.fo_kill_to_first_rerun_start_s === undefined ? '' : `; BullMQ: ${fmt((peer.fo_kill_to_first_rerun_start_s ?? NaN) * 1000)} ms to the first re-run (${fmt((peer.fo_kill_to_all_done_s ?? NaN))} s to all done)`}`)
    if (peer !== undefined) console.log(`BullMQ raw: ${JSON.stringify(peer)}`)
  })
}

await main()
await sleep(100)
reportResets()
process.exit(0)
