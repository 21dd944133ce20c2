/**
 * Forged state from a member that holds the swarm key (issue 17, items 2 and 3): a rogue relays a registry entry for
 * n2 that n2 never signed, writes a session stamped a year ahead and a forget of a live node stamped ten years
 * ahead, and the cluster stays correct; a writer that never registered can be forgotten; and a fresh node catches up
 * a writer's document bigger than one RPC frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { NodeEntry, SessionEntry } from '../../proto/index.ts'
import { Cluster, waitFor } from '../helpers/cluster.ts'
import { fetchMetrics, metricValue } from '../helpers/metrics.ts'
import { Rogue } from '../helpers/rogue.ts'

const YEAR_MS = 365 * 24 * 3_600_000

function session (value: unknown): Record<string, unknown> {
  return { value, owner: null, createdAt: Date.now(), updatedAt: Date.now(), ttlMs: null }
}

function facts (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, addrs: [], region: 'default', labels: {}, capabilities: [], gpus: [], version: 'x', drain: false, joinedAt: Date.now(), updatedAt: Date.now(), ...extra }
}

describe('forged state from a member with the key', () => {
  let c: Cluster
  let rogue: Rogue
  const rejected = async (node: string, reason: string): Promise<number> => metricValue(await fetchMetrics(c.node(node).socket), 'grid_state_updates_rejected_total', { reason })
  const sessionOn = async (node: string, id: string): Promise<SessionEntry | undefined> => (await c.node(node).api.get<SessionEntry[]>('/sessions')).find(s => s.id === id)

  beforeAll(async () => {
    c = await Cluster.start(2)
    await c.converged()
    rogue = await Rogue.start(c.swarmKey)
    const n2 = c.node('n2').id
    // every catch-up from the rogue gets n2's registry entry with CUDA and a fake GPU, in a generation n2 never
    // reached, signed with the rogue's key
    const forged = rogue.signed(Rogue.entryUpdate('registry', n2, facts('n2', {
      capabilities: ['cuda'],
      gpus: [{ index: 0, uuid: 'GPU-fake', name: 'Fake H100', memoryTotalMiB: 81_920 }]
    })), { w: n2, g: Date.now() + YEAR_MS, n: 0 })
    await rogue.answerRpc('state.sync', { updates: [forged], gens: {}, more: false })
    await rogue.connect(c.node('n1').addrs[0] as string)
  })
  afterAll(async () => { await rogue?.stop(); await c?.destroy() })

  it('refuses a registry entry for n2 that catch-up relays but n2 never signed, so --require cuda goes nowhere', async () => {
    await waitFor('n1 to refuse the forged registry entry', async () => await rejected('n1', 'bad-signature') >= 1, { timeoutMs: 60_000 })
    const n2 = (await c.node('n1').nodes()).find(n => n.name === 'n2') as NodeEntry
    expect(n2.state).toBe('alive')
    expect(n2.capabilities).not.toContain('cuda')
    expect(n2.gpus).toEqual([])
    // n2's own document still replicates (the forged generation did not replace it)
    await c.node('n2').api.put('/sessions/after-forgery', { value: 'from n2' })
    await waitFor('n1 to read n2\'s session', async () => (await sessionOn('n1', 'after-forgery'))?.value === 'from n2')
    const run = await c.node('n1').ctl(['run', '--require', 'cuda', '--', 'true'], { timeoutMs: 30_000 })
    expect(run.code).not.toBe(0)
    expect(run.stderr).toMatch(/cuda/)
  })

  it('refuses a session stamped a year ahead, so it can still be overwritten and deleted', async () => {
    await rogue.pushOwnEntry(c.node('n1').id, 'sessions', 'future', session('forged'), { stampMs: Date.now() + YEAR_MS })
    await waitFor('n1 to refuse the stamp from the future', async () => await rejected('n1', 'future-stamp') >= 1)
    expect(await sessionOn('n1', 'future')).toBeUndefined()
    await c.node('n2').api.put('/sessions/future', { value: 'honest' })
    for (const n of ['n1', 'n2']) await waitFor(`${n} to read the honest write`, async () => (await sessionOn(n, 'future'))?.value === 'honest')
    await c.node('n1').api.delete('/sessions/future')
    for (const n of ['n1', 'n2']) await waitFor(`${n} to see it deleted`, async () => await sessionOn(n, 'future') === undefined)
  })

  it('forgets a writer that never registered, by its peer id', async () => {
    await rogue.pushOwnEntry(c.node('n1').id, 'sessions', 'rogue-session', session('from the rogue'))
    for (const n of ['n1', 'n2']) await waitFor(`${n} to read the rogue's session`, async () => (await sessionOn(n, 'rogue-session')) !== undefined)
    const r = await c.node('n1').ctl(['nodes', 'forget', rogue.id, '-o', 'json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ id: rogue.id, forgotten: true })
    for (const n of ['n1', 'n2']) await waitFor(`${n} to drop the rogue's documents`, async () => await sessionOn(n, 'rogue-session') === undefined)
  })

  it('ignores a forget of a live node, stamped ten years ahead or now, even from a registered rogue', async () => {
    const n1 = c.node('n1').id
    const n2 = c.node('n2').id
    await rogue.pushOwnEntry(n1, 'registry', rogue.id, facts('rogue'))
    const before = await rejected('n1', 'future-stamp')
    await rogue.pushOwnEntry(n1, 'forgotten', n2, { at: Date.now(), by: rogue.id }, { stampMs: Date.now() + 10 * YEAR_MS })
    await waitFor('n1 to refuse the forget from the future', async () => await rejected('n1', 'future-stamp') > before)
    await rogue.pushOwnEntry(n1, 'forgotten', n2, { at: Date.now(), by: rogue.id })
    await c.node('n2').api.put('/sessions/n2-still-here', { value: 'yes' })
    await waitFor('n1 to read n2\'s new session', async () => (await sessionOn('n1', 'n2-still-here'))?.value === 'yes')
    for (const n of ['n1', 'n2']) {
      const entry = (await c.node(n).nodes()).find(x => x.name === 'n2')
      expect(entry?.state).toBe('alive')
      expect(c.node(n).logEvents().some(e => e.msg === 'dropped a forgotten node\'s documents' && e.writer === n2)).toBe(false)
    }
    expect((await sessionOn('n1', 'after-forgery'))?.value).toBe('from n2')
  })
})

/** Size of the document a fresh node catches up: over one RPC frame (16 MiB) by default; GRID_TEST_BIG_DOC_MIB=100 for the full case. */
const BIG_DOC_MIB = Number(process.env.GRID_TEST_BIG_DOC_MIB ?? 24)

describe('catch-up of a document bigger than an RPC frame', () => {
  let c: Cluster
  afterAll(async () => { await c?.destroy() })

  it(`gives a fresh node every session of a ${BIG_DOC_MIB} MiB document`, async () => {
    c = await Cluster.start(1, { env: () => ({ GRID_SESSIONS_MAX_BYTES: '1GiB' }) })
    const n1 = c.node('n1')
    const value = 'x'.repeat(60_000)
    const count = Math.ceil(BIG_DOC_MIB * 1024 * 1024 / 60_000)
    for (let i = 0; i < count; i += 8) {
      await Promise.all(Array.from({ length: Math.min(8, count - i) }, async (_, j) => await n1.api.put(`/sessions/big-${i + j}`, { value: `${i + j}:${value}` })))
    }
    const entries = async (name: string): Promise<number> => metricValue(await fetchMetrics(c.node(name).socket), 'grid_state_entries', { collection: 'sessions' })
    expect(await entries('n1')).toBe(count)
    const t0 = Date.now()
    await c.add('n2')
    await waitFor(`n2 to hold all ${count} sessions`, async () => {
      const n = await entries('n2')
      if (n === count) return true
      throw new Error(`n2 holds ${n} of ${count}`)
    }, { timeoutMs: 240_000, intervalMs: 500 })
    console.log(`catch-up of ${count} sessions (${BIG_DOC_MIB} MiB) by a fresh node: ${((Date.now() - t0) / 1000).toFixed(1)} s from its start`)
    const t = await fetchMetrics(c.node('n2').socket)
    expect(metricValue(t, 'grid_state_syncs_total', { outcome: 'TOO_LARGE' })).toBe(0)
    expect((await c.node('n2').api.get<SessionEntry>('/sessions/big-7')).value).toBe(`7:${value}`)
  }, 600_000)

  it('answers a flood of catch-up requests on one stream mostly busy, and gridctl stays answered', async () => {
    const rogue = await Rogue.start(c.swarmKey)
    try {
      await rogue.connect(c.node('n1').addrs[0] as string)
      const cpu = async (): Promise<number> => metricValue(await fetchMetrics(c.node('n1').socket), 'grid_process_cpu_seconds_total')
      const quiet = Date.now()
      await c.node('n1').ctl(['status'])
      const quietMs = Date.now() - quiet
      const cpu0 = await cpu()
      const t0 = Date.now()
      const [tally, status] = await Promise.all([
        rogue.rpcFlood(c.node('n1').id, 'state.sync', { docs: {} }, 100, 120_000),
        (async () => { await new Promise(resolve => setTimeout(resolve, 200)); const t = Date.now(); const r = await c.node('n1').ctl(['status']); return { code: r.code, ms: Date.now() - t } })()
      ])
      console.log(`100 catch-up requests on one stream: ${JSON.stringify(tally)} in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${(await cpu() - cpu0).toFixed(2)} CPU-s on n1; gridctl status meanwhile: ${status.ms} ms (${quietMs} ms before)`)
      expect(status.code).toBe(0)
      expect(tally.BUSY ?? 0).toBeGreaterThanOrEqual(90)
      expect(tally.result ?? 0).toBeGreaterThanOrEqual(1)
    } finally {
      await rogue.stop()
    }
  }, 300_000)
})
