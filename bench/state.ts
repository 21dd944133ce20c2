/**
 * bench/state: the replicated state.
 *
 * - visibility: a session written on one node, until every node of N shows it (p50, p99), N = 5, 10, 20;
 * - catch-up: a node down while 10,000 writes happen elsewhere, then restarted: time and bytes until it has them;
 * - churn: 1,000,000 writes over 10,000 keys into the state store (in one process, the daemon's own code):
 *   document bytes against the live data, and the process's RSS.
 *
 *   npm run bench -- state [--sizes 5,10,20] [--writes 200] [--catchup 10000] [--churn 1000000]
 */
import { EventEmitter } from 'node:events'
import { Agent } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import type { Mesh } from '../src/mesh/index.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Ed25519RecordSigner, StateStore } from '../src/state/index.ts'
import { metricValue } from '../tests/helpers/rogue.ts'
import { type Gridd, call, fmt, median, percentile, reportResets, rssBytes, startCluster, table, waitFor } from './lib.ts'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '5,10,20' },
    writes: { type: 'string', default: '200' },
    catchup: { type: 'string', default: '10000' },
    churn: { type: 'string', default: '1000000' }
  }
})
const SIZES = (values.sizes ?? '').split(',').filter(s => s !== '').map(Number)
const WRITES = Number(values.writes)
const CATCHUP = Number(values.catchup)
const CHURN = Number(values.churn)

/** A keep-alive client of one daemon's control socket. */
function client (socket: string): { put: (id: string, value: unknown) => Promise<void>, has: (id: string) => Promise<boolean>, text: (path: string) => Promise<string> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  return {
    put: async (id, value) => { const r = await call(agent, socket, 'PUT', `/sessions/${id}`, { value }); if (r.status !== 200) throw new Error(r.text) },
    has: async id => (await call(agent, socket, 'GET', `/sessions/${id}`)).status === 200,
    text: async path => (await call(agent, socket, 'GET', path)).text
  }
}

async function visibility (n: number): Promise<{ p50: number, p99: number }> {
  const c = await startCluster(n)
  try {
    await c.converged({ timeoutMs: 180_000 })
    const clients = c.nodes.map(x => client(x.socket))
    const lat: number[] = []
    for (let i = 0; i < WRITES; i++) {
      const id = `vis-${n}-${i}`
      const writer = clients[i % n] as ReturnType<typeof client>
      const t0 = performance.now()
      await writer.put(id, { i })
      const pending = new Set(clients.map((_, j) => j))
      while (pending.size > 0) {
        await Promise.all([...pending].map(async j => { if (await (clients[j] as ReturnType<typeof client>).has(id)) pending.delete(j) }))
      }
      lat.push(performance.now() - t0)
    }
    return { p50: median(lat), p99: percentile(lat, 99) }
  } finally {
    await c.destroy()
  }
}

async function catchUp (): Promise<{ seconds: number, syncBytes: number, writes: number }> {
  const c = await startCluster(3)
  try {
    await c.converged()
    const [n1, , n3] = c.nodes as [Gridd, Gridd, Gridd]
    await n3.kill()
    const w = client(n1.socket)
    for (let i = 0; i < CATCHUP; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, CATCHUP - i) }, async (_, j) => { await w.put(`cu-${i + j}`, { i: i + j, payload: 'x'.repeat(64) }) }))
    }
    await n3.start()
    const t0 = Date.now()
    const r = client(n3.socket)
    await waitFor('the restarted node to hold every write', async () => await r.has(`cu-${CATCHUP - 1}`) && (JSON.parse(await r.text('/stats')) as { sessions: number }).sessions >= CATCHUP, { timeoutMs: 120_000, intervalMs: 20 })
    const seconds = (Date.now() - t0) / 1000
    const metrics = await r.text('/metrics')
    return { seconds, syncBytes: metricValue(metrics, 'grid_state_sync_received_bytes_total'), writes: CATCHUP }
  } finally {
    await c.destroy()
  }
}

function loneMesh (id: string): Mesh {
  const e = new EventEmitter() as unknown as Mesh
  Object.assign(e, { peerId: id, subscribe: () => {}, publish: async () => {}, connections: () => [], rpc: { handle: () => {}, onNotify: () => {} } })
  return e
}

async function churn (): Promise<{ writes: number, keys: number, docBytes: number, liveBytes: number, rssMB: number, seconds: number, generations: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'grid-churn-'))
  // a real identity: every flushed batch is signed with it, as in the daemon
  const key = await generateKeyPair('Ed25519')
  const registry = new Registry()
  const s = new StateStore({ mesh: loneMesh(peerIdFromPrivateKey(key).toString()), logger: pino({ level: 'silent' }), registry, signer: new Ed25519RecordSigner(key) }, { cluster: 'grid', dataDir: dir })
  try {
    s.load()
    await s.start()
    const keys = 10_000
    const t0 = performance.now()
    for (let i = 0; i < CHURN; i++) {
      s.set('sessions', `session-${i % keys}`, { owner: '12D3KooWowner', step: i, model: 'llama-3-8b', tokens: 4096 })
      if (i % 20_000 === 19_999) { await s.flush(); await s.maintain() }
    }
    await s.flush()
    await s.maintain()
    const seconds = (performance.now() - t0) / 1000
    const live = [...s.entries('sessions').values()].reduce((n, e) => n + Buffer.byteLength(JSON.stringify({ k: e.key, v: e.value, h: e.stamp })), 0)
    const docBytes = s.ownDocumentBytes()
    const rssMB = rssBytes(process.pid) / 1048576
    return { writes: CHURN, keys, docBytes, liveBytes: live, rssMB, seconds, generations: (await registry.getSingleMetric('grid_state_regenerations_total')?.get())?.values[0]?.value ?? 0 }
  } finally {
    await s.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

const vis: Array<[number, { p50: number, p99: number }]> = []
for (const n of SIZES) {
  console.error(`state: visibility on ${n} nodes...`)
  vis.push([n, await visibility(n)])
}
console.error('state: catch-up...')
const cu = CATCHUP > 0 ? await catchUp() : undefined
console.error('state: churn...')
const ch = CHURN > 0 ? await churn() : undefined

table(`State: a session write, until visible on every node (${WRITES} writes, sequential)`, ['N', 'p50 (ms)', 'p99 (ms)'], vis.map(([n, v]) => [String(n), v.p50, v.p99]))
if (cu !== undefined) table('State: catch-up of a node that missed writes (down while they happened, then restarted)', ['writes missed', 'until it has them all (s)', 'bytes received by catch-up'], [[String(cu.writes), cu.seconds, fmt(cu.syncBytes, 0)]])
if (ch !== undefined) table('State: churn in one store (the daemon\'s code, one process)', ['writes', 'keys', 'document bytes', 'live data bytes', 'document / live', 'RSS (MB)', 'writes/s', 'generations'], [[String(ch.writes), String(ch.keys), fmt(ch.docBytes, 0), fmt(ch.liveBytes, 0), ch.docBytes / ch.liveBytes, ch.rssMB, fmt(ch.writes / ch.seconds, 0), String(ch.generations)]])
reportResets()
process.exit(0)
