import { EventEmitter } from 'node:events'
import { appendFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { Mesh } from '../../src/mesh/index.ts'
import { HybridClock, StateStore, checkUpdate, compareStamps } from '../../src/state/index.ts'
import { StateFiles } from '../../src/state/persistence.ts'
import { stubSigner } from '../helpers/state-signer.ts'

const dir = (): string => mkdtempSync(join(tmpdir(), 'grid-state-'))

/** Just enough of a mesh for a store that never talks to peers (the real path is tested with real daemons). */
function loneMesh (id: string): Mesh {
  const e = new EventEmitter() as unknown as Mesh
  Object.assign(e, {
    peerId: id,
    subscribe: () => {},
    publish: async () => {},
    connections: () => [],
    rpc: { handle: () => {}, onNotify: () => {} }
  })
  return e
}

function store (id = '12D3KooWtest', dataDir = dir()): StateStore {
  return new StateStore({ mesh: loneMesh(id), logger: pino({ level: 'silent' }), registry: new Registry(), signer: stubSigner() }, { cluster: 'grid', dataDir })
}

describe('state - persistence', () => {
  it('reads back appended batches and cuts a torn tail', async () => {
    const d = dir()
    const f = new StateFiles(d)
    f.load()
    await f.append([{ w: 'a', g: 0, u: new Uint8Array([1, 2]) }])
    await f.append([{ w: 'b', g: 1, u: new Uint8Array([3]) }, { w: 'a', g: 0, u: new Uint8Array([4]) }])
    await f.close()
    const good = statSync(f.walPath).size
    appendFileSync(f.walPath, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 5]))
    const loaded = new StateFiles(d).load()
    expect(loaded.wal.map(r => [r.w, r.g, [...r.u]])).toEqual([['a', 0, [1, 2]], ['b', 1, [3]], ['a', 0, [4]]])
    expect(loaded.truncatedBytes).toBe(9)
    expect(statSync(f.walPath).size).toBe(good)
  })

  it('stops at a frame whose checksum does not match', async () => {
    const d = dir()
    const f = new StateFiles(d)
    f.load()
    await f.append([{ w: 'a', g: 0, u: new Uint8Array([1]) }])
    await f.append([{ w: 'a', g: 0, u: new Uint8Array([2]) }])
    await f.close()
    const bytes = readFileSync(f.walPath)
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff
    writeFileSync(f.walPath, bytes)
    const loaded = new StateFiles(d).load()
    expect(loaded.wal).toHaveLength(1)
    expect(loaded.truncatedBytes).toBeGreaterThan(0)
  })

  it('keeps appends in order, and puts those made during a compaction in the new log', async () => {
    const d = dir()
    const f = new StateFiles(d)
    f.load()
    const rec = (n: number): { w: string, g: number, u: Uint8Array } => ({ w: 'a', g: 0, u: new Uint8Array([n]) })
    await f.append([rec(1)])
    // not awaited: each is issued as a caller would, while the one before may still be under way
    const writes = [f.append([rec(2)]), f.compact([]), f.append([rec(3)]), f.append([rec(4)])]
    await Promise.all(writes)
    await f.append([rec(5)])
    await f.close()
    const loaded = new StateFiles(d).load()
    expect(loaded.wal.map(r => r.u[0])).toEqual([3, 4, 5])
  })

  it('restores a store from its snapshot and log', async () => {
    const d = dir()
    const s1 = store('12D3KooWone', d)
    s1.load()
    await s1.start()
    s1.set('sessions', 'k1', { a: 1 })
    s1.set('sessions', 'k2', { b: 2 })
    await s1.flush()
    s1.set('sessions', 'k1', { a: 3 })
    await s1.flush()
    // no stop(): as after a kill -9, only the log has the last writes
    const s2 = store('12D3KooWone', d)
    s2.load()
    expect(s2.lookup('sessions', 'k1')?.value).toEqual({ a: 3 })
    expect(s2.lookup('sessions', 'k2')?.value).toEqual({ b: 2 })
    await s1.stop()
  })
})

describe('state - checking peers\' updates', () => {
  const entryUpdate = (v: unknown): Uint8Array => {
    const d = new Y.Doc()
    d.getMap('sessions').set('k', v)
    return Y.encodeStateAsUpdate(d)
  }

  it('accepts plain entries, named or in the previous release\'s one-letter form', () => {
    expect(() => { checkUpdate(entryUpdate({ value: { x: 1 }, stamp: [1, 0] })) }).not.toThrow()
    expect(() => { checkUpdate(entryUpdate({ value: null, stamp: [1, 0], deleted: true, expiresAt: 5 })) }).not.toThrow()
    expect(() => { checkUpdate(entryUpdate({ v: { x: 1 }, h: [1, 0] })) }).not.toThrow()
    expect(() => { checkUpdate(entryUpdate({ v: null, h: [1, 0], d: 1, x: 5 })) }).not.toThrow()
  })

  it('refuses garbage, unknown collections, nested types and malformed entries', () => {
    expect(() => { checkUpdate(new Uint8Array([1, 2, 3, 250])) }).toThrow(/undecodable|malformed|carries/)
    const text = new Y.Doc()
    text.getText('evil').insert(0, 'x')
    expect(() => { checkUpdate(Y.encodeStateAsUpdate(text)) }).toThrow(/unknown collection "evil"/)
    const nested = new Y.Doc()
    nested.getMap('sessions').set('k', new Y.Map())
    expect(() => { checkUpdate(Y.encodeStateAsUpdate(nested)) }).toThrow(/carries ContentType/)
    expect(() => { checkUpdate(entryUpdate({ value: 1 })) }).toThrow(/malformed entry/)
    expect(() => { checkUpdate(entryUpdate({ v: 1 })) }).toThrow(/malformed entry/)
    // one form or the other, not a mix of both
    expect(() => { checkUpdate(entryUpdate({ value: 1, h: [1, 0] })) }).toThrow(/malformed entry/)
    expect(() => { checkUpdate(entryUpdate({ value: 1, stamp: [1, 0], d: 1 })) }).toThrow(/malformed entry/)
    expect(() => { checkUpdate(entryUpdate({ value: 1, stamp: [1, 0], deleted: 1 })) }).toThrow(/malformed entry/)
    const list = new Y.Doc()
    list.getArray('sessions').push([{ value: 1, stamp: [1, 0] }])
    expect(() => { checkUpdate(Y.encodeStateAsUpdate(list)) }).toThrow(/as a list/)
  })
})

describe('state - hybrid clock', () => {
  it('never goes backwards and moves past stamps it observes', () => {
    let wall = 1000
    const c = new HybridClock(() => wall)
    const a = c.now()
    const b = c.now()
    expect(compareStamps(b, a)).toBeGreaterThan(0)
    wall = 900
    expect(compareStamps(c.now(), b)).toBeGreaterThan(0)
    c.observe([5000, 7])
    expect(compareStamps(c.now(), [5000, 7])).toBeGreaterThan(0)
  })

  it('ignores a peer stamp far in the future', () => {
    const c = new HybridClock(() => 1000)
    c.observe([1000 + 3_600_000, 0])
    expect(c.now()[0]).toBe(1000)
  })
})

describe('state - bounded under churn', () => {
  it('keeps the document under twice the live data after 200,000 writes over 2,000 keys', async () => {
    const s = store()
    s.load()
    for (let i = 0; i < 200_000; i++) {
      s.set('sessions', `session-${i % 2000}`, { owner: '12D3KooWowner', step: i, model: 'llama-3-8b' })
      if (i % 10_000 === 9_999) await s.maintain()
    }
    await s.maintain()
    const live = [...s.entries('sessions').values()].reduce((n, e) => n + JSON.stringify({ k: e.key, v: e.value, h: e.stamp }).length, 0)
    const docBytes = s.ownDocumentBytes()
    expect(s.entries('sessions').size).toBe(2000)
    expect(docBytes).toBeLessThan(2 * live)
    expect(s.stats().ownGeneration).toBeGreaterThan(0)
    await s.stop()
  })
})
