/**
 * Keeps this node's own document bounded, and drops forgotten nodes' documents. Every round it removes its entries
 * that a newer one elsewhere shadows (last-writer-wins collections only), expired entries, deletion marks old enough
 * that no peer can still hold what they delete, and entries a registered collector lets go (finished tasks past
 * their retention, say); when tombstones outgrow the live entries it starts a new generation holding live entries
 * only and tells the peers. It writes only this node's own document: it must never change another writer's.
 */
import type { Logger } from 'pino'
import { COLLECTIONS, STATE_BATCH_MAX_BYTES, upgradeEntry, type CollectionName, type Entry } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { repeat } from '../util/index.ts'
import { compareStamps, type Stamp } from './hlc.ts'
import type { MergedView } from './merged-view.ts'
import type { StateMetrics } from './metrics.ts'
import type { Outbox } from './outbox.ts'
import type { StateFiles } from './persistence.ts'
import type { Replication } from './replication.ts'
import { EMPTY_UPDATE, ORIGIN_LOAD, ORIGIN_LOCAL, type Origin, type WriterDoc } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

/** Decides whether this node's own entry should be collected now (retention of finished tasks, and so on). */
export type Collector = (key: string, entry: Entry, now: number) => boolean

export interface MaintenanceComponents {
  selfId: NodeId
  writers: WriterSet
  view: Pick<MergedView, 'entries'>
  outbox: Pick<Outbox, 'flush'>
  replication: Pick<Replication, 'publish'>
  files: Pick<StateFiles, 'compact' | 'wantsCompaction'>
  metrics: Pick<StateMetrics, 'regenerations'>
  log: Logger
  /** Drops a forgotten writer's documents (and says so). */
  dropWriter: (writer: NodeId) => boolean
}

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

  constructor (private readonly c: MaintenanceComponents, private readonly init: MaintenanceInit) {}

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
    if (c === 'forgotten' || c === 'registry') queueMicrotask(() => { this.applyForgets() })
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
    if (own.garbage > Math.max(REGEN_MIN_GARBAGE, (this.init.regenerateFactor ?? DEFAULT_REGENERATE_FACTOR) * own.size())) await this.regenerate()
    if (this.c.files.wantsCompaction()) await this.c.files.compact(this.c.writers.records())
  }

  /** Starts a new generation of this node's document holding only live entries, and tells the peers. */
  async regenerate (): Promise<void> {
    await this.c.outbox.flush()
    const old = this.c.writers.own
    const next = this.c.writers.newDoc(this.c.selfId, old.gen + 1)
    next.doc.transact(() => {
      for (const c of COLLECTIONS) for (const [key, e] of old.map(c)) next.map(c).set(key, upgradeEntry(c, e) ?? e)
    }, ORIGIN_LOAD)
    this.c.writers.replaceOwn(next)
    const full = next.encode()
    this.c.metrics.regenerations.inc()
    this.c.log.info({ generation: next.gen, entries: next.size(), droppedTombstones: old.garbage, bytes: full.byteLength }, 'started a new generation of this node\'s state document')
    old.doc.destroy()
    await this.c.files.compact(this.c.writers.records())
    // small enough: push it whole; else an empty nudge, and peers fetch it by catch-up
    await this.c.replication.publish({ w: this.c.selfId, g: next.gen, u: full.byteLength <= STATE_BATCH_MAX_BYTES ? full : EMPTY_UPDATE })
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

  /** Drops the documents of nodes forgotten after their last registry entry (never this node's). */
  private applyForgets (): void {
    for (const [id, f] of this.c.view.entries('forgotten')) {
      if (id === this.c.selfId) continue
      const slot = this.c.writers.get(id)
      if (slot === undefined) continue
      const reg = slot.current.get('registry', id)
      if (reg === undefined || compareStamps(reg.stamp, f.stamp) < 0) this.c.dropWriter(id)
    }
  }
}
