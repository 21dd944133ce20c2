/**
 * The state store against forged and oversized state (issue 17): records signed by their writer and verified by
 * every node however they travel, stamps from the future refused, forgets honoured only from members about nodes
 * not seen alive, catch-up of a document bigger than an RPC frame in bounded answers, one catch-up at a time per
 * peer, and task records capped per writer. Stores are wired through the in-memory network of state-net.ts.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { RPC_MAX_FRAME_BYTES, STATE_SYNC_CHUNK_BYTES, StatePush, encode, type StateUpdate, type SyncResponse } from '../../proto/index.ts'
import type { MemberState, NodeId } from '../../src/interface/index.ts'
import { STAMP_MAX_AHEAD_MS, StateStore, type RecordSigner } from '../../src/state/index.ts'
import { RecordRetention } from '../../src/tasks/retention.ts'
import { waitFor } from '../helpers/cluster.ts'
import { StubNet, type Handler } from '../helpers/state-net.ts'
import { keySigner, stubSigner } from '../helpers/state-signer.ts'

const dirs: string[] = []
const stores: StateStore[] = []
afterEach(async () => {
  for (const s of stores.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function node (net: StubNet, id: NodeId, opts: { signer?: RecordSigner, dataDir?: string } = {}): { store: StateStore, registry: Registry, dataDir: string } {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'grid-state-security-'))
  if (opts.dataDir === undefined) dirs.push(dataDir)
  const registry = new Registry()
  const store = new StateStore({ mesh: net.meshes.get(id) ?? net.mesh(id), logger: pino({ level: 'silent' }), registry, signer: opts.signer ?? stubSigner() }, { cluster: 'grid', dataDir, antiEntropyIntervalMs: 60_000 })
  store.load()
  stores.push(store)
  return { store, registry, dataDir }
}

async function rejected (registry: Registry, reason: string): Promise<number> {
  const m = await registry.getSingleMetric('grid_state_updates_rejected_total')?.get()
  return m?.values.find(v => v.labels.reason === reason)?.value ?? 0
}

/** One entry of some writer's document, as a Yjs update. */
function entryUpdate (collection: string, key: string, value: unknown, stampMs = Date.now()): Uint8Array {
  const d = new Y.Doc()
  d.getMap(collection).set(key, { value, stamp: [stampMs, 0] })
  return Y.encodeStateAsUpdate(d)
}

const signed = (signer: RecordSigner, w: NodeId, n: number, u: Uint8Array, g = 0): StateUpdate => ({ w, g, n, u, s: signer.sign(w, g, n, u) })

describe('state - signed records', () => {
  it('verifies an Ed25519 signature against the writer\'s peer id, and refuses another writer\'s or altered bytes', async () => {
    const a = await keySigner()
    const b = await keySigner()
    const u = entryUpdate('registry', a.id, { name: 'a' })
    const rec = { w: a.id, g: 3, n: 7, u, s: a.signer.sign(a.id, 3, 7, u) }
    expect(b.signer.verify(rec)).toBe(true)
    // the same signature claimed for another writer, generation, sequence number or bytes
    expect(b.signer.verify({ ...rec, w: b.id })).toBe(false)
    expect(b.signer.verify({ ...rec, g: 4 })).toBe(false)
    expect(b.signer.verify({ ...rec, n: 8 })).toBe(false)
    expect(b.signer.verify({ ...rec, u: entryUpdate('registry', a.id, { name: 'evil' }) })).toBe(false)
    expect(b.signer.verify({ ...rec, w: 'not-a-peer-id' })).toBe(false)
  })

  it('takes another writer\'s records relayed by catch-up, and refuses a relayed record its writer did not sign', async () => {
    const net = new StubNet()
    const [ka, kb, kc] = [await keySigner(), await keySigner(), await keySigner()]
    const a = node(net, ka.id, { signer: ka.signer }).store
    const b = node(net, kb.id, { signer: kb.signer })
    const c = node(net, kc.id, { signer: kc.signer }).store
    a.set('sessions', 'from-a', 1)
    net.connect(ka.id, kc.id)
    await c.syncFrom(ka.id)
    // c relays a's signed record to b, which never talked to a
    net.connect(kb.id, kc.id)
    await b.store.syncFrom(kc.id)
    expect(b.store.lookup('sessions', 'from-a')).toMatchObject({ value: 1, writer: ka.id })
    // a peer answering catch-up with a registry entry "by a" that a never signed
    const rogue = net.mesh('rogue')
    net.connect(kb.id, 'rogue')
    const forged = { w: ka.id, g: a.stats().ownGeneration, n: 1, u: entryUpdate('registry', ka.id, { name: 'a', capabilities: ['cuda'] }), s: new Uint8Array(64) }
    rogue.handlers.set('state.sync', () => ({ updates: [forged], gens: {}, more: false }) satisfies SyncResponse)
    await b.store.syncFrom('rogue')
    expect(b.store.entryOf(ka.id, 'registry', ka.id)).toBeUndefined()
    expect(await rejected(b.registry, 'bad-signature')).toBe(1)
  })

  it('serves after a restart the records it relayed before, still signed by their writer', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b')
    a.set('sessions', 'kept', 'yes')
    net.connect('node-a', 'node-b')
    await b.store.syncFrom('node-a')
    await b.store.stop()
    stores.splice(stores.indexOf(b.store), 1)
    net.meshes.delete('node-b')
    const again = node(net, 'node-b', { dataDir: b.dataDir }).store
    const c = node(net, 'node-c')
    net.connect('node-b', 'node-c')
    await c.store.syncFrom('node-b')
    expect(c.store.lookup('sessions', 'kept')).toMatchObject({ value: 'yes', writer: 'node-a' })
    expect(await rejected(c.registry, 'bad-signature') + await rejected(c.registry, 'unsigned')).toBe(0)
    expect(again.writers().sort()).toEqual(['node-a', 'node-b'])
  })
})

describe('state - restarts', () => {
  it('starts a new generation after a crash, so a record number lost on disk is never signed again for other bytes', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a')
    const b = node(net, 'node-b').store
    a.store.set('sessions', 'before', 1)
    await a.store.flush()
    // the disk as a machine crash would leave it: what was logged so far, nothing after
    const crashed = mkdtempSync(join(tmpdir(), 'grid-state-crash-'))
    dirs.push(crashed)
    cpSync(a.dataDir, crashed, { recursive: true })
    a.store.set('sessions', 'lost', 2)
    net.connect('node-a', 'node-b')
    await b.syncFrom('node-a')
    expect(b.lookup('sessions', 'lost')?.value).toBe(2)
    net.meshes.delete('node-a')
    const again = node(net, 'node-a', { dataDir: crashed }).store
    expect(again.lookup('sessions', 'before')?.value).toBe(1)
    again.set('sessions', 'after', 3)
    await b.syncFrom('node-a')
    expect(b.lookup('sessions', 'after')?.value).toBe(3)
    expect(b.lookup('sessions', 'before')?.value).toBe(1)
  })
})

describe('state - stamps from the future', () => {
  it('refuses an entry stamped more than the allowed drift ahead, so a later write still wins and deletes', async () => {
    const net = new StubNet()
    const b = node(net, 'node-b')
    const a = node(net, 'node-a').store
    net.connect('node-a', 'node-b')
    const year = 365 * 24 * 3_600_000
    b.store.set('sessions', 's1', 'honest')
    net.meshes.get('node-b')?.deliver(StatePush, signed(stubSigner(), 'node-a', 0, entryUpdate('sessions', 's1', 'forged', Date.now() + year), a.stats().ownGeneration), 'node-a')
    expect(await rejected(b.registry, 'future-stamp')).toBe(1)
    expect(b.store.lookup('sessions', 's1')?.value).toBe('honest')
    expect(b.store.delete('sessions', 's1')).toBe(true)
    expect(b.store.lookup('sessions', 's1')).toBeUndefined()
    // within the drift: taken
    net.meshes.get('node-b')?.deliver(StatePush, signed(stubSigner(), 'node-a', 0, entryUpdate('sessions', 's2', 'soon', Date.now() + STAMP_MAX_AHEAD_MS / 2), a.stats().ownGeneration), 'node-a')
    expect(b.store.lookup('sessions', 's2')?.value).toBe('soon')
  })
})

describe('state - forgets', () => {
  it('honours a forget only from a registered member, and never about a node seen alive or suspect', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    const c = node(net, 'node-c').store
    const seen = new Map<NodeId, MemberState>([['node-c', 'alive']])
    b.setMembers({ state: id => seen.get(id) })
    net.connect('node-a', 'node-b')
    net.connect('node-b', 'node-c')
    c.set('registry', 'node-c', { name: 'c' })
    await b.syncFrom('node-c')
    // an unregistered writer forgets node-c: ignored
    a.set('forgotten', 'node-c', { at: Date.now(), by: 'node-a' })
    await b.syncFrom('node-a')
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(b.writers()).toContain('node-c')
    // registered now, but node-c is alive here: ignored
    a.set('registry', 'node-a', { name: 'a' })
    a.set('forgotten', 'node-c', { at: Date.now(), by: 'node-a' })
    await b.syncFrom('node-a')
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(b.writers()).toContain('node-c')
    // node-c dies: the forget counts
    seen.set('node-c', 'dead')
    a.set('forgotten', 'node-c', { at: Date.now(), by: 'node-a' })
    await b.syncFrom('node-a')
    await waitFor('node-b to drop node-c', () => !b.writers().includes('node-c'), { timeoutMs: 2_000, intervalMs: 5 })
  })
})

describe('state - catch-up of big documents', () => {
  it('catches up a document larger than an RPC frame in answers of bounded size', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a')
    const b = node(net, 'node-b')
    const value = 'x'.repeat(60_000)
    for (let i = 0; i < 300; i++) a.store.set('sessions', `s-${i}`, { i, value })
    await a.store.flush()
    expect(a.store.ownDocumentBytes()).toBeGreaterThan(RPC_MAX_FRAME_BYTES)
    const mesh = net.meshes.get('node-a')
    const serve = mesh?.handlers.get('state.sync') as Handler
    const sizes: number[] = []
    mesh?.handlers.set('state.sync', async (req, ctx) => {
      const res = await serve(req, ctx)
      sizes.push(encode(res).byteLength)
      return res
    })
    net.connect('node-a', 'node-b')
    await b.store.syncFrom('node-a')
    expect(b.store.entries('sessions').size).toBe(300)
    expect(sizes.length).toBeGreaterThan(1)
    for (const n of sizes) expect(n).toBeLessThan(STATE_SYNC_CHUNK_BYTES + 1024 * 1024)
  })

  it('answers one catch-up at a time per peer: another from the same peer meanwhile is busy', async () => {
    const net = new StubNet()
    node(net, 'node-a').store.set('sessions', 'k', 1)
    const serve = net.meshes.get('node-a')?.handlers.get('state.sync') as Handler
    const results = await Promise.allSettled([serve({ docs: {} }, { peer: 'node-x' }), serve({ docs: {} }, { peer: 'node-x' }), serve({ docs: {} }, { peer: 'node-y' })])
    expect(results.map(r => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'BUSY', details: { busy: true } })
    // the same request again at once: busy too (it has the answer), saying when to ask again
    await expect(serve({ docs: {} }, { peer: 'node-y' })).rejects.toMatchObject({ code: 'BUSY', details: { busy: true, retryAfterMs: expect.any(Number) } })
  })

  it('waits out a busy answer and completes its catch-up', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b')
    for (let i = 0; i < 3; i++) a.set('sessions', `k${i}`, i)
    const mesh = net.meshes.get('node-a')
    const serve = mesh?.handlers.get('state.sync') as Handler
    let calls = 0
    mesh?.handlers.set('state.sync', async (req, ctx) => {
      // the first answer is busy, as when another request from this peer is being answered
      if (calls++ === 0) { await Promise.allSettled([serve(req, ctx), serve(req, ctx)]) }
      return await serve(req, ctx)
    })
    net.connect('node-a', 'node-b')
    await b.store.syncFrom('node-a')
    expect(b.store.entries('sessions').size).toBe(3)
    const m = await b.registry.getSingleMetric('grid_state_syncs_total')?.get()
    expect(m?.values.find(v => v.labels.outcome === 'ok')?.value).toBe(1)
  })
})

describe('task records - cap per writer', () => {
  it('lets the oldest finished records go past maxRecords, and keeps the unfinished', () => {
    const r = new RecordRetention(3_600_000, 3)
    const finished = (at: number): unknown => ({ exec: { attempt: 1, node: 'n', nodeName: 'n', status: 'completed', queuedAt: at, finishedAt: at } })
    const round = (now: number): string[] => {
      const out: string[] = []
      for (let i = 0; i < 5; i++) if (r.collectable(`t${i}`, finished(1000 + i), now)) out.push(`t${i}`)
      if (r.collectable('running', { exec: { attempt: 1, node: 'n', nodeName: 'n', status: 'running', queuedAt: 1 } }, now)) out.push('running')
      return out
    }
    expect(round(2000)).toEqual([])
    // the next round knows there were five: the two oldest go
    expect(round(2001)).toEqual(['t0', 't1'])
  })
})
