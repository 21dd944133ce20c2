/**
 * Keeps this node's own document bounded, and drops forgotten nodes' documents. Every round it removes its entries
 * that a newer one elsewhere shadows (last-writer-wins collections only), expired entries, deletion marks old enough
 * that no peer can still hold what they delete, and entries a registered collector lets go (finished tasks past
 * their retention, say); when tombstones outgrow the live entries it starts a new generation holding live entries
 * only (as signed records of bounded size: the snapshot that begins it) and tells the peers; it does so too when its
 * record log outgrows the live data, which bounds what catch-up serves of this writer. A forget is honoured only from
 * a registered member, never about a node this node sees alive or suspect. It writes only this node's own document:
 * it must never change another writer's.
 */
import type { Logger } from 'pino'
import { COLLECTIONS, STATE_BATCH_MAX_BYTES, forgetValue, upgradeEntry, type CollectionName, type Entry, type RawEntry } from '../../proto/index.ts'
import type { MemberState, NodeId } from '../interface/index.ts'
import { repeat } from '../util/index.ts'
import { compareStamps, type Stamp } from './hlc.ts'
import type { MergedView } from './merged-view.ts'
import type { StateMetrics } from './metrics.ts'
import type { Outbox } from './outbox.ts'
import type { StateFiles } from './persistence.ts'
import { RecordLog } from './record-log.ts'
import type { Replication } from './replication.ts'
import type { SignedRecord } from './signing.ts'
import { EMPTY_UPDATE, ORIGIN_LOAD, ORIGIN_LOCAL, type Origin, type WriterDoc } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

/** Decides whether this node's own entry should be collected now (retention of finished tasks, and so on). */
export type Collector = (key: string, entry: Entry, now: number) => boolean

export interface MaintenanceComponents {
  selfId: NodeId
  writers: WriterSet
  view: Pick<MergedView, 'groupAll'>
  outbox: Pick<Outbox, 'flush' | 'signOwn'>
  replication: Pick<Replication, 'publish'>
  files: Pick<StateFiles, 'compact' | 'wantsCompaction'>
  metrics: Pick<StateMetrics, 'regenerations'>
  log: Logger
  /** Drops a forgotten writer's documents (and says so). */
  dropWriter: (writer: NodeId) => boolean
}

/** How this node sees a member (membership's view): a forget about one alive or suspect here is ignored. */
export interface ForgetWitness { state: (id: NodeId) => MemberState | undefined }

export interface MaintenanceInit {
  /** How long this node's deletion marks are kept at least (peers that were away must see them). */
  tombstoneMinAgeMs?: number
  /** How often this node collects its own document. */
  maintenanceIntervalMs?: number
  /** A new generation starts when tombstones exceed this many times the live entries (and REGEN_MIN_GARBAGE). */
  regenerateFactor?: number
}

export const DEFAULT_MAINTENANCE_INTERVAL_MS = 1_000
export const DEFAULT_TOMBSTONE_MIN_AGE_MS = 60_000
export const DEFAULT_REGENERATE_FACTOR = 4
/** Fewer tombstones than this never start a new generation (a small document is cheap to keep as it is). */
const REGEN_MIN_GARBAGE = 1000
/** A new generation starts when this node's record log passes this many bytes... */
const REGEN_MIN_LOG_BYTES = 16 * 1024 * 1024
/** ...and this many times the snapshot that began the generation (so a growing document regenerates geometrically seldom). */
const REGEN_LOG_FACTOR = 2
/** A new generation's snapshot is split into signed records of about this many bytes of entries (JSON), each far below STATE_RECORD_MAX_BYTES. */
const SNAPSHOT_RECORD_BYTES = 1024 * 1024
/** In these collections a newer entry elsewhere makes ours garbage. */
const LWW_COLLECTIONS: ReadonlySet<CollectionName> = new Set(['sessions', 'forgotten'])

export class Maintenance {
  private readonly collectors = new Map<CollectionName, Collector>()
  /**
   * This node's entries that a newer one elsewhere shadowed when last seen: `collection NUL key`. A mark is only a
   * hint: this node may have written the key again since, so `maintain` checks again before it removes anything.
   */
  private readonly shadowed = new Set<string>()
  private loop?: { stop: () => void }
  /** Bytes of the snapshot that began this node's current generation. */
  private genBaseBytes = 0
  /** Writers some node asked to forget (when last looked): a change from one of them looks at forgets again. */
  private forgottenIds = new Set<NodeId>()
  private forgetsQueued = false
  private members?: ForgetWitness

  constructor (private readonly c: MaintenanceComponents, private readonly init: MaintenanceInit) {}

  /** Membership's view, once it exists: until then no member counts as alive (forgets loaded from disk apply). */
  setMembers (members: ForgetWitness): void {
    this.members = members
  }

  start (): void {
    const onError = (err: unknown): void => { this.c.log.error({ err }, 'state loop failed') }
    this.loop = repeat(async () => { await this.maintain() }, this.init.maintenanceIntervalMs ?? DEFAULT_MAINTENANCE_INTERVAL_MS, onError, { jitter: 0.1 })
  }

  stop (): void {
    this.loop?.stop()
    this.loop = undefined
  }

  /** Registers the collector that decides which of this node's own entries in a collection may go. */
  setCollector (collection: CollectionName, fn: Collector): void {
    this.collectors.set(collection, fn)
  }

  /** A key changed in some writer's document: note what it makes garbage here, and look for forgotten nodes. */
  noteChange (doc: WriterDoc, c: CollectionName, key: string, e: Entry | undefined, origin: Origin): void {
    // in last-writer-wins collections a newer entry elsewhere makes ours garbage; registry entries are trusted only
    // from their own writer, and task entries are each writer's own aspects of the task, so neither is shadowed
    if (LWW_COLLECTIONS.has(c)) {
      const mark = `${c}\u0000${key}`
      if (doc.writer !== this.c.selfId) {
        const mine = this.c.writers.own.get(c, key)
        if (e !== undefined && mine !== undefined && compareStamps(e.stamp, mine.stamp) > 0) this.shadowed.add(mark)
      } else if (origin === ORIGIN_LOCAL) {
        // this node wrote (or removed) the key: what an older entry of ours was shadowed by says nothing about this
        // one (which is newer than anything seen, unless a peer's clock runs too far ahead to be followed)
        const mine = this.c.writers.own.get(c, key)
        if (mine !== undefined && this.newerElsewhere(c, key, mine.stamp)) this.shadowed.add(mark)
        else this.shadowed.delete(mark)
      }
    }
    if (c === 'forgotten' || c === 'registry' || this.forgottenIds.has(doc.writer)) this.queueForgets()
  }

  private queueForgets (): void {
    if (this.forgetsQueued) return
    this.forgetsQueued = true
    queueMicrotask(() => { this.forgetsQueued = false; this.applyForgets() })
  }

  /** Removes what this node's own document no longer needs, and starts a new generation when tombstones pile up. */
  async maintain (): Promise<void> {
    const now = Date.now()
    const own = this.c.writers.own
    const minAge = this.init.tombstoneMinAgeMs ?? DEFAULT_TOMBSTONE_MIN_AGE_MS
    const drop: Array<[CollectionName, string]> = []
    const shadowed: Array<[CollectionName, string]> = []
    for (const s of this.shadowed) shadowed.push(s.split('\u0000') as [CollectionName, string])
    this.shadowed.clear()
    for (const c of COLLECTIONS) {
      const collector = this.collectors.get(c)
      for (const [key, e] of own.entries(c)) {
        if (e.expiresAt !== undefined && e.expiresAt <= now) drop.push([c, key])
        else if (e.deleted === true && now - e.stamp[0] > minAge && !this.olderElsewhere(c, key, e.stamp)) drop.push([c, key])
        else if (collector !== undefined && e.deleted !== true && collector(key, e, now)) drop.push([c, key])
      }
    }
    if (drop.length > 0 || shadowed.length > 0) {
      own.doc.transact(() => {
        for (const [c, key] of drop) {
          if (own.get(c, key) !== undefined) own.map(c).delete(key)
        }
        // a shadowed entry goes only if something newer really exists elsewhere now: since it was marked, this node
        // may have written the key again, or the newer writer may have been dropped
        for (const [c, key] of shadowed) {
          const e = own.get(c, key)
          if (e !== undefined && this.newerElsewhere(c, key, e.stamp)) own.map(c).delete(key)
        }
      }, ORIGIN_LOCAL)
    }
    const log = this.c.writers.ownLog
    const tooMuchGarbage = own.garbage > Math.max(REGEN_MIN_GARBAGE, (this.init.regenerateFactor ?? DEFAULT_REGENERATE_FACTOR) * own.size())
    const logTooLong = log.bytes > Math.max(REGEN_MIN_LOG_BYTES, REGEN_LOG_FACTOR * this.genBaseBytes)
    if (tooMuchGarbage || logTooLong) await this.regenerate()
    if (this.c.files.wantsCompaction()) await this.c.files.compact(this.c.writers.records())
  }

  /** Starts a new generation of this node's document holding only live entries, and tells the peers. */
  async regenerate (): Promise<void> {
    await this.c.outbox.flush()
    const records = this.startGeneration()
    const bytes = records.reduce((n, r) => n + r.u.byteLength, 0)
    await this.c.files.compact(this.c.writers.records())
    // small enough: push it whole; else an empty nudge, and peers fetch it by catch-up
    if (bytes <= STATE_BATCH_MAX_BYTES) for (const rec of records) await this.c.replication.publish(rec)
    else await this.c.replication.publish({ w: this.c.selfId, g: this.c.writers.own.gen, u: EMPTY_UPDATE })
  }

  /**
   * Makes a new generation of this node's document holding only live entries (named: entries of the previous release
   * are upgraded), begun by a signed snapshot split into records of about SNAPSHOT_RECORD_BYTES. Returns those
   * records; the caller persists and publishes them.
   */
  startGeneration (): SignedRecord[] {
    const old = this.c.writers.own
    // numbered by the clock (and above the last): never one a peer may hold from before a crash here
    const next = this.c.writers.newDoc(this.c.selfId, Math.max(old.gen + 1, Date.now()))
    const parts: Uint8Array[] = []
    next.doc.on('update', (u: Uint8Array, origin: unknown) => { if (origin === ORIGIN_LOAD) parts.push(u) })
    let chunk: Array<[CollectionName, string, RawEntry]> = []
    let size = 0
    const write = (): void => {
      if (chunk.length === 0) return
      const entries = chunk
      next.doc.transact(() => { for (const [c, key, e] of entries) next.map(c).set(key, e) }, ORIGIN_LOAD)
      chunk = []
      size = 0
    }
    for (const c of COLLECTIONS) {
      for (const [key, raw] of old.map(c)) {
        const e = upgradeEntry(c, raw) ?? raw
        const bytes = key.length + (JSON.stringify(e)?.length ?? 0)
        if (size > 0 && size + bytes > SNAPSHOT_RECORD_BYTES) write()
        chunk.push([c, key, e])
        size += bytes
      }
    }
    write()
    this.c.writers.replaceOwn(next, new RecordLog(next.gen))
    const records = parts.map(u => this.c.outbox.signOwn(next.gen, u))
    this.genBaseBytes = records.reduce((n, r) => n + r.u.byteLength, 0)
    this.c.metrics.regenerations.inc()
    this.c.log.info({ generation: next.gen, entries: next.size(), droppedTombstones: old.garbage, bytes: this.genBaseBytes, records: records.length }, 'started a new generation of this node\'s state document')
    old.doc.destroy()
    return records
  }

  /** True when another writer holds an entry for the key (a deletion mark included) newer than `h`, as reads see it. */
  private newerElsewhere (c: CollectionName, key: string, h: Stamp): boolean {
    for (const [w, slot] of this.c.writers) {
      if (w === this.c.selfId) continue
      const e = slot.current.get(c, key) ?? slot.previous?.get(c, key)
      if (e !== undefined && compareStamps(e.stamp, h) > 0) return true
    }
    return false
  }

  /** True when another writer still holds an entry for the key older than `h` (a deletion mark must outlive it). */
  private olderElsewhere (c: CollectionName, key: string, h: Stamp): boolean {
    for (const [w, slot] of this.c.writers) {
      if (w === this.c.selfId) continue
      const e = slot.current.get(c, key)
      if (e !== undefined && e.deleted !== true && compareStamps(e.stamp, h) < 0) return true
    }
    return false
  }

  /**
   * Drops the documents of nodes forgotten after their last registry entry (never this node's). A forget counts only
   * when its writer is a registered member (its own registry entry is valid) other than the node it names, and that
   * node is not alive or suspect here: a peer cannot make every node drop a live member's documents.
   */
  private applyForgets (): void {
    const ids = new Set<NodeId>()
    for (const [id, entries] of this.c.view.groupAll('forgotten')) {
      ids.add(id)
      if (id === this.c.selfId) continue
      const slot = this.c.writers.get(id)
      if (slot === undefined) continue
      const state = this.members?.state(id)
      if (state === 'alive' || state === 'suspect') continue
      let newest: Stamp | undefined
      for (const f of entries) {
        if (f.writer === id || !forgetValue.check(f.value) || !this.registered(f.writer)) continue
        if (newest === undefined || compareStamps(f.stamp, newest) > 0) newest = f.stamp
      }
      if (newest === undefined) continue
      const reg = slot.current.get('registry', id)
      if (reg === undefined || compareStamps(reg.stamp, newest) < 0) this.c.dropWriter(id)
    }
    this.forgottenIds = ids
  }

  /** True when the writer's own document holds a registry entry about it (a member, not a bare writer). */
  private registered (w: NodeId): boolean {
    const e = this.c.writers.get(w)?.current.get('registry', w)
    return e !== undefined && e.deleted !== true
  }
}
