/**
 * Reads across every writer's documents. For each key the entry with the newest hybrid-clock stamp wins (then the
 * higher writer id); a deletion mark or an expired entry hides the key. A writer's previous generation is read only
 * for keys its current one lacks. This is read-only: it must never write to a document.
 */
import type { CollectionName, Entry } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { compareStamps, type Stamp } from './hlc.ts'
import type { WriterSet } from './writer-set.ts'

export interface StoredEntry<T = unknown> {
  key: string
  value: T
  writer: NodeId
  stamp: Stamp
  expiresAt?: number
}

export class MergedView {
  constructor (private readonly writers: WriterSet) {}

  /** The winning live entry for a key, or undefined (absent, deleted or expired). */
  lookup<T = unknown> (collection: CollectionName, key: string, now = Date.now()): StoredEntry<T> | undefined {
    let best: { e: Entry, w: NodeId } | undefined
    for (const [w, slot] of this.writers) {
      const e = slot.current.get(collection, key) ?? slot.previous?.get(collection, key)
      if (e === undefined) continue
      if (best === undefined || wins(e, w, best.e, best.w)) best = { e, w }
    }
    if (best === undefined || !live(best.e, now)) return undefined
    return toStored<T>(key, best.e, best.w)
  }

  /** Every live key of a collection with its winning entry. */
  entries<T = unknown> (collection: CollectionName, now = Date.now()): Map<string, StoredEntry<T>> {
    const best = new Map<string, { e: Entry, w: NodeId }>()
    this.forEachEntry(collection, (w, key, e) => {
      const b = best.get(key)
      if (b === undefined || wins(e, w, b.e, b.w)) best.set(key, { e, w })
    })
    const out = new Map<string, StoredEntry<T>>()
    for (const [key, { e, w }] of best) {
      if (live(e, now)) out.set(key, toStored<T>(key, e, w))
    }
    return out
  }

  /** How many live keys a collection has (as entries(...).size, without a StoredEntry per key: for the gauges). */
  count (collection: CollectionName, now = Date.now()): number {
    const best = new Map<string, { e: Entry, w: NodeId }>()
    this.forEachEntry(collection, (w, key, e) => {
      const b = best.get(key)
      if (b === undefined || wins(e, w, b.e, b.w)) best.set(key, { e, w })
    })
    let n = 0
    for (const { e } of best.values()) if (live(e, now)) n++
    return n
  }

  /** Every writer's live entry for a key (for collections whose writers hold different parts of a record). */
  lookupAll<T = unknown> (collection: CollectionName, key: string, now = Date.now()): Array<StoredEntry<T>> {
    const out: Array<StoredEntry<T>> = []
    for (const [w, slot] of this.writers) {
      const e = slot.current.get(collection, key) ?? slot.previous?.get(collection, key)
      if (e === undefined || !live(e, now)) continue
      out.push(toStored<T>(key, e, w))
    }
    return out
  }

  /**
   * Every key of a collection (that `keep` keeps, when given: the others are not even decoded) with every writer's
   * live entry for it.
   */
  groupAll<T = unknown> (collection: CollectionName, now = Date.now(), keep?: (key: string) => boolean): Map<string, Array<StoredEntry<T>>> {
    const out = new Map<string, Array<StoredEntry<T>>>()
    this.forEachEntry(collection, (w, key, e) => {
      if (!live(e, now)) return
      let list = out.get(key)
      if (list === undefined) { list = []; out.set(key, list) }
      list.push(toStored<T>(key, e, w))
    }, keep)
    return out
  }

  /** The entry a given writer holds for a key (registry entries are only trusted from their own writer). */
  entryOf<T = unknown> (writer: NodeId, collection: CollectionName, key: string): StoredEntry<T> | undefined {
    const slot = this.writers.get(writer)
    const e = slot?.current.get(collection, key) ?? slot?.previous?.get(collection, key)
    return e === undefined || e.deleted === true ? undefined : toStored<T>(key, e, writer)
  }

  /** Each writer's entries of a collection: its current generation's, then its previous one's for keys it lacks. */
  private forEachEntry (collection: CollectionName, fn: (writer: NodeId, key: string, e: Entry) => void, keep?: (key: string) => boolean): void {
    for (const [w, slot] of this.writers) {
      const docs = slot.previous === undefined ? [slot.current] : [slot.current, slot.previous]
      for (const doc of docs) {
        for (const [key, e] of doc.entries(collection, keep)) {
          if (doc !== slot.current && slot.current.get(collection, key) !== undefined) continue
          fn(w, key, e)
        }
      }
    }
  }
}

/** Last writer wins: the newer stamp, then the higher writer id. */
function wins (a: Entry, aw: NodeId, b: Entry, bw: NodeId): boolean {
  const c = compareStamps(a.stamp, b.stamp)
  return c > 0 || (c === 0 && aw > bw)
}

/** Neither a deletion mark nor expired. */
function live (e: Entry, now: number): boolean {
  return e.deleted !== true && (e.expiresAt === undefined || e.expiresAt > now)
}

function toStored<T> (key: string, e: Entry, writer: NodeId): StoredEntry<T> {
  const s: StoredEntry<T> = { key, value: e.value as T, writer, stamp: [e.stamp[0], e.stamp[1]] }
  if (e.expiresAt !== undefined) s.expiresAt = e.expiresAt
  return s
}
