/**
 * bench/membership: N real daemons on this machine (N = 5, 10, 20 by default).
 *
 * - time from the last node's start until every node sees all N alive, and the suspicions every node began until then
 *   (from its own failed probes, and from other members' notices): each one is a flicker that keeps the view apart;
 * - time until every other node has noticed a kill -9 (dead), and a SIGSTOP (suspect, then dead);
 * - idle CPU and RSS per daemon once settled (after its first minute), and bytes per second each writes (sockets, logs
 *   and state log: /proc/PID/io wchar).
 *
 *   npm run bench -- membership [--sizes 5,10,20] [--idle 30s] [--daemon dist|bundle]
 *
 * --daemon bundle runs dist/bundle/gridd.mjs (what gridctl deploy installs and systemd runs; built here when missing)
 * instead of the tsc build that loads node_modules file by file.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseDuration } from '../src/interface/index.ts'
import { ROOT } from '../tests/helpers/paths.ts'
import { fetchMetrics, metricValue } from '../tests/helpers/metrics.ts'
import { type Cluster, type Gridd, childPid, cpuSeconds, fmt, median, rssBytes, sleep, startCluster, table, waitFor } from './lib.ts'

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '5,10,20' }, idle: { type: 'string', default: '30s' }, daemon: { type: 'string', default: 'dist' } } })
const SIZES = (values.sizes ?? '5,10,20').split(',').map(Number)
const IDLE_MS = parseDuration(values.idle ?? '30s') ?? 30_000
const DAEMON = values.daemon ?? 'dist'
if (DAEMON !== 'dist' && DAEMON !== 'bundle') {
  console.error(`--daemon must be dist or bundle, not ${DAEMON}`)
  process.exit(2)
}
if (DAEMON === 'bundle') {
  const bundle = join(ROOT, 'dist/bundle/gridd.mjs')
  if (!existsSync(bundle)) execFileSync(process.execPath, [join(ROOT, 'deploy/bundle.mjs')], { cwd: ROOT, stdio: 'inherit' })
  process.env.GRID_TEST_GRIDD = bundle
}
/** A node settles after its first minute (mesh: RENDEZVOUS_SETTLE_MS); idle cost is measured after that. */
const SETTLE_MS = 65_000

function wchar (pid: number): number {
  const m = /wchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
  return m === null ? NaN : Number(m[1])
}

/**
 * Waits until every other node sees `name` in one of `states`, then reads when each got there from its own health
 * history (the daemon's clock, the same machine's): polling 20 saturated daemons would measure the polling. Returns
 * ms from `t0` until the last node got there.
 */
async function allSee (c: Cluster, name: string, states: string[], t0: number): Promise<number> {
  const others = c.running().filter(n => n.name !== name)
  const seen = new Set<string>()
  await waitFor(`all to see ${name} ${states.join('/')}`, async () => {
    await Promise.all(others.filter(n => !seen.has(n.name)).map(async n => {
      const s = (await n.states())[name]
      if (s !== undefined && states.includes(s)) seen.add(n.name)
    }))
    return seen.size === others.length
  }, { timeoutMs: 120_000, intervalMs: 200 })
  const at = await Promise.all(others.map(async n => {
    const h = (await n.health()).find(e => e.name === name)
    const first = h?.history.find(e => states.includes(e.state) && Date.parse(e.at) >= t0)
    return first === undefined ? NaN : Date.parse(first.at) - t0
  }))
  return Math.max(...at)
}

/** Suspicions begun so far, summed over the nodes: from each one's own probes (local) and from others' notices. */
async function suspicions (c: Cluster): Promise<{ local: number, notice: number }> {
  const texts = await Promise.all(c.running().map(async n => await fetchMetrics(n.socket)))
  const sum = (source: string): number => texts.reduce((a, t) => a + metricValue(t, 'grid_membership_suspicions_total', { source }), 0)
  return { local: sum('local'), notice: sum('notice') }
}

interface Row { n: number, convergeMs: number, suspectedLocal: number, suspectedNotice: number, killMs: number, stopSuspectMs: number, stopDeadMs: number, cpuPct: number, rssMB: number, spawnerMB: number, bytesPerSec: number }

async function run (n: number): Promise<Row> {
  const c = await startCluster(1)
  try {
    // the others start together, each knowing only the first
    const rest = Array.from({ length: n - 1 }, (_, i) => `n${i + 2}`)
    await Promise.all(rest.map(async name => await c.add(name, { env: { GRID_TEST_LOG_LEVEL: 'warn' } })))
    const lastStarted = Date.now()
    await waitFor('every node to see all alive', async () => {
      for (const node of c.nodes) {
        const s = await node.states()
        if (Object.values(s).filter(x => x === 'alive').length !== n) return false
      }
      return true
    }, { timeoutMs: 180_000, intervalMs: 200 })
    const convergeMs = Date.now() - lastStarted
    const formed = await suspicions(c)

    // idle cost, once the nodes have settled: a node's first minute has DHT rendezvous every interval
    await sleep(Math.max(3_000, SETTLE_MS - (Date.now() - lastStarted)))
    const pids = c.nodes.map(x => x.pid)
    const cpu0 = pids.map(cpuSeconds)
    const io0 = pids.map(wchar)
    await sleep(IDLE_MS)
    const cpu1 = pids.map(cpuSeconds)
    const io1 = pids.map(wchar)
    const cpuPct = median(pids.map((_, i) => 100 * ((cpu1[i] as number) - (cpu0[i] as number)) / (IDLE_MS / 1000)))
    const rssMB = median(pids.map(p => rssBytes(p) / 1048576))
    // the helper process that forks tasks (a bare Node process) is part of a node's footprint too
    const spawners = pids.map(p => childPid(p, /spawnerMain/)).filter((p): p is number => p !== null)
    const spawnerMB = spawners.length === 0 ? NaN : median(spawners.map(p => rssBytes(p) / 1048576))
    const bytesPerSec = median(pids.map((_, i) => ((io1[i] as number) - (io0[i] as number)) / (IDLE_MS / 1000)))

    const victim = c.nodes[c.nodes.length - 1] as Gridd
    let t0 = Date.now()
    victim.signal('SIGKILL')
    const killMs = await allSee(c, victim.name, ['dead'], t0)
    await victim.waitExit()

    const frozen = c.nodes[c.nodes.length - 2] as Gridd
    t0 = Date.now()
    frozen.signal('SIGSTOP')
    const stopSuspectMs = await allSee(c, frozen.name, ['suspect', 'dead'], t0)
    const stopDeadMs = await allSee(c, frozen.name, ['dead'], t0)
    frozen.signal('SIGCONT')
    return { n, convergeMs, suspectedLocal: formed.local, suspectedNotice: formed.notice, killMs, stopSuspectMs, stopDeadMs, cpuPct, rssMB, spawnerMB, bytesPerSec }
  } finally {
    await c.destroy()
  }
}

const rows: Row[] = []
for (const n of SIZES) {
  console.error(`membership: ${n} daemons...`)
  rows.push(await run(n))
}
table(`Membership: N daemons on one 2-core machine (${DAEMON === 'bundle' ? 'bundled daemon, dist/bundle/gridd.mjs' : 'tsc build, dist/daemon/gridd.js'})`, ['N', 'full view after last start (ms)', 'suspicions until then, local / from notices (all nodes)', 'kill -9 noticed by all (ms)', 'SIGSTOP suspected by all (ms)', 'SIGSTOP dead on all (ms)', 'idle CPU per daemon, settled (%)', 'RSS per daemon (MB)', 'RSS of its spawner (MB)', 'bytes/s written per daemon'],
  rows.map(r => [String(r.n), r.convergeMs, `${r.suspectedLocal} / ${r.suspectedNotice}`, r.killMs, r.stopSuspectMs, r.stopDeadMs, r.cpuPct, r.rssMB, r.spawnerMB, fmt(r.bytesPerSec, 0)]))
process.exit(0)
