/**
 * bench/restart: a whole cluster killed (kill -9) and started again in random order, as the fault harness's
 * cluster-restart does (issue 13: whole again within 15 s), on 127.0.0.1 without namespaces.
 *
 * - each daemon's start-up: ms from its exec until its control socket answers;
 * - the last socket: ms from the restart until the slowest daemon answers;
 * - whole again: ms from the restart until every node sees every node alive, and that less the last socket (what the
 *   mesh and membership take once every daemon runs).
 *
 *   npm run bench -- restart [--sizes 5,8] [--rounds 2] [--seed 1] [--daemon dist|bundle] [--keep]
 *
 * --keep leaves the data directories and logs (info level) and prints where.
 *
 * GRID_TEST_GRIDD runs another build's daemon (A/B runs against a base); --daemon bundle runs dist/bundle/gridd.mjs
 * (what gridctl deploy installs).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Cluster, freePort, type Gridd } from '../tests/helpers/cluster.ts'
import { ROOT } from '../tests/helpers/paths.ts'
import { median, sleep, table, waitFor } from './lib.ts'

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '5,8' }, rounds: { type: 'string', default: '2' }, seed: { type: 'string', default: '1' }, daemon: { type: 'string', default: 'dist' }, keep: { type: 'boolean', default: false } } })
const SIZES = (values.sizes ?? '5,8').split(',').map(Number)
const ROUNDS = Number(values.rounds ?? '2')
let seed = Number(values.seed ?? '1')
if (values.daemon === 'bundle') {
  const bundle = join(ROOT, 'dist/bundle/gridd.mjs')
  if (!existsSync(bundle)) execFileSync(process.execPath, [join(ROOT, 'deploy/bundle.mjs')], { cwd: ROOT, stdio: 'inherit' })
  process.env.GRID_TEST_GRIDD = bundle
} else if (values.daemon !== 'dist') {
  console.error(`--daemon must be dist or bundle, not ${values.daemon}`)
  process.exit(2)
}
process.env.GRID_TEST_LOG_LEVEL = values.keep === true ? 'info' : 'warn'

/** A seeded generator (mulberry32), so base and new builds restart in the same orders. */
function random (): number {
  seed = (seed + 0x6D2B79F5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

function load (): string { return readFileSync('/proc/loadavg', 'utf8').split(' ')[0] as string }

async function allAlive (c: Cluster, n: number): Promise<void> {
  await waitFor('every node to see every node alive', async () => {
    for (const node of c.nodes) {
      try {
        const s = await node.states()
        if (Object.values(s).filter(x => x === 'alive').length !== n) return false
      } catch { return false }
    }
    return true
  }, { timeoutMs: 180_000, intervalMs: 200 })
}

interface Row { n: number, round: number, load: string, startMedianMs: number, startMaxMs: number, lastSocketMs: number, wholeMs: number }

async function run (n: number): Promise<Row[]> {
  const c = new Cluster()
  const rows: Row[] = []
  try {
    const ports = await Promise.all(Array.from({ length: n }, async () => await freePort()))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i] as number}`]
    const first = await c.add('n1', { args: listen(0) })
    const boot = `/ip4/127.0.0.1/tcp/${ports[0] as number}/p2p/${first.id}`
    await Promise.all(Array.from({ length: n - 1 }, async (_, i) => await c.add(`n${i + 2}`, { args: listen(i + 1), bootstrap: [boot] })))
    await allAlive(c, n)
    for (let round = 1; round <= ROUNDS; round++) {
      await Promise.all(c.nodes.map(async x => { await x.kill() }))
      await sleep(1_000)
      const order = [...c.nodes].sort(() => random() - 0.5)
      const offsets = order.map(() => Math.round(random() * 500))
      const l = load()
      const t0 = Date.now()
      const startMs = new Map<Gridd, number>()
      let at = 0
      const starting = order.map(async (x, i) => {
        at += offsets[i] as number
        await sleep(at)
        const s = Date.now()
        await x.start()
        startMs.set(x, Date.now() - s)
        return Date.now() - t0
      })
      const socketAt = await Promise.all(starting)
      await allAlive(c, n)
      const wholeMs = Date.now() - t0
      const starts = [...startMs.values()]
      rows.push({ n, round, load: l, startMedianMs: median(starts), startMaxMs: Math.max(...starts), lastSocketMs: Math.max(...socketAt), wholeMs })
      await sleep(5_000)
    }
  } finally {
    await c.destroy({ keep: values.keep === true })
    if (values.keep === true) console.error(`restart: logs and data kept in ${c.root}`)
  }
  return rows
}

const rows: Row[] = []
for (const n of SIZES) {
  console.error(`restart: ${n} daemons, ${ROUNDS} rounds...`)
  rows.push(...await run(n))
}
table(`Whole-cluster restart, random order (${process.env.GRID_TEST_GRIDD ?? 'tsc build, dist/daemon/gridd.js'})`,
  ['N', 'round', 'load', 'start-up p50 (ms)', 'start-up max (ms)', 'last socket after restart (ms)', 'whole again after restart (ms)', 'whole after the last socket (ms)'],
  rows.map(r => [String(r.n), String(r.round), r.load, r.startMedianMs, r.startMaxMs, r.lastSocketMs, r.wholeMs, r.wholeMs - r.lastSocketMs]))
process.exit(0)
