/**
 * The replicated state store: every node's writer documents, replicated to every node. This file is the facade and
 * the lifecycle: it builds the parts, starts and stops them in order, writes to this node's own document and hands
 * reads to the merged view. The work itself lives in one file per job:
 *
 * - writer-set.ts: every writer's documents by generation, and applying an update at its generation;
 * - merged-view.ts: reads across writers (newest hybrid-clock stamp wins; deletion marks and expiry hide a key);
 * - outbox.ts: batching this node's updates for peers, and every applied update for the write-ahead log;
 * - replication.ts: pushes to connected peers, nudges for the ones that missed a push, and peers' pushes;
 * - catch-up.ts: state-vector catch-up (`state.sync`) on connection, on a gap and every few seconds;
 * - maintenance.ts: collection, new generations when tombstones pile up, and dropping forgotten nodes;
 * - intake.ts: the check every peer's record passes first (signature, content, stamps); signing.ts: signing and
 *   verifying records; record-log.ts: the signed records held per writer; persistence.ts: snapshot and log on disk.
 *
 * It must not read or write another writer's document except through those parts, and never leaks a Y.Doc.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { STATE_BATCH_MAX_BYTES, STATE_ENTRY_MAX_BYTES, type CollectionName, type Entry } from '../../proto/index.ts'
import { TooLargeError, type NodeId, type Startable } from '../interface/index.ts'
import { LogLimiter } from '../util/index.ts'
import { CatchUp, type CatchUpInit } from './catch-up.ts'
import type { StateComponents } from './components.ts'
import { HybridClock, type Stamp } from './hlc.ts'
import { UpdateIntake } from './intake.ts'
import { Maintenance, type Collector, type ForgetWitness, type MaintenanceInit } from './maintenance.ts'
import { MergedView, type StoredEntry } from './merged-view.ts'
import { createStateMetrics } from './metrics.ts'
import { Outbox, type OutboxInit } from './outbox.ts'
import { StateFiles } from './persistence.ts'
import { RecordLog } from './record-log.ts'
import { Replication } from './replication.ts'
import type { SignedRecord } from './signing.ts'
import { ORIGIN_LOAD, ORIGIN_LOCAL, type Origin, type WriterDoc } from './writer-doc.ts'
import { WriterSet } from './writer-set.ts'

/** Where the store keeps its files, and the timings of its parts (each documented where it is used). */
export interface StateInit extends OutboxInit, CatchUpInit, MaintenanceInit {
  cluster: string
  dataDir: string
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

/** Log lines about a misbehaving peer or a failing disk are repeated at most this often (per peer, per kind). */
const LOG_EVERY_MS = 60_000

export class StateStore extends EventEmitter<StateEvents> implements Startable {
  readonly selfId: NodeId
  private readonly clock = new HybridClock()
  private readonly files: StateFiles
  private readonly log: Logger
  private readonly docs: WriterSet
  private readonly view: MergedView
  private readonly outbox: Outbox
  private readonly replication: Replication
  private readonly catchUp: CatchUp
  private readonly maintenance: Maintenance

  constructor (components: StateComponents, init: StateInit) {
    super()
    const { mesh, signer } = components
    const selfId = this.selfId = mesh.peerId
    const log = this.log = components.logger
    const files = this.files = new StateFiles(init.dataDir)
    const limiter = new LogLimiter(LOG_EVERY_MS)
    const metrics = createStateMetrics(components.registry, {
      documentBytes: () => this.documentBytes(),
      writers: () => this.docs.size,
      entries: c => this.view.count(c),
      walBytes: () => files.sizes().walBytes
    })
    // a part that calls one built after it (or the store) does so through a closure, run only once all are built
    const docs = this.docs = new WriterSet({
      selfId,
      log,
      limiter,
      metrics,
      hooks: {
        change: (doc, c, key, origin) => { this.onChange(doc, c, key, origin) },
        localUpdate: (u, gen) => { this.outbox.local(u, gen) }
      }
    })
    const view = this.view = new MergedView(docs)
    const intake = new UpdateIntake({ log, limiter, metrics, signer })
    const outbox = this.outbox = new Outbox({ selfId, writers: docs, signer, files, publish: async msg => { await this.replication.publish(msg) }, metrics, log, limiter }, init)
    const replication = this.replication = new Replication({ selfId, mesh, writers: docs, outbox, intake, metrics, log, limiter, syncSoon: peer => { this.catchUp.syncSoon(peer) } })
    this.catchUp = new CatchUp({ mesh, writers: docs, outbox, intake, metrics, log }, init)
    this.maintenance = new Maintenance({ selfId, writers: docs, view, outbox, replication, files, metrics, log, dropWriter: w => this.dropWriter(w) }, init)
  }

  /**
   * Loads the documents from disk, so the node has its state before it sees any peer. Records of the previous
   * release (unsigned) are kept for this node's own document, which then starts a new generation signed here; other
   * writers' are dropped (catch-up fetches them again, signed by their writers).
   */
  load (): { docs: number, truncatedBytes: number } {
    const loaded = this.files.load()
    let ownUnsigned = 0
    let dropped = 0
    for (const rec of [...loaded.snapshot, ...loaded.wal]) {
      if (rec.n !== undefined && rec.s !== undefined) this.docs.apply(rec as SignedRecord, ORIGIN_LOAD)
      else if (rec.w === this.selfId) { this.docs.applyOwnUnsigned(rec); ownUnsigned++ } else dropped++
    }
    if (ownUnsigned > 0) {
      // this node's own entries of the previous release (named from here on) begin a new, signed generation
      const records = this.maintenance.startGeneration()
      this.log.info({ records: ownUnsigned, generation: this.docs.own.gen, signed: records.length }, 'signed this node\'s state of the previous release in a new generation')
    } else if (this.docs.ownLog.size > 0 && !loaded.clean) {
      // after a crash the last records this node signed may be lost here and held by peers: a new generation, so no
      // sequence number is signed twice for different updates (a graceful stop leaves a clean snapshot: no need)
      this.maintenance.startGeneration()
    } else if (this.docs.ownLog.size === 0) {
      // nothing of its own on disk (a new node, or state lost while the identity stayed): a generation no peer can
      // hold records of yet, so nothing it writes now is taken for a record peers already have
      const gen = Date.now()
      this.docs.replaceOwn(this.docs.newDoc(this.selfId, gen), new RecordLog(gen))
    }
    if (dropped > 0) this.log.info({ records: dropped }, 'dropped unsigned state records of other writers (from the previous release); they are fetched again from peers, signed')
    if (loaded.truncatedBytes > 0) this.log.warn({ bytes: loaded.truncatedBytes }, 'cut a torn tail off the state log (writes of the last moment before a crash)')
    this.log.info({ writers: this.docs.size, entries: this.docs.own.size(), snapshot: loaded.snapshot.length, logRecords: loaded.wal.length }, 'state loaded')
    return { docs: this.docs.size, truncatedBytes: loaded.truncatedBytes }
  }

  /** Membership's view of the nodes, for forgets (one about a node alive or suspect here is ignored). */
  setMembers (members: ForgetWitness): void {
    this.maintenance.setMembers(members)
  }

  async start (): Promise<void> {
    this.outbox.start()
    this.replication.start()
    this.catchUp.start()
    this.maintenance.start()
    await this.files.compact(this.docs.records())
  }

  async stop (): Promise<void> {
    this.catchUp.stop()
    this.maintenance.stop()
    this.outbox.stop()
    this.replication.stop()
    await this.outbox.flush()
    await this.files.compact(this.docs.records(), { clean: true })
    await this.files.close()
  }

  /** Registers the collector that decides which of this node's own entries in a collection may go. */
  setCollector (collection: CollectionName, fn: Collector): void {
    this.maintenance.setCollector(collection, fn)
  }

  // ---- writes (this node's document only) ----

  /** Writes an entry; `ttlMs` makes it expire on every node at the same moment. Returns its stamp. */
  set (collection: CollectionName, key: string, value: unknown, opts: { ttlMs?: number | null } = {}): Stamp {
    const bytes = Buffer.byteLength(JSON.stringify(value) ?? '')
    if (bytes > STATE_ENTRY_MAX_BYTES) throw new TooLargeError(`a ${collection} entry of ${bytes} bytes is over the state's limit of ${STATE_ENTRY_MAX_BYTES} bytes (STATE_ENTRY_MAX_BYTES); make it smaller`)
    const h = this.clock.now()
    const e: Entry = { value, stamp: h }
    if (opts.ttlMs !== undefined && opts.ttlMs !== null) e.expiresAt = Date.now() + opts.ttlMs
    const own = this.docs.own
    own.doc.transact(() => { own.map(collection).set(key, e) }, ORIGIN_LOCAL)
    return h
  }

  /**
   * Writes several entries of a collection (as set, without expiry) in as few transactions as keep each one's update
   * under half STATE_BATCH_MAX_BYTES: one update, merged and signed once, where a set each would make one per entry
   * (a job's progress chunks, a thousand at a time).
   */
  setMany (collection: CollectionName, entries: Iterable<readonly [string, unknown]>): void {
    const own = this.docs.own
    let group: Array<[string, Entry]> = []
    let groupBytes = 0
    const write = (): void => {
      const g = group
      group = []
      groupBytes = 0
      if (g.length > 0) own.doc.transact(() => { for (const [key, e] of g) own.map(collection).set(key, e) }, ORIGIN_LOCAL)
    }
    for (const [key, value] of entries) {
      const bytes = Buffer.byteLength(JSON.stringify(value) ?? '')
      if (bytes > STATE_ENTRY_MAX_BYTES) throw new TooLargeError(`a ${collection} entry of ${bytes} bytes is over the state's limit of ${STATE_ENTRY_MAX_BYTES} bytes (STATE_ENTRY_MAX_BYTES); make it smaller`)
      if (groupBytes + bytes > STATE_BATCH_MAX_BYTES / 2) write()
      group.push([key, { value, stamp: this.clock.now() }])
      groupBytes += bytes
    }
    write()
  }

  /** Deletes a key cluster-wide (a deletion mark that wins over older entries). False if nobody has it. */
  delete (collection: CollectionName, key: string): boolean {
    if (this.lookup(collection, key) === undefined) return false
    const e: Entry = { value: null, stamp: this.clock.now(), deleted: true }
    const own = this.docs.own
    own.doc.transact(() => { own.map(collection).set(key, e) }, ORIGIN_LOCAL)
    return true
  }

  // ---- reads (merged over every writer: see merged-view.ts) ----

  /** The winning live entry for a key, or undefined (absent, deleted or expired). */
  lookup<T = unknown> (collection: CollectionName, key: string, now = Date.now()): StoredEntry<T> | undefined {
    return this.view.lookup<T>(collection, key, now)
  }

  /** Every live key of a collection with its winning entry. */
  entries<T = unknown> (collection: CollectionName, now = Date.now()): Map<string, StoredEntry<T>> {
    return this.view.entries<T>(collection, now)
  }

  /** Every writer's live entry for a key (for collections whose writers hold different parts of a record). */
  lookupAll<T = unknown> (collection: CollectionName, key: string, now = Date.now()): Array<StoredEntry<T>> {
    return this.view.lookupAll<T>(collection, key, now)
  }

  /** Every key of a collection (that `keep` keeps, when given: the others are not read) with every writer's live entry for it. */
  groupAll<T = unknown> (collection: CollectionName, now = Date.now(), keep?: (key: string) => boolean): Map<string, Array<StoredEntry<T>>> {
    return this.view.groupAll<T>(collection, now, keep)
  }

  /** The entry a given writer holds for a key (registry entries are only trusted from their own writer). */
  entryOf<T = unknown> (writer: NodeId, collection: CollectionName, key: string): StoredEntry<T> | undefined {
    return this.view.entryOf<T>(writer, collection, key)
  }

  writers (): NodeId[] {
    return this.docs.ids()
  }

  /** Drops a writer's documents here (the node was forgotten). */
  dropWriter (writer: NodeId): boolean {
    if (!this.docs.drop(writer)) return false
    this.log.info({ writer }, 'dropped a forgotten node\'s documents')
    this.emitSafe('writer:dropped', writer)
    return true
  }

  /** Bytes of the signed updates held for every writer's current generation (see WriterSet.documentBytes). */
  documentBytes (): number {
    return this.docs.documentBytes()
  }

  /** Encoded size of this node's own document now (for benchmarks and tests: not cached). */
  ownDocumentBytes (): number {
    return this.docs.own.encode().byteLength
  }

  /** Stats for benchmarks and `gridctl status`. */
  stats (): { writers: number, ownEntries: number, ownGarbage: number, ownGeneration: number } {
    const own = this.docs.own
    return { writers: this.docs.size, ownEntries: own.size(), ownGarbage: own.garbage, ownGeneration: own.gen }
  }

  /** Waits until every local write so far has been pushed to peers and logged. */
  async flush (): Promise<void> {
    await this.outbox.flush()
  }

  /** Pulls what this node lacks from a peer soon; concurrent calls for the same peer are merged. */
  syncSoon (peer: NodeId): void {
    this.catchUp.syncSoon(peer)
  }

  /** One catch-up with a peer, now. */
  async syncFrom (peer: NodeId): Promise<void> {
    await this.catchUp.syncFrom(peer)
  }

  /** Removes what this node's own document no longer needs, and starts a new generation when tombstones pile up. */
  async maintain (): Promise<void> {
    await this.maintenance.maintain()
  }

  /** Starts a new generation of this node's document holding only live entries, and tells the peers. */
  async regenerate (): Promise<void> {
    await this.maintenance.regenerate()
  }

  private onChange (doc: WriterDoc, c: CollectionName, key: string, origin: Origin): void {
    const e = doc.get(c, key)
    if (origin !== ORIGIN_LOCAL && e !== undefined) this.clock.observe(e.stamp)
    this.maintenance.noteChange(doc, c, key, e, origin)
    this.emitSafe('change', { collection: c, key, writer: doc.writer, local: origin === ORIGIN_LOCAL })
  }

  /** A listener that throws must not break a write or an update from a peer: it is logged here. */
  private emitSafe<K extends keyof StateEvents> (event: K, ...args: StateEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args)
    } catch (err) {
      this.log.error({ err, event }, 'state listener failed')
    }
  }
}
