/**
 * A node restarted on a data directory of the previous release: its snapshot and log hold Yjs updates whose entries
 * are one-letter (`{v, h, d?, x?}`, task entries `{c, e, x}`). The documents here are built with yjs directly, as that
 * release wrote them, and persisted with the store's own file format.
 */
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { CoordAspect, ExecAspect } from '../../proto/index.ts'
import type { Mesh } from '../../src/mesh/index.ts'
import { StateStore } from '../../src/state/index.ts'
import { StateFiles } from '../../src/state/persistence.ts'
import { TaskRecords } from '../../src/tasks/records.ts'
import { stubSigner } from '../helpers/state-signer.ts'

const SELF = '12D3KooWself'
const OTHER = '12D3KooWother'
const T = Date.now()

const dirs: string[] = []
const stores: StateStore[] = []
afterEach(async () => {
  for (const s of stores.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function loneMesh (id: string): Mesh {
  const e = new EventEmitter() as unknown as Mesh
  Object.assign(e, { peerId: id, subscribe: () => {}, publish: async () => {}, connections: () => [], rpc: { handle: () => {}, onNotify: () => {} } })
  return e
}

/** A data directory whose log holds these writers' documents (generation 0), each built by `build`. */
async function dataDir (docs: Record<string, (d: Y.Doc) => void>): Promise<string> {
  const d = mkdtempSync(join(tmpdir(), 'grid-state-legacy-'))
  dirs.push(d)
  const files = new StateFiles(d)
  files.load()
  await files.append(Object.entries(docs).map(([w, build]) => {
    const doc = new Y.Doc()
    build(doc)
    return { w, g: 0, u: Y.encodeStateAsUpdate(doc) }
  }))
  await files.close()
  return d
}

function open (d: string): StateStore {
  const s = new StateStore({ mesh: loneMesh(SELF), logger: pino({ level: 'silent' }), registry: new Registry(), signer: stubSigner() }, { cluster: 'grid', dataDir: d })
  s.load()
  stores.push(s)
  return s
}

/** The raw entries of a writer's document as the store persisted it (after stop: the snapshot). */
function persisted (d: string, writer: string, collection: string): Record<string, Record<string, unknown>> {
  const loaded = new StateFiles(d).load()
  const doc = new Y.Doc()
  for (const rec of [...loaded.snapshot, ...loaded.wal]) if (rec.w === writer) Y.applyUpdate(doc, rec.u)
  return doc.getMap(collection).toJSON() as Record<string, Record<string, unknown>>
}

const session = (value: unknown): Record<string, unknown> => ({ value, owner: null, createdAt: T, updatedAt: T, ttlMs: null })
const coord = (attempt: number): CoordAspect => ({
  spec: { command: ['true'], cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, priority: 0, retries: 0, retryOnFailure: false, env: {}, strategy: 'least-loaded' },
  origin: SELF, originName: 'self', coordinator: SELF, attempt, createdAt: T
})
const exec = (attempt: number, status: ExecAspect['status']): ExecAspect => ({ attempt, node: OTHER, nodeName: 'other', status, queuedAt: T, startedAt: T + 1, finishedAt: T + 2, exitCode: 0 })

describe('state - entries of the previous release', () => {
  it('reads its own one-letter entries with their stamps, expiry and deletion marks, and drops other writers\' unsigned ones', async () => {
    const d = await dataDir({
      [SELF]: doc => {
        const m = doc.getMap('sessions')
        m.set('plain', { v: session('old'), h: [T, 3] })
        m.set('expiring', { v: session('soon gone'), h: [T, 4], x: T + 60_000 })
        m.set('shadowed', { v: session('older'), h: [T, 5] })
      },
      [OTHER]: doc => {
        const m = doc.getMap('sessions')
        m.set('theirs', { v: session('replica'), h: [T, 1] })
        // a deletion mark newer than our entry hides the key
        m.set('shadowed', { v: null, h: [T + 10, 0], d: 1 })
        m.set('expired', { v: session('gone'), h: [T, 2], x: T - 1 })
      }
    })
    const s = open(d)
    expect(s.lookup('sessions', 'plain')).toMatchObject({ value: session('old'), writer: SELF, stamp: [T, 3] })
    // another writer's records of the previous release are unsigned: dropped, to be fetched again signed
    expect(s.lookup('sessions', 'theirs')).toBeUndefined()
    expect(s.writers()).toEqual([SELF])
    expect(s.lookup('sessions', 'expiring', T)?.expiresAt).toBe(T + 60_000)
    expect(s.lookup('sessions', 'expiring', T + 60_000)).toBeUndefined()
    expect(s.lookup('sessions', 'shadowed')).toMatchObject({ value: session('older') })
    expect([...s.entries('sessions').keys()].sort()).toEqual(['expiring', 'plain', 'shadowed'])
  })

  it('rewrites its own one-letter entries named at load in a new signed generation, keeping their stamps', async () => {
    const d = await dataDir({
      [SELF]: doc => {
        doc.getMap('sessions').set('mine', { v: session('a'), h: [T, 7], x: T + 60_000 })
        doc.getMap('sessions').set('deleted', { v: null, h: [T, 8], d: 1 })
      },
      [OTHER]: doc => { doc.getMap('sessions').set('theirs', { v: session('b'), h: [T, 1] }) }
    })
    const s = open(d)
    await s.stop()
    stores.splice(0)
    expect(persisted(d, SELF, 'sessions')).toEqual({
      mine: { value: session('a'), stamp: [T, 7], expiresAt: T + 60_000 },
      deleted: { value: null, stamp: [T, 8], deleted: true }
    })
    expect(persisted(d, OTHER, 'sessions')).toEqual({})
    expect(new StateFiles(d).load().snapshot.every(r => r.s !== undefined)).toBe(true)
    // and a second start on the rewritten directory reads the same
    expect(open(d).lookup('sessions', 'mine')).toMatchObject({ value: session('a'), stamp: [T, 7], expiresAt: T + 60_000 })
  })

  it('writes only the named form from now on, and reads a document mixing both forms', async () => {
    const d = await dataDir({
      [SELF]: doc => {
        doc.getMap('sessions').set('old', { v: session('legacy'), h: [T, 0] })
        doc.getMap('sessions').set('new', { value: session('named'), stamp: [T, 1] })
        doc.getMap('sessions').set('contested', { v: session('older legacy'), h: [T, 2] })
      }
    })
    const s = open(d)
    s.set('sessions', 'written', session('here'), { ttlMs: 60_000 })
    s.set('sessions', 'contested', session('newer named'))
    expect(s.delete('sessions', 'old')).toBe(true)
    expect(s.lookup('sessions', 'new')?.value).toEqual(session('named'))
    expect(s.lookup('sessions', 'contested')).toMatchObject({ value: session('newer named'), writer: SELF })
    expect(s.lookup('sessions', 'old')).toBeUndefined()
    await s.stop()
    stores.splice(0)
    const mine = persisted(d, SELF, 'sessions')
    expect(Object.keys(mine).sort()).toEqual(['contested', 'new', 'old', 'written'])
    expect(mine.written).toEqual({ value: session('here'), stamp: expect.any(Array), expiresAt: expect.any(Number) })
    expect(mine.old).toEqual({ value: null, stamp: expect.any(Array), deleted: true })
    expect(mine.contested).toEqual({ value: session('newer named'), stamp: expect.any(Array) })
  })

  it('collects its own expired and old deleted entries that came from the previous release', async () => {
    const d = await dataDir({
      [SELF]: doc => {
        doc.getMap('sessions').set('expired', { v: session('x'), h: [T - 10, 0], x: T - 1 })
        doc.getMap('sessions').set('long-deleted', { v: null, h: [T - 3_600_000, 0], d: 1 })
        doc.getMap('sessions').set('kept', { v: session('y'), h: [T, 0] })
      }
    })
    const s = open(d)
    // read as of long ago: an entry merely hidden by expiry would show
    expect(s.lookup('sessions', 'expired', 0)).toBeDefined()
    await s.maintain()
    expect(s.lookup('sessions', 'expired', 0)).toBeUndefined()
    await s.stop()
    stores.splice(0)
    expect(Object.keys(persisted(d, SELF, 'sessions'))).toEqual(['kept'])
  })
})

describe('task records - entries of the previous release', () => {
  it('reads its own one-letter task entries merged with named ones, and rewrites them named', async () => {
    const d = await dataDir({
      // this node coordinated the task and asked to cancel it, and ran another, before the upgrade
      [SELF]: doc => {
        doc.getMap('tasks').set('t1', { v: { c: coord(2), x: { at: T, by: SELF } }, h: [T, 0] })
        doc.getMap('tasks').set('t3', { v: { c: coord(1), e: exec(1, 'failed') }, h: [T, 3] })
      },
      [OTHER]: doc => { doc.getMap('tasks').set('t2', { value: { exec: exec(1, 'running') }, stamp: [T, 2] }) }
    })
    const s = open(d)
    const records = new TaskRecords(s)
    expect(records.get('t1')).toMatchObject({ attempts: 2, coordinator: SELF, cancelRequested: true, command: ['true'] })
    expect(records.get('t2')).toBeUndefined()
    expect(records.get('t3')).toMatchObject({ status: 'failed' })
    expect(records.list().map(r => r.id).sort()).toEqual(['t1', 't3'])
    expect(records.own('t1')).toEqual({ coord: coord(2), cancel: { at: T, by: SELF } })
    records.writeExec('t3', exec(1, 'failed'))
    await s.stop()
    stores.splice(0)
    const mine = persisted(d, SELF, 'tasks')
    expect(mine.t1).toEqual({ value: { coord: coord(2), cancel: { at: T, by: SELF } }, stamp: [T, 0] })
    expect(mine.t3?.value).toEqual({ coord: coord(1), exec: exec(1, 'failed') })
  })

  it('skips a task entry that is malformed in the form it is in', async () => {
    const d = await dataDir({
      [SELF]: doc => {
        doc.getMap('tasks').set('bad-legacy', { v: { c: { attempt: 'one' } }, h: [T, 0] })
        doc.getMap('tasks').set('bad-named', { value: { coord: { attempt: 'one' } }, stamp: [T, 0] })
      }
    })
    const records = new TaskRecords(open(d))
    expect(records.get('bad-legacy')).toBeUndefined()
    expect(records.get('bad-named')).toBeUndefined()
  })
})
