/**
 * The replicated state store: every node's writer documents, replicated to every node.
 *
 * - Local writes go into this node's own document; its Yjs updates are batched (a few ms; more under load), pushed
 *   to every connected peer on the long-lived stream of each pair (one copy per peer; the connection proves the
 *   writer), and appended to the write-ahead log.
 * - Updates from peers are checked (size, decodable, plain entries only) before they touch a document, applied with
 *   the remote origin (never pushed on), and logged. An update that leaves a gap, or a nudge, triggers catch-up.
 * - Catch-up (y-protocols' step 1/2): on every new connection and every few seconds with a random peer, this node
 *   sends the state vector of every document it holds and gets back only what it lacks.
 * - Reads merge the documents: for each key the entry with the newest hybrid-clock stamp wins (then the writer id);
 *   a deletion mark or an expired entry hides the key.
 * - Each writer keeps its own document bounded: it removes its entries that a newer one elsewhere shadows, expired
 *   entries and old deletion marks, and starts a new generation (live entries only) when tombstones outgrow them.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import * as Y from 'yjs'
import {
  COLLECTIONS, STATE_BATCH_MAX_BYTES, StatePush, StateSync,
  type CollectionName, type Entry, type StateUpdate, type SyncResponse
} from '../../proto/index.ts'
import { toGridError, type NodeId, type Startable } from '../interface/index.ts'
import type { Mesh } from '../mesh/index.ts'
import { LogLimiter, jitter, repeat } from '../util/index.ts'
import { HybridClock, compareStamps, type Stamp } from './hlc.ts'
import { StateFiles, type DocRecord } from './persistence.ts'
import { ORIGIN_LOAD, ORIGIN_LOCAL, ORIGIN_REMOTE, WriterDoc, checkUpdate, isEmptyUpdate, type Origin } from './writer-doc.ts'

export interface StateInit {
  cluster: string
  dataDir: string
  /** How long this node's deletion marks are kept at least (peers that were away must see them). */
  tombstoneMinAgeMs?: number
  /** A local write after a quiet spell is pushed this soon (under load, batches are up to 100 ms apart). */
  flushIntervalMs?: number
  antiEntropyIntervalMs?: number
  maintenanceIntervalMs?: number
  /** A new generation starts when tombstones exceed this many times the live entries (and REGEN_MIN_GARBAGE). */
  regenerateFactor?: number
}

export interface StateComponents {
  mesh: Mesh
  logger: Logger
  registry: Registry
}

export interface StoredEntry<T = unknown> {
  key: string
  value: T
  writer: NodeId
  stamp: Stamp
  expiresAt?: number
}

export interface ChangeEvent {
  collection: CollectionName
  key: string
  writer: NodeId
  /** written by this node */
  local: boolean
}

export interface StateEvents {
  change: [ChangeEvent]
  /** a writer's documents were dropped (the node was forgotten) */
  'writer:dropped': [NodeId]
}

/** Decides whether this node's own entry should be collected now (retention of finished tasks, and so on). */
export type Collector = (key: string, entry: Entry, now: number) => boolean

interface Slot {
  current: WriterDoc
  /** the previous generation, read as a fallback until the new one is known to be complete */
  previous?: WriterDoc
}

const REGEN_MIN_GARBAGE = 1000
const PUSH_SPACING_PER_UPDATE_MS = 5
const PUSH_MAX_SPACING_MS = 100
const LWW_COLLECTIONS: ReadonlySet<CollectionName> = new Set(['sessions', 'forgotten'])
const SYNC_MAX_BYTES = 8 * 1024 * 1024
const SYNC_TIMEOUT_MS = 15_000
const SYNC_MAX_ROUNDS = 64
/** A peer that missed a push (its stream was full or not open yet) is nudged this soon, rather than left to anti-entropy. */
const NUDGE_RETRY_MS = 200
const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc())

export class StateStore extends EventEmitter<StateEvents> implements Startable {
  readonly selfId: NodeId
  readonly clock = new HybridClock()
  readonly files: StateFiles
  private readonly log: Logger
  private readonly slots = new Map<NodeId, Slot>()
  private readonly collectors = new Map<CollectionName, Collector>()
  private outbox: Uint8Array[] = []
  private walQueue: DocRecord[] = []
  private readonly shadowed = new Set<string>()
  private flushTimer?: NodeJS.Timeout
  /** Connected peers that missed a push since they last got one: they are nudged to catch up from us. */
  private readonly behind = new Set<NodeId>()
  private nudgeTimer?: NodeJS.Timeout
  private lastFlushAt = 0
  private lastBatchSize = 0
  private readonly syncing = new Map<NodeId, Promise<void>>()
  private readonly syncAgain = new Set<NodeId>()
  private loops: Array<{ stop: () => void }> = []
  private running = false
  private readonly limiter = new LogLimiter(60_000)
  private docBytesCache = { at: 0, bytes: 0 }
  private readonly m: {
    applied: Counter<'source'>
    rejected: Counter<'reason'>
    syncs: Counter<'outcome'>
    syncBytes: Counter
    regenerations: Counter
    flushes: Counter
    pushes: Counter<'outcome'>
  }

  constructor (private readonly components: StateComponents, private readonly init: StateInit) {
    super()
    this.selfId = components.mesh.peerId
    this.log = components.logger
    this.files = new StateFiles(init.dataDir)
    const r = components.registry
    const store = this
    this.m = {
      applied: new Counter({ name: 'grid_state_updates_applied_total', help: 'CRDT updates applied, by source (local, push, sync, load)', labelNames: ['source'], registers: [r] }),
      rejected: new Counter({ name: 'grid_state_updates_rejected_total', help: 'CRDT updates from peers dropped as invalid, by reason', labelNames: ['reason'], registers: [r] }),
      syncs: new Counter({ name: 'grid_state_syncs_total', help: 'Catch-up exchanges this node started, by outcome', labelNames: ['outcome'], registers: [r] }),
      syncBytes: new Counter({ name: 'grid_state_sync_received_bytes_total', help: 'Bytes of updates received through catch-up', registers: [r] }),
      regenerations: new Counter({ name: 'grid_state_regenerations_total', help: 'New generations of this node\'s document (tombstones dropped)', registers: [r] }),
      flushes: new Counter({ name: 'grid_state_batches_sent_total', help: 'Batches of local updates pushed to peers', registers: [r] }),
      pushes: new Counter({ name: 'grid_state_pushes_total', help: 'Batches pushed to a peer, by outcome (sent; skipped: no open stream or a full one; nudged: a peer that missed one was told to catch up)', labelNames: ['outcome'], registers: [r] })
    }
    new Gauge({ name: 'grid_state_document_bytes', help: 'Encoded size of every writer document this node holds', registers: [r], collect () { this.set(store.documentBytes()) } })
    new Gauge({ name: 'grid_state_writers', help: 'Writer documents held (one per node that ever wrote)', registers: [r], collect () { this.set(store.slots.size) } })
    new Gauge({
      name: 'grid_state_entries',
      help: 'Live entries per collection, as this node reads them',
      labelNames: ['collection'],
      registers: [r],
      collect () { for (const c of COLLECTIONS) this.set({ collection: c }, store.entries(c).size) }
    })
    new Gauge({ name: 'grid_state_wal_bytes', help: 'Size of the state write-ahead log', registers: [r], collect () { this.set(store.files.sizes().walBytes) } })

    components.mesh.rpc.onNotify(StatePush, (msg, from) => { this.onPush(msg, from) })
    components.mesh.rpc.handle(StateSync, req => this.serveSync(req.docs, req.maxBytes ?? SYNC_MAX_BYTES))
    this.slots.set(this.selfId, { current: this.newDoc(this.selfId, 0) })
  }

  /** Loads the documents from disk, so the node has its state before it sees any peer. */
  load (): { docs: number, truncatedBytes: number } {
    const loaded = this.files.load()
    for (const rec of [...loaded.snapshot, ...loaded.wal]) this.applyRecord(rec, ORIGIN_LOAD)
    if (loaded.truncatedBytes > 0) this.log.warn({ bytes: loaded.truncatedBytes }, 'cut a torn tail off the state log (writes of the last moment before a crash)')
    this.log.info({ writers: this.slots.size, entries: this.own.size(), snapshot: loaded.snapshot.length, logRecords: loaded.wal.length }, 'state loaded')
    return { docs: this.slots.size, truncatedBytes: loaded.truncatedBytes }
  }

  async start (): Promise<void> {
    this.running = true
    const mesh = this.components.mesh
    mesh.on('peer:connect', this.onConnect)
    const onError = (err: unknown): void => { this.log.error({ err }, 'state loop failed') }
    this.loops.push(repeat(() => { this.antiEntropy() }, this.init.antiEntropyIntervalMs ?? 5_000, onError, { jitter: 0.3 }))
    this.loops.push(repeat(async () => { await this.maintain() }, this.init.maintenanceIntervalMs ?? 1_000, onError, { jitter: 0.1 }))
    await this.files.compact(this.records())
  }

  async stop (): Promise<void> {
    this.running = false
    this.components.mesh.off('peer:connect', this.onConnect)
    for (const l of this.loops) l.stop()
    this.loops = []
    clearTimeout(this.flushTimer)
    clearTimeout(this.nudgeTimer)
    await this.flush()
    await this.files.compact(this.records())
    await this.files.close()
  }

  private get own (): WriterDoc {
    return (this.slots.get(this.selfId) as Slot).current
  }

  /** Registers the collector that decides which of this node's own entries in a collection may go. */
  setCollector (collection: CollectionName, fn: Collector): void {
    this.collectors.set(collection, fn)
  }

  // ---- writes (this node's document only) ----

  /** Writes an entry; `ttlMs` makes it expire on every node at the same moment. Returns its stamp. */
  set (collection: CollectionName, key: string, value: unknown, opts: { ttlMs?: number | null } = {}): Stamp {
    const h = this.clock.now()
    const e: Entry = { v: value, h }
    if (opts.ttlMs !== undefined && opts.ttlMs !== null) e.x = Date.now() + opts.ttlMs
    this.own.doc.transact(() => { this.own.map(collection).set(key, e) }, ORIGIN_LOCAL)
    return h
  }

  /** Deletes a key cluster-wide (a deletion mark that wins over older entries). False if nobody has it. */
  delete (collection: CollectionName, key: string): boolean {
    if (this.lookup(collection, key) === undefined) return false
    const e: Entry = { v: null, h: this.clock.now(), d: 1 }
    this.own.doc.transact(() => { this.own.map(collection).set(key, e) }, ORIGIN_LOCAL)
    return true
  }

  // ---- reads (merged over every writer) ----

  /** The winning live entry for a key, or undefined (absent, deleted or expired). */
  lookup<T = unknown> (collection: CollectionName, key: string, now = Date.now()): StoredEntry<T> | undefined {
    let best: { e: Entry, w: NodeId } | undefined
    for (const [w, slot] of this.slots) {
      const e = slot.current.get(collection, key) ?? slot.previous?.get(collection, key)
      if (e === undefined) continue
      if (best === undefined || wins(e, w, best.e, best.w)) best = { e, w }
    }
    if (best === undefined || best.e.d === 1 || (best.e.x !== undefined && best.e.x <= now)) return undefined
    return toStored<T>(key, best.e, best.w)
  }

  /** Every live key of a collection with its winning entry. */
  entries<T = unknown> (collection: CollectionName, now = Date.now()): Map<string, StoredEntry<T>> {
    const best = new Map<string, { e: Entry, w: NodeId }>()
    for (const [w, slot] of this.slots) {
      const docs = slot.previous === undefined ? [slot.current] : [slot.current, slot.previous]
      for (const doc of docs) {
        for (const [key, e] of doc.map(collection)) {
          if (doc !== slot.current && slot.current.get(collection, key) !== undefined) continue
          const b = best.get(key)
          if (b === undefined || wins(e, w, b.e, b.w)) best.set(key, { e, w })
        }
      }
    }
    const out = new Map<string, StoredEntry<T>>()
    for (const [key, { e, w }] of best) {
      if (e.d === 1 || (e.x !== undefined && e.x <= now)) continue
      out.set(key, toStored<T>(key, e, w))
    }
    return out
  }

  /** Every writer's live entry for a key (for collections whose writers hold different parts of a record). */
  lookupAll<T = unknown> (collection: CollectionName, key: string, now = Date.now()): Array<StoredEntry<T>> {
    const out: Array<StoredEntry<T>> = []
    for (const [w, slot] of this.slots) {
      const e = slot.current.get(collection, key) ?? slot.previous?.get(collection, key)
      if (e === undefined || e.d === 1 || (e.x !== undefined && e.x <= now)) continue
      out.push(toStored<T>(key, e, w))
    }
    return out
  }

  /** Every key of a collection with every writer's live entry for it. */
  groupAll<T = unknown> (collection: CollectionName, now = Date.now()): Map<string, Array<StoredEntry<T>>> {
    const out = new Map<string, Array<StoredEntry<T>>>()
    for (const [w, slot] of this.slots) {
      const docs = slot.previous === undefined ? [slot.current] : [slot.current, slot.previous]
      for (const doc of docs) {
        for (const [key, e] of doc.map(collection)) {
          if (doc !== slot.current && slot.current.get(collection, key) !== undefined) continue
          if (e.d === 1 || (e.x !== undefined && e.x <= now)) continue
          let list = out.get(key)
          if (list === undefined) { list = []; out.set(key, list) }
          list.push(toStored<T>(key, e, w))
        }
      }
    }
    return out
  }

  /** The entry a given writer holds for a key (registry entries are only trusted from their own writer). */
  entryOf<T = unknown> (writer: NodeId, collection: CollectionName, key: string): StoredEntry<T> | undefined {
    const slot = this.slots.get(writer)
    const e = slot?.current.get(collection, key) ?? slot?.previous?.get(collection, key)
    return e === undefined || e.d === 1 ? undefined : toStored<T>(key, e, writer)
  }

  writers (): NodeId[] {
    return [...this.slots.keys()]
  }

  /** Drops a writer's documents here (the node was forgotten). */
  dropWriter (writer: NodeId): boolean {
    if (writer === this.selfId || !this.slots.has(writer)) return false
    const slot = this.slots.get(writer) as Slot
    this.slots.delete(writer)
    for (const doc of [slot.current, slot.previous]) doc?.doc.destroy()
    this.log.info({ writer }, 'dropped a forgotten node\'s documents')
    this.emitSafe('writer:dropped', writer)
    return true
  }

  /** Sum of the encoded sizes of every document held (cached for a few seconds: encoding is not free). */
  documentBytes (): number {
    const now = Date.now()
    if (now - this.docBytesCache.at > 5_000) {
      let bytes = 0
      for (const slot of this.slots.values()) bytes += Y.encodeStateAsUpdate(slot.current.doc).byteLength
      this.docBytesCache = { at: now, bytes }
    }
    return this.docBytesCache.bytes
  }

  /** Stats for benchmarks and `gridctl status`. */
  stats (): { writers: number, ownEntries: number, ownGarbage: number, ownGeneration: number } {
    return { writers: this.slots.size, ownEntries: this.own.size(), ownGarbage: this.own.garbage, ownGeneration: this.own.gen }
  }

  /** Waits until every local write so far has been pushed to peers and logged. */
  async flush (): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    this.lastFlushAt = Date.now()
    this.lastBatchSize = this.outbox.length
    const outbox = this.outbox
    const wal = this.walQueue
    this.outbox = []
    this.walQueue = []
    const own = this.own
    if (outbox.length > 0 && this.running) {
      for (const batch of batches(outbox, STATE_BATCH_MAX_BYTES)) {
        await this.publish({ w: this.selfId, g: own.gen, u: batch })
      }
    }
    try {
      await this.files.append(wal)
    } catch (err) {
      if (this.limiter.allow('wal')) this.log.error({ err }, 'cannot write the state log; state survives in memory and at peers')
    }
  }

  // ---- internals ----

  private newDoc (writer: NodeId, gen: number): WriterDoc {
    const d = new WriterDoc(writer, gen)
    for (const c of COLLECTIONS) {
      d.map(c).observe(event => {
        const origin = event.transaction.origin as Origin
        for (const key of event.keysChanged) this.onChange(d, c, key, origin)
      })
    }
    if (writer === this.selfId) {
      d.doc.on('update', (u: Uint8Array, origin: unknown) => {
        if (origin !== ORIGIN_LOCAL) return
        this.outbox.push(u)
        this.walQueue.push({ w: this.selfId, g: d.gen, u })
        this.m.applied.inc({ source: 'local' })
        this.scheduleFlush()
      })
    }
    return d
  }

  private onChange (doc: WriterDoc, c: CollectionName, key: string, origin: Origin): void {
    const e = doc.get(c, key)
    if (origin !== ORIGIN_LOCAL && e !== undefined) this.clock.observe(e.h)
    // in last-writer-wins collections a newer entry elsewhere makes ours garbage; registry entries are trusted only
    // from their own writer, and task entries are each writer's own aspects of the task, so neither is shadowed
    if (doc.writer !== this.selfId && e !== undefined && LWW_COLLECTIONS.has(c)) {
      const mine = this.own.get(c, key)
      if (mine !== undefined && compareStamps(e.h, mine.h) > 0) this.shadowed.add(`${c}\u0000${key}`)
    }
    if (c === 'forgotten' || c === 'registry') queueMicrotask(() => { this.applyForgets() })
    this.emitSafe('change', { collection: c, key, writer: doc.writer, local: origin === ORIGIN_LOCAL })
  }

  private emitSafe<K extends keyof StateEvents> (event: K, ...args: StateEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args)
    } catch (err) {
      this.log.error({ err, event }, 'state listener failed')
    }
  }

  /**
   * A write after a quiet spell goes out within a couple of ms; under load, batches are spaced by how much the last
   * one carried (up to PUSH_MAX_SPACING_MS), so the messages to peers stay few whatever the write rate, while a
   * lone write is not held back.
   */
  private scheduleFlush (): void {
    if (this.flushTimer !== undefined) return
    const sinceLast = Date.now() - this.lastFlushAt
    // the more the last batch carried, the longer the next one waits: up to PUSH_MAX_SPACING_MS
    const spacing = Math.min(PUSH_MAX_SPACING_MS, this.lastBatchSize * PUSH_SPACING_PER_UPDATE_MS)
    const wait = Math.max(this.init.flushIntervalMs ?? 2, spacing - sinceLast)
    this.flushTimer = setTimeout(() => { void this.flush() }, wait)
  }

  /**
   * Sends a batch of this node's updates to every connected peer (one copy each). A peer whose stream is full or not
   * open yet misses it; the gap it sees in our next push starts its catch-up, and if no push follows soon it is nudged
   * (an empty update, which also starts a catch-up), so a lone missed write waits milliseconds, not an anti-entropy
   * round.
   */
  private async publish (msg: StateUpdate): Promise<void> {
    const rpc = this.components.mesh.rpc
    for (const peer of this.components.mesh.connections()) {
      const sent = rpc.notify(peer, StatePush, msg)
      this.m.pushes.inc({ outcome: sent ? 'sent' : 'skipped' })
      if (sent) continue
      this.behind.add(peer)
      this.openChannel(peer)
    }
    if (this.behind.size > 0) this.scheduleNudge()
    this.m.flushes.inc()
  }

  /** No stream to the peer yet (a fresh connection): open one for what comes next. */
  private openChannel (peer: NodeId): void {
    const rpc = this.components.mesh.rpc
    if (!rpc.hasChannel(peer)) rpc.ensureChannel(peer).catch(() => {})
  }

  private scheduleNudge (): void {
    if (this.nudgeTimer !== undefined || !this.running) return
    this.nudgeTimer = setTimeout(() => {
      this.nudgeTimer = undefined
      const rpc = this.components.mesh.rpc
      const connected = new Set(this.components.mesh.connections())
      for (const peer of this.behind) {
        if (!connected.has(peer)) { this.behind.delete(peer); continue } // it catches up when it reconnects
        if (rpc.notify(peer, StatePush, { w: this.selfId, g: this.own.gen, u: EMPTY_UPDATE })) {
          this.behind.delete(peer)
          this.m.pushes.inc({ outcome: 'nudged' })
        } else {
          this.openChannel(peer)
        }
      }
      if (this.behind.size > 0) this.scheduleNudge()
    }, jitter(NUDGE_RETRY_MS, 0.3))
    this.nudgeTimer.unref()
  }

  /** A peer's update: taken only from its writer (the connection proves who sent it), checked, then applied. */
  private onPush (msg: StateUpdate, from: NodeId): void {
    if (msg.w !== from) {
      this.m.rejected.inc({ reason: 'not-writer' })
      if (this.limiter.allow(`not-writer:${from}`)) this.log.warn({ peer: from, writer: msg.w }, 'dropped a state update pushed by a peer that is not its writer (logged once a minute per peer)')
      return
    }
    if (msg.u.byteLength > STATE_BATCH_MAX_BYTES * 2) { this.reject('too-large', from); return }
    try {
      checkUpdate(msg.u)
    } catch (err) {
      this.reject('bad-update', from, err)
      return
    }
    const needSync = this.applyRecord(msg, ORIGIN_REMOTE)
    this.walQueue.push(msg)
    this.m.applied.inc({ source: 'push' })
    this.scheduleFlush()
    if (needSync) this.syncSoon(from)
  }

  private reject (reason: string, from: NodeId, err?: unknown): void {
    this.m.rejected.inc({ reason })
    if (this.limiter.allow(`reject:${from}`)) this.log.warn({ peer: from, reason, err: err === undefined ? undefined : (err as Error).message }, 'dropped an invalid state update from a peer (logged once a minute per peer)')
  }

  /** Applies one writer update at its generation; returns true when the replica needs a catch-up. */
  private applyRecord (rec: DocRecord, origin: Origin): boolean {
    let slot = this.slots.get(rec.w)
    if (slot === undefined) {
      slot = { current: this.newDoc(rec.w, rec.g) }
      this.slots.set(rec.w, slot)
    } else if (rec.g > slot.current.gen) {
      slot.previous = origin === ORIGIN_LOAD ? undefined : slot.current
      if (origin === ORIGIN_LOAD) slot.current.doc.destroy()
      slot.current = this.newDoc(rec.w, rec.g)
    } else if (rec.g < slot.current.gen) {
      return false
    }
    try {
      slot.current.apply(rec.u, origin)
    } catch (err) {
      this.m.rejected.inc({ reason: 'apply-failed' })
      if (this.limiter.allow(`apply:${rec.w}`)) this.log.warn({ writer: rec.w, err }, 'a state update failed to apply; catching up instead')
      return true
    }
    if (origin === ORIGIN_LOAD) this.m.applied.inc({ source: 'load' })
    return slot.previous !== undefined || isEmptyUpdate(rec.u) || slot.current.incomplete()
  }

  private readonly onConnect = (peer: NodeId): void => {
    setTimeout(() => { this.syncSoon(peer) }, jitter(100, 0.5)).unref()
  }

  private antiEntropy (): void {
    const peers = this.components.mesh.connections()
    if (peers.length === 0) return
    this.syncSoon(peers[Math.floor(Math.random() * peers.length)] as NodeId)
  }

  /** Pulls what this node lacks from a peer; concurrent calls for the same peer are merged. */
  syncSoon (peer: NodeId): void {
    if (!this.running) return
    if (this.syncing.has(peer)) { this.syncAgain.add(peer); return }
    const p = this.syncFrom(peer).finally(() => {
      this.syncing.delete(peer)
      if (this.syncAgain.delete(peer)) this.syncSoon(peer)
    })
    this.syncing.set(peer, p)
  }

  /** One catch-up with a peer: send our state vectors, apply what comes back, repeat while it says there is more. */
  async syncFrom (peer: NodeId): Promise<void> {
    try {
      for (let round = 0; round < SYNC_MAX_ROUNDS; round++) {
        const docs: Record<string, { g: number, sv: Uint8Array }> = {}
        for (const [w, slot] of this.slots) docs[w] = { g: slot.current.gen, sv: slot.current.stateVector() }
        const res: SyncResponse = await this.components.mesh.rpc.request(peer, StateSync, { docs, maxBytes: SYNC_MAX_BYTES }, { timeoutMs: SYNC_TIMEOUT_MS })
        for (const rec of res.updates) {
          try {
            checkUpdate(rec.u)
          } catch (err) {
            this.reject('bad-update', peer, err)
            continue
          }
          this.m.syncBytes.inc(rec.u.byteLength)
          this.applyRecord(rec, ORIGIN_REMOTE)
          this.walQueue.push(rec)
          this.m.applied.inc({ source: 'sync' })
        }
        // a new generation is complete once a peer that holds it has given us everything it has
        for (const [w, g] of Object.entries(res.gens)) {
          const slot = this.slots.get(w)
          if (slot?.previous !== undefined && slot.current.gen === g && !slot.current.incomplete()) {
            slot.previous.doc.destroy()
            slot.previous = undefined
          }
        }
        if (res.updates.length > 0) this.scheduleFlush()
        if (!res.more) break
      }
      this.m.syncs.inc({ outcome: 'ok' })
    } catch (err) {
      this.m.syncs.inc({ outcome: toGridError(err).code })
      this.log.debug({ peer, err: (err as Error).message }, 'catch-up failed')
    }
  }

  private serveSync (docs: Record<string, { g: number, sv: Uint8Array }>, maxBytes: number): SyncResponse {
    const updates: SyncResponse['updates'] = []
    const gens: Record<string, number> = {}
    let bytes = 0
    let more = false
    for (const [w, slot] of this.slots) {
      const cur = slot.current
      gens[w] = cur.gen
      if (more) continue
      const theirs = docs[w]
      let u: Uint8Array
      if (theirs === undefined || theirs.g < cur.gen) u = cur.encode()
      else if (theirs.g === cur.gen) {
        try {
          u = cur.encode(theirs.sv)
        } catch {
          u = cur.encode()
        }
        if (isEmptyUpdate(u)) continue
      } else continue
      if (bytes > 0 && bytes + u.byteLength > maxBytes) { more = true; continue }
      updates.push({ w, g: cur.gen, u })
      bytes += u.byteLength
    }
    return { updates, gens, more }
  }

  /** Removes what this node's own document no longer needs, and starts a new generation when tombstones pile up. */
  async maintain (): Promise<void> {
    const now = Date.now()
    const own = this.own
    const minAge = this.init.tombstoneMinAgeMs ?? 60_000
    const drop: Array<[CollectionName, string]> = []
    for (const s of this.shadowed) {
      const [c, key] = s.split('\u0000') as [CollectionName, string]
      drop.push([c, key])
    }
    this.shadowed.clear()
    for (const c of COLLECTIONS) {
      const collector = this.collectors.get(c)
      for (const [key, e] of own.map(c)) {
        if (e.x !== undefined && e.x <= now) drop.push([c, key])
        else if (e.d === 1 && now - e.h[0] > minAge && !this.olderElsewhere(c, key, e.h)) drop.push([c, key])
        else if (collector !== undefined && e.d !== 1 && collector(key, e, now)) drop.push([c, key])
      }
    }
    if (drop.length > 0) {
      own.doc.transact(() => {
        for (const [c, key] of drop) {
          const e = own.get(c, key)
          if (e === undefined) continue
          // a shadowed entry goes only if something newer really exists elsewhere
          own.map(c).delete(key)
        }
      }, ORIGIN_LOCAL)
    }
    if (own.garbage > Math.max(REGEN_MIN_GARBAGE, (this.init.regenerateFactor ?? 4) * own.size())) await this.regenerate()
    if (this.files.wantsCompaction()) await this.files.compact(this.records())
  }

  /** True when another writer still holds an entry for the key older than `h` (a deletion mark must outlive it). */
  private olderElsewhere (c: CollectionName, key: string, h: Stamp): boolean {
    for (const [w, slot] of this.slots) {
      if (w === this.selfId) continue
      const e = slot.current.get(c, key)
      if (e !== undefined && e.d !== 1 && compareStamps(e.h, h) < 0) return true
    }
    return false
  }

  /** Starts a new generation of this node's document holding only live entries, and tells the peers. */
  async regenerate (): Promise<void> {
    await this.flush()
    const old = this.own
    const next = this.newDoc(this.selfId, old.gen + 1)
    next.doc.transact(() => {
      for (const c of COLLECTIONS) for (const [key, e] of old.map(c)) next.map(c).set(key, e)
    }, ORIGIN_LOAD)
    const slot = this.slots.get(this.selfId) as Slot
    slot.current = next
    const full = next.encode()
    this.m.regenerations.inc()
    this.log.info({ generation: next.gen, entries: next.size(), droppedTombstones: old.garbage, bytes: full.byteLength }, 'started a new generation of this node\'s state document')
    old.doc.destroy()
    await this.files.compact(this.records())
    // small enough: push it whole; else an empty nudge, and peers fetch it by catch-up
    await this.publish({ w: this.selfId, g: next.gen, u: full.byteLength <= STATE_BATCH_MAX_BYTES ? full : Y.encodeStateAsUpdate(new Y.Doc()) })
  }

  /** Drops the documents of nodes forgotten after their last registry entry (never this node's). */
  private applyForgets (): void {
    for (const [id, f] of this.entries('forgotten')) {
      if (id === this.selfId) continue
      const slot = this.slots.get(id)
      if (slot === undefined) continue
      const reg = slot.current.get('registry', id)
      if (reg === undefined || compareStamps(reg.h, f.stamp) < 0) this.dropWriter(id)
    }
  }

  private records (): DocRecord[] {
    return [...this.slots.entries()].map(([w, s]) => ({ w, g: s.current.gen, u: s.current.encode() }))
  }
}

function wins (a: Entry, aw: NodeId, b: Entry, bw: NodeId): boolean {
  const c = compareStamps(a.h, b.h)
  return c > 0 || (c === 0 && aw > bw)
}

function toStored<T> (key: string, e: Entry, writer: NodeId): StoredEntry<T> {
  const s: StoredEntry<T> = { key, value: e.v as T, writer, stamp: [e.h[0], e.h[1]] }
  if (e.x !== undefined) s.expiresAt = e.x
  return s
}

/** Groups updates into merged batches of at most `max` bytes (a single larger update goes alone). */
function batches (updates: Uint8Array[], max: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let group: Uint8Array[] = []
  let size = 0
  for (const u of updates) {
    if (group.length > 0 && size + u.byteLength > max) {
      out.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
      group = []
      size = 0
    }
    group.push(u)
    size += u.byteLength
  }
  if (group.length > 0) out.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
  return out.flatMap(u => u.byteLength > max ? [Y.encodeStateAsUpdate(new Y.Doc())] : [u])
}
