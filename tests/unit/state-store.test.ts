/**
 * The state store with stub components and no network: nodes wired through an in-memory RPC (requests answered by
 * the other node's handler, notifications delivered on the next turn of the event loop), so catch-up, pushes,
 * merged reads and collection are exercised in milliseconds. Tests assert what users rely on (what a node reads),
 * plus the metrics operators watch.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { STATE_BATCH_MAX_BYTES, STATE_ENTRY_MAX_BYTES, StatePush, type StateUpdate, type SyncResponse } from '../../proto/index.ts'
import type { NodeId } from '../../src/interface/index.ts'
import { StateStore, type StateInit } from '../../src/state/index.ts'
import { waitFor } from '../helpers/cluster.ts'
import { StubNet, type Handler, type StubMesh } from '../helpers/state-net.ts'
import { stubSigner } from '../helpers/state-signer.ts'

const dirs: string[] = []
const stores: StateStore[] = []

afterEach(async () => {
  for (const s of stores.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

interface Node { store: StateStore, mesh: StubMesh, registry: Registry }

function node (net: StubNet, id: NodeId, init: Partial<StateInit> = {}): Node {
  const dataDir = mkdtempSync(join(tmpdir(), 'grid-state-store-'))
  dirs.push(dataDir)
  const mesh = net.mesh(id)
  const registry = new Registry()
  const store = new StateStore({ mesh, logger: pino({ level: 'silent' }), registry, signer: stubSigner() }, { cluster: 'grid', dataDir, ...init })
  store.load()
  stores.push(store)
  return { store, mesh, registry }
}

async function counter (registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get()
  const v = metric?.values.find(x => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v?.value ?? 0
}

/** A Yjs update that writes one plain entry into a collection, as some writer's document would. */
function entryUpdate (collection: string, key: string, value: unknown): Uint8Array {
  const d = new Y.Doc()
  d.getMap(collection).set(key, { value, stamp: [Date.now(), 0] })
  return Y.encodeStateAsUpdate(d)
}

describe('state store - catch-up', () => {
  it('gives each of two nodes what the other wrote while they were apart', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    a.set('sessions', 's-a', { from: 'a' })
    b.set('sessions', 's-b', { from: 'b' })
    b.set('tasks', 't-1', { status: 'running' })
    net.connect('node-a', 'node-b')
    await b.syncFrom('node-a')
    await a.syncFrom('node-b')
    for (const s of [a, b]) {
      expect(s.lookup('sessions', 's-a')?.value).toEqual({ from: 'a' })
      expect(s.lookup('sessions', 's-b')?.value).toEqual({ from: 'b' })
      expect(s.lookup('tasks', 't-1')?.writer).toBe('node-b')
      expect(s.writers().sort()).toEqual(['node-a', 'node-b'])
    }
  })

  it('catches up with a peer as soon as it connects', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    await a.start()
    await b.start()
    for (let i = 0; i < 50; i++) a.set('sessions', `s-${i}`, { i })
    await a.flush()
    expect(b.lookup('sessions', 's-0')).toBeUndefined()
    net.connect('node-a', 'node-b')
    await waitFor('node-b to hold every session node-a wrote', () => b.entries('sessions').size === 50, { timeoutMs: 5_000, intervalMs: 10 })
  })

  it('answers a peer in bounded parts and says when there is more', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a')
    const b = node(net, 'node-b').store
    const blob = 'x'.repeat(2048)
    a.store.set('sessions', 'big-a', blob)
    b.set('sessions', 'big-b', blob)
    net.connect('node-a', 'node-b')
    await a.store.syncFrom('node-b')
    const serve = a.mesh.handlers.get('state.sync') as Handler
    const first = await serve({ docs: {}, maxBytes: 1024 }, { peer: 'node-c' }) as SyncResponse
    expect(first.updates).toHaveLength(1)
    expect(first.more).toBe(true)
    expect(Object.keys(first.gens).sort()).toEqual(['node-a', 'node-b'])
    // asking again with what it got: the rest, and no more
    const got = first.updates[0] as SyncResponse['updates'][number]
    const second = await serve({ docs: { [got.w]: { g: got.g, n: (got.n ?? 0) + 1 } }, maxBytes: 1024 }, { peer: 'node-d' }) as SyncResponse
    expect(second.updates.map(u => u.w)).toEqual(['node-a', 'node-b'].filter(w => w !== got.w))
    expect(second.more).toBe(false)
  })
})

describe('state store - replication', () => {
  it('pushes a local write to every connected peer', async () => {
    const net = new StubNet()
    const nodes = ['node-a', 'node-b', 'node-c'].map(id => node(net, id, { antiEntropyIntervalMs: 60_000 }))
    const [a, b, c] = nodes.map(n => n.store) as [StateStore, StateStore, StateStore]
    for (const s of [a, b, c]) await s.start()
    net.connect('node-a', 'node-b')
    net.connect('node-a', 'node-c')
    for (const n of nodes.slice(1)) await waitFor('the catch-up on connection', async () => await counter(n.registry, 'grid_state_syncs_total', { outcome: 'ok' }) > 0, { timeoutMs: 5_000, intervalMs: 10 })
    a.set('sessions', 'pushed', { n: 1 })
    await waitFor('every peer to read the write', () => b.lookup('sessions', 'pushed') !== undefined && c.lookup('sessions', 'pushed') !== undefined, { timeoutMs: 5_000, intervalMs: 5 })
    a.set('sessions', 'pushed', { n: 2 })
    await waitFor('every peer to read the overwrite', () => (b.lookup('sessions', 'pushed')?.value as { n: number }).n === 2 && (c.lookup('sessions', 'pushed')?.value as { n: number }).n === 2, { timeoutMs: 5_000, intervalMs: 5 })
    // one copy per peer per batch, and nothing skipped
    expect(await counter((nodes[0] as Node).registry, 'grid_state_pushes_total', { outcome: 'sent' })).toBe(4)
    expect(await counter((nodes[0] as Node).registry, 'grid_state_pushes_total', { outcome: 'skipped' })).toBe(0)
  })

  it('writes many entries at once (setMany) in updates each under half a batch, and every peer reads them all', async () => {
    const net = new StubNet()
    const nodes = ['node-a', 'node-b'].map(id => node(net, id, { antiEntropyIntervalMs: 60_000 }))
    const [a, b] = nodes.map(n => n.store) as [StateStore, StateStore]
    for (const s of [a, b]) await s.start()
    net.connect('node-a', 'node-b')
    const before = await counter((nodes[0] as Node).registry, 'grid_state_updates_applied_total', { source: 'local' })
    const text = 'x'.repeat(10_000)
    a.setMany('jobs', Array.from({ length: 120 }, (_, i) => [`j1/r/${i}`, { text, i }] as const))
    // 1.2 MB of entries: a few local updates, each under half a batch (26 entries of 10 kB), not one per entry
    const updates = await counter((nodes[0] as Node).registry, 'grid_state_updates_applied_total', { source: 'local' }) - before
    expect(updates).toBe(Math.ceil(120 / Math.floor(STATE_BATCH_MAX_BYTES / 2 / 10_019)))
    await waitFor('the peer to read every entry', () => b.entries('jobs').size === 120, { timeoutMs: 10_000, intervalMs: 10 })
    expect(b.lookup('jobs', 'j1/r/119')?.value).toEqual({ text, i: 119 })
    // a read of the keys it keeps only
    expect([...b.groupAll('jobs', Date.now(), k => k.endsWith('/7')).keys()]).toEqual(['j1/r/7'])
    expect(() => { a.setMany('jobs', [['big', 'y'.repeat(STATE_ENTRY_MAX_BYTES + 1)]]) }).toThrow(/over the state's limit/)
  })

  it('nudges a peer that missed a push, and the peer catches up', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a', { antiEntropyIntervalMs: 60_000 })
    const bNode = node(net, 'node-b', { antiEntropyIntervalMs: 60_000 })
    const b = bNode.store
    await a.store.start()
    await b.start()
    net.connect('node-a', 'node-b')
    // both catch-ups on connection are over: from here on, only a push or a nudge brings node-b new writes
    for (const n of [a, bNode]) await waitFor('the catch-up on connection', async () => await counter(n.registry, 'grid_state_syncs_total', { outcome: 'ok' }) > 0, { timeoutMs: 5_000, intervalMs: 10 })
    a.mesh.full.add('node-b')
    a.store.set('sessions', 'missed', { n: 1 })
    await a.store.flush()
    expect(await counter(a.registry, 'grid_state_pushes_total', { outcome: 'skipped' })).toBeGreaterThan(0)
    a.mesh.full.delete('node-b')
    await waitFor('node-b to read the write it missed', () => b.lookup('sessions', 'missed') !== undefined, { timeoutMs: 3_000, intervalMs: 10 })
    expect(await counter(a.registry, 'grid_state_pushes_total', { outcome: 'nudged' })).toBeGreaterThan(0)
  })

  it('drops an update pushed by a peer that is not its writer, one that does not decode, one unsigned and one whose signature does not match', async () => {
    const net = new StubNet()
    const b = node(net, 'node-b')
    node(net, 'node-a')
    net.connect('node-a', 'node-b')
    const signed = (w: NodeId, n: number, u: Uint8Array): StateUpdate => ({ w, g: 0, n, u, s: stubSigner().sign(w, 0, n, u) })
    b.mesh.deliver(StatePush, signed('node-c', 0, entryUpdate('sessions', 'forged', 1)), 'node-a')
    b.mesh.deliver(StatePush, signed('node-a', 0, new Uint8Array([1, 2, 3, 250])), 'node-a')
    b.mesh.deliver(StatePush, { w: 'node-a', g: 0, u: entryUpdate('sessions', 'unsigned', 1) }, 'node-a')
    b.mesh.deliver(StatePush, { ...signed('node-a', 0, entryUpdate('sessions', 'tampered', 1)), u: entryUpdate('sessions', 'tampered', 2) }, 'node-a')
    for (const key of ['forged', 'unsigned', 'tampered']) expect(b.store.lookup('sessions', key)).toBeUndefined()
    expect(b.store.writers()).toEqual(['node-b'])
    for (const reason of ['not-writer', 'bad-update', 'unsigned', 'bad-signature']) expect(await counter(b.registry, 'grid_state_updates_rejected_total', { reason })).toBe(1)
    // the peer's own, well-formed and signed update still goes in
    b.mesh.deliver(StatePush, signed('node-a', 0, entryUpdate('sessions', 'fine', 1)), 'node-a')
    expect(b.store.lookup('sessions', 'fine')?.writer).toBe('node-a')
  })
})

describe('state store - merged reads', () => {
  it('reads the newest write of a key whoever wrote it, and a deletion by another writer hides it', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    a.set('sessions', 'k', 'first')
    await b.syncFrom('node-a')
    b.set('sessions', 'k', 'second')
    await a.syncFrom('node-b')
    expect(a.lookup('sessions', 'k')).toMatchObject({ value: 'second', writer: 'node-b' })
    expect(a.entries('sessions').get('k')?.value).toBe('second')
    expect(a.delete('sessions', 'k')).toBe(true)
    await b.syncFrom('node-a')
    expect(b.lookup('sessions', 'k')).toBeUndefined()
    expect(b.entries('sessions').has('k')).toBe(false)
    expect(b.delete('sessions', 'never-written')).toBe(false)
  })

  it('gives every writer\'s part of a record, and a writer\'s own entry on request', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    a.set('tasks', 't-1', { origin: true })
    b.set('tasks', 't-1', { executor: true })
    b.set('tasks', 't-2', { executor: true })
    await a.syncFrom('node-b')
    expect(a.lookupAll('tasks', 't-1').map(e => [e.writer, e.value]).sort()).toEqual([['node-a', { origin: true }], ['node-b', { executor: true }]])
    const groups = a.groupAll('tasks')
    expect([...groups.keys()].sort()).toEqual(['t-1', 't-2'])
    expect(groups.get('t-1')).toHaveLength(2)
    expect(a.entryOf('node-b', 'tasks', 't-1')?.value).toEqual({ executor: true })
    expect(a.entryOf('node-a', 'tasks', 't-2')).toBeUndefined()
  })
})

describe('state store - collection', () => {
  it('hides an expired entry at once, and its writer removes it so a newcomer never gets it', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    a.set('sessions', 'short', 'v', { ttlMs: 30 })
    a.set('sessions', 'long', 'v')
    expect(a.lookup('sessions', 'short')?.expiresAt).toBeGreaterThan(Date.now())
    await waitFor('the entry to expire', () => a.lookup('sessions', 'short') === undefined, { timeoutMs: 2_000, intervalMs: 5 })
    expect(a.entries('sessions').has('short')).toBe(false)
    await a.maintain()
    const c = node(net, 'node-c').store
    net.connect('node-a', 'node-c')
    await c.syncFrom('node-a')
    // read as of long ago: an entry merely hidden by expiry would show
    expect(c.lookup('sessions', 'short', 0)).toBeUndefined()
    expect(c.lookup('sessions', 'long')?.value).toBe('v')
  })

  it('removes the entries a registered collector lets go, on every node', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    a.setCollector('tasks', (key, e) => key.startsWith('done-') && (e.value as { status: string }).status === 'done')
    a.set('tasks', 'done-1', { status: 'done' })
    a.set('tasks', 'live-1', { status: 'running' })
    await b.syncFrom('node-a')
    expect(b.lookup('tasks', 'done-1')).toBeDefined()
    await a.maintain()
    await b.syncFrom('node-a')
    for (const s of [a, b]) {
      expect(s.lookup('tasks', 'done-1')).toBeUndefined()
      expect(s.lookup('tasks', 'live-1')?.value).toEqual({ status: 'running' })
    }
  })

  it('lets its own entry go once a newer one elsewhere shadows it, and still reads the newer one', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    a.set('sessions', 'k', 'old')
    await b.syncFrom('node-a')
    b.set('sessions', 'k', 'new')
    await a.syncFrom('node-b')
    const before = a.stats().ownEntries
    await a.maintain()
    expect(a.stats().ownEntries).toBe(before - 1)
    expect(a.lookup('sessions', 'k')).toMatchObject({ value: 'new', writer: 'node-b' })
  })

  it('keeps its own entry when it writes the key again after a newer one elsewhere shadowed it', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    a.set('sessions', 'k', 'first')
    await b.syncFrom('node-a')
    b.set('sessions', 'k', 'second')
    // node-a now holds node-b's newer entry: its own is shadowed, until it writes the key again
    await a.syncFrom('node-b')
    a.set('sessions', 'k', 'third')
    await a.maintain()
    await b.syncFrom('node-a')
    for (const s of [a, b]) expect(s.lookup('sessions', 'k')).toMatchObject({ value: 'third', writer: 'node-a' })
    // and a later round, with nothing newer elsewhere, keeps it too
    await a.maintain()
    await b.syncFrom('node-a')
    for (const s of [a, b]) expect(s.lookup('sessions', 'k')).toMatchObject({ value: 'third', writer: 'node-a' })
  })

  it('keeps its own shadowed entry when the newer one is gone by the time it collects', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    a.set('sessions', 'k', 'mine')
    await b.syncFrom('node-a')
    b.set('sessions', 'k', 'theirs')
    await a.syncFrom('node-b')
    expect(a.lookup('sessions', 'k')?.value).toBe('theirs')
    // node-b is forgotten before node-a's next round: nothing newer exists any more, so node-a's entry must stay
    expect(a.dropWriter('node-b')).toBe(true)
    await a.maintain()
    expect(a.lookup('sessions', 'k')).toMatchObject({ value: 'mine', writer: 'node-a' })
  })

  it('starts a new generation that peers read the same as the old one', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    net.connect('node-a', 'node-b')
    for (let i = 0; i < 2_000; i++) a.set('sessions', `s-${i % 100}`, { i })
    a.delete('sessions', 's-7')
    await b.syncFrom('node-a')
    const gen = a.stats().ownGeneration
    await a.regenerate()
    expect(a.stats().ownGeneration).toBeGreaterThan(gen)
    a.set('sessions', 'after', 1)
    await b.syncFrom('node-a')
    const read = (s: StateStore): Array<[string, unknown]> => [...s.entries('sessions')].map(([k, e]) => [k, e.value] as [string, unknown]).sort()
    expect(read(b)).toEqual(read(a))
    expect(b.lookup('sessions', 's-7')).toBeUndefined()
    expect(b.lookup('sessions', 'after')?.value).toBe(1)
    expect(b.entries('sessions').size).toBe(100)
  })

  it('counts in grid_state_document_bytes the updates held, at once at every scrape, on the writer and its peers, and less after a new generation', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a')
    const b = node(net, 'node-b')
    net.connect('node-a', 'node-b')
    const bytes = async (n: Node): Promise<number> => await counter(n.registry, 'grid_state_document_bytes', {})
    const before = await bytes(a)
    for (let i = 0; i < 2_000; i++) a.store.set('sessions', `s-${i % 100}`, { i, pad: 'x'.repeat(50) })
    await a.store.flush()
    // read at once after the records are signed and kept (a count kept as they are: nothing encoded, nothing cached)
    const written = await bytes(a)
    expect(written).toBeGreaterThan(before + 2_000 * 50)
    await b.store.syncFrom('node-a')
    // the peer holds node-a's records as well as its own
    expect(await bytes(b)).toBeGreaterThan(2_000 * 50)
    // a new generation keeps the 100 live entries, not the 1,900 overwritten ones
    await a.store.regenerate()
    expect(await bytes(a)).toBeLessThan(written / 4)
  })

  it('drops the documents of a forgotten node on every node', async () => {
    const net = new StubNet()
    const a = node(net, 'node-a').store
    const b = node(net, 'node-b').store
    const c = node(net, 'node-c').store
    net.connect('node-a', 'node-b')
    net.connect('node-a', 'node-c')
    c.set('registry', 'node-c', { name: 'c' })
    c.set('sessions', 'from-c', 1)
    // a forget counts from a registered member only
    a.set('registry', 'node-a', { name: 'a' })
    await a.syncFrom('node-c')
    await b.syncFrom('node-a')
    expect(b.writers().sort()).toEqual(['node-a', 'node-b', 'node-c'])
    const dropped: NodeId[] = []
    b.on('writer:dropped', id => { dropped.push(id) })
    a.set('forgotten', 'node-c', { at: Date.now(), by: 'node-a' })
    await b.syncFrom('node-a')
    await waitFor('node-b to drop node-c\'s documents', () => !b.writers().includes('node-c'), { timeoutMs: 2_000, intervalMs: 5 })
    expect(dropped).toEqual(['node-c'])
    expect(b.lookup('sessions', 'from-c')).toBeUndefined()
    expect(a.writers()).not.toContain('node-c')
  })
})
