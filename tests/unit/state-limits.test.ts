import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { membershipMessage, registryValue, type RegistryValue, type StateUpdate } from '../../proto/index.ts'
import { NAME_PATTERN } from '../../src/config/fields.ts'
import { loadConfig } from '../../src/config/index.ts'
import { InvalidConfigError, TooLargeError, type NodeId } from '../../src/interface/index.ts'
import { NodeRegistry, Sessions, StateStore, type StateMesh } from '../../src/state/index.ts'
import { waitFor } from '../helpers/cluster.ts'
import { stubSigner } from '../helpers/state-signer.ts'

type Notify = (data: unknown, peer: NodeId) => void

/** A mesh with no peers, through which a test hands the store what a peer pushed. */
class LoneMesh extends EventEmitter implements StateMesh {
  readonly notifyHandlers = new Map<string, Notify>()
  readonly rpc: StateMesh['rpc'] = {
    handle: () => {},
    onNotify: (method, fn) => { this.notifyHandlers.set(method.name, fn as Notify) },
    notify: () => false,
    request: async () => { throw new Error('no peers') },
    hasChannel: () => false,
    ensureChannel: async () => {}
  }

  constructor (readonly peerId: NodeId) { super() }
  connections (): NodeId[] { return [] }
}

const dirs: string[] = []
const stores: StateStore[] = []
afterEach(async () => {
  for (const s of stores.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function store (): { store: StateStore, mesh: LoneMesh, registry: Registry } {
  const dataDir = mkdtempSync(join(tmpdir(), 'grid-state-limits-'))
  dirs.push(dataDir)
  const mesh = new LoneMesh('self-node')
  const registry = new Registry()
  const s = new StateStore({ mesh, logger: pino({ level: 'silent' }), registry, signer: stubSigner() }, { cluster: 'grid', dataDir })
  s.load()
  stores.push(s)
  return { store: s, mesh, registry }
}

const ESC_NAME = 'gpu1\u001b]0;owned\u0007\u001b[2J'

function facts (name: string): RegistryValue {
  return { name, addrs: [], region: 'default', labels: {}, capabilities: [], gpus: [], version: '0.1.0', drain: false, joinedAt: 1, updatedAt: 1 }
}

describe('sessions - caps per writer', () => {
  it('refuses a new session past the count cap with TOO_LARGE, and takes updates of existing ones', () => {
    const sessions = new Sessions(store().store, { maxPerWriter: 3 })
    for (const id of ['a', 'b', 'c']) sessions.put(id, { n: 1 })
    expect(() => sessions.put('d', { n: 1 })).toThrow(TooLargeError)
    expect(() => sessions.put('d', { n: 1 })).toThrow(/sessions\.maxPerWriter 3/)
    expect(sessions.put('a', { n: 2 }).value).toEqual({ n: 2 })
    expect(sessions.get('d')).toBeUndefined()
    // a removed one makes room
    sessions.remove('b')
    expect(sessions.put('d', { n: 1 }).id).toBe('d')
  })

  it('refuses a put that would pass the byte cap, counting what an update replaces', () => {
    const sessions = new Sessions(store().store, { maxBytesPerWriter: 100_000 })
    const big = 'x'.repeat(40_000)
    sessions.put('one', big)
    sessions.put('two', big)
    expect(() => sessions.put('three', big)).toThrow(/sessions\.maxBytesPerWriter 100000 bytes/)
    // replacing a value with one of the same size fits
    expect(sessions.put('two', big).id).toBe('two')
    expect(sessions.list().map(s => s.id)).toEqual(['one', 'two'])
  })

  it('counts the sessions this node held before it restarted (read back from the store)', () => {
    const s = store().store
    const first = new Sessions(s, { maxPerWriter: 2 })
    first.put('a', 1)
    first.put('b', 2)
    expect(() => new Sessions(s, { maxPerWriter: 2 }).put('c', 3)).toThrow(TooLargeError)
  })
})

describe('node names - one pattern wherever a name enters', () => {
  it('is the same pattern in the config and on the wire', () => {
    expect(NAME_PATTERN.source).toBe((registryValue.schema.properties.name as unknown as { pattern: string }).pattern)
  })

  it('refuses a --name with control characters or escape sequences', () => {
    for (const name of [ESC_NAME, 'a\tb', 'tab\u0000', '-dash-first', 'x'.repeat(64)]) {
      expect(() => loadConfig({ env: {}, flags: { name }, defaultConfigFile: '/nonexistent' }), JSON.stringify(name)).toThrow(InvalidConfigError)
    }
    expect(loadConfig({ env: {}, flags: { name: 'gpu-1.rack_2' }, defaultConfigFile: '/nonexistent' }).name).toBe('gpu-1.rack_2')
  })

  it('rejects a heartbeat whose name has escape sequences', () => {
    const load = { cpu: 0, cpus: 1, memTotalMiB: 1, memFreeMiB: 1, running: 0, queued: 0, slots: 1, freeSlots: 1, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }
    const hb = { t: 'hb', id: 'peer', name: 'gpu1', inc: 1, seq: 1, state: 'alive', load, ver: '0.1.0', ts: 0 }
    expect(membershipMessage.check(hb)).toBe(true)
    expect(membershipMessage.check({ ...hb, name: ESC_NAME })).toBe(false)
    expect(membershipMessage.check({ ...hb, name: '' })).toBe(false)
  })

  it('ignores a peer\'s registry entry with such a name, and counts it', async () => {
    const { store: s, mesh, registry } = store()
    const nodes = new NodeRegistry(s, { logger: pino({ level: 'silent' }), registry })
    const push = mesh.notifyHandlers.get('state.push') as Notify
    const doc = new Y.Doc()
    doc.getMap('registry').set('rogue', { value: facts('fine'), stamp: [Date.now(), 0] })
    const signed = (n: number, u: Uint8Array): StateUpdate => ({ w: 'rogue', g: 0, n, u, s: stubSigner().sign('rogue', 0, n, u) })
    push(signed(0, Y.encodeStateAsUpdate(doc)), 'rogue')
    await waitFor('the good entry to be read', () => nodes.get('rogue')?.value.name === 'fine')
    // an overwrite carries no collection name in the update: the check runs on the applied entry
    const sv = Y.encodeStateVector(doc)
    doc.getMap('registry').set('rogue', { value: facts(ESC_NAME), stamp: [Date.now() + 1, 0] })
    push(signed(1, Y.encodeStateAsUpdate(doc, sv)), 'rogue')
    const invalid = async (): Promise<number> => (await registry.getSingleMetric('grid_state_registry_entries_invalid_total')?.get())?.values[0]?.value ?? 0
    await waitFor('the bad entry to be counted', async () => await invalid() === 1)
    expect(nodes.get('rogue')).toBeUndefined()
    expect([...nodes.list().keys()]).not.toContain('rogue')
  })
})
