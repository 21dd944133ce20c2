/**
 * One writer's document (one generation of it): a Y.Doc with one top-level Y.Map per collection. Only the writer
 * changes it; every other node holds a replica. Overwrites leave small tombstones in Yjs; the writer starts a new
 * generation (live entries only) when they outgrow the live data, so the document stays bounded under churn.
 * Entries are read decoded (`get`, `entries`): one-letter entries of the previous release come out named.
 */
import * as Y from 'yjs'
import { COLLECTIONS, decodeEntry, rawEntry, upgradeEntry, type CollectionName, type Entry, type RawEntry } from '../../proto/index.ts'
import { ProtocolError, type NodeId } from '../interface/index.ts'

/** Transaction origins: what came from the network is neither re-broadcast nor stored twice. */
export const ORIGIN_LOCAL = 'local'
export const ORIGIN_REMOTE = 'remote'
export const ORIGIN_LOAD = 'load'
export type Origin = typeof ORIGIN_LOCAL | typeof ORIGIN_REMOTE | typeof ORIGIN_LOAD

/** Longest key of any collection (session ids, task ids, node ids). */
export const MAX_KEY_LENGTH = 256

export class WriterDoc {
  readonly doc = new Y.Doc({ gc: true })
  private readonly maps: Record<CollectionName, Y.Map<RawEntry>>
  /** Overwritten or deleted entries since this generation began: the garbage Yjs keeps as tombstones. */
  garbage = 0

  constructor (readonly writer: NodeId, readonly gen: number) {
    this.maps = Object.fromEntries(COLLECTIONS.map(c => [c, this.doc.getMap<RawEntry>(c)])) as Record<CollectionName, Y.Map<RawEntry>>
    this.doc.on('afterTransaction', tr => {
      for (const ranges of tr.deleteSet.clients.values()) for (const r of ranges) this.garbage += r.len
    })
  }

  /** The collection as stored (entries in either form): for writes, deletions and copying raw entries. */
  map (c: CollectionName): Y.Map<RawEntry> {
    return this.maps[c]
  }

  get (c: CollectionName, key: string): Entry | undefined {
    const raw = this.maps[c].get(key)
    return raw === undefined ? undefined : decodeEntry(raw)
  }

  /** Every entry of a collection (only those whose key `keep` keeps, when given), decoded. */
  * entries (c: CollectionName, keep?: (key: string) => boolean): IterableIterator<[string, Entry]> {
    for (const [key, raw] of this.maps[c]) if (keep === undefined || keep(key)) yield [key, decodeEntry(raw)]
  }

  /**
   * Rewrites the previous release's one-letter entries in the named form, keeping stamps, expiry and deletion marks
   * (so no entry wins or loses by it), in one transaction with `origin`; returns how many it rewrote. Only the writer
   * calls this, on its own document.
   */
  upgradeLegacy (origin: Origin): number {
    let n = 0
    this.doc.transact(() => {
      for (const c of COLLECTIONS) {
        const m = this.maps[c]
        for (const [key, raw] of [...m]) {
          const named = upgradeEntry(c, raw)
          if (named !== undefined) { m.set(key, named); n++ }
        }
      }
    }, origin)
    return n
  }

  /** Live entries in all collections (tombstone entries included: they are live until collected). */
  size (): number {
    let n = 0
    for (const m of Object.values(this.maps)) n += m.size
    return n
  }

  stateVector (): Uint8Array {
    return Y.encodeStateVector(this.doc)
  }

  /** Everything a peer with state vector `sv` lacks (everything, without one). */
  encode (sv?: Uint8Array): Uint8Array {
    return sv === undefined ? Y.encodeStateAsUpdate(this.doc) : Y.encodeStateAsUpdate(this.doc, sv)
  }

  /** Applies an update from a peer or from disk; it must have passed `checkUpdate`. */
  apply (update: Uint8Array, origin: Origin): void {
    Y.applyUpdate(this.doc, update, origin)
  }

  /** True when applied updates reference data this replica has not received yet. */
  incomplete (): boolean {
    return this.doc.store.pendingStructs !== null || this.doc.store.pendingDs !== null
  }
}

/** An update with nothing in it: sent as a nudge, it makes the peer catch up. */
export const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc())

/** An update with nothing in it (no structs, empty delete set) encodes to these two bytes. */
export function isEmptyUpdate (u: Uint8Array): boolean {
  return u.byteLength <= 2 && u.every(b => b === 0)
}

/**
 * Checks an update from a peer before it touches a document: it must decode, insert only plain entries
 * (`{value, stamp, deleted?, expiresAt?}`, or the previous release's `{v, h, d?, x?}`) into our collections under bounded keys, and nothing else (no text, no nested types).
 * Throws ProtocolError naming the first problem; returns the latest stamp (ms) of the entries it carries (0 if none).
 */
export function checkUpdate (update: Uint8Array): { maxStampMs: number } {
  let maxStampMs = 0
  let decoded: ReturnType<typeof Y.decodeUpdate>
  try {
    decoded = Y.decodeUpdate(update)
  } catch (err) {
    throw new ProtocolError(`undecodable Yjs update (${(err as Error).message})`, { cause: err })
  }
  for (const s of decoded.structs) {
    if (!(s instanceof Y.Item)) continue
    const parent: unknown = s.parent
    if (typeof parent === 'string' && !(COLLECTIONS as readonly string[]).includes(parent)) {
      throw new ProtocolError(`update writes to unknown collection ${JSON.stringify(parent.slice(0, 40))}`)
    }
    if (s.parentSub !== null && s.parentSub.length > MAX_KEY_LENGTH) throw new ProtocolError(`update has a key longer than ${MAX_KEY_LENGTH} characters`)
    if (typeof parent === 'string' && s.parentSub === null) throw new ProtocolError('update inserts into a collection as a list')
    const c = s.content
    if (c instanceof Y.ContentDeleted) continue
    if (!(c instanceof Y.ContentAny)) throw new ProtocolError(`update carries ${c.constructor.name}, not plain entries`)
    for (const v of c.getContent()) {
      if (!rawEntry.check(v)) throw new ProtocolError(`update carries a malformed entry: ${rawEntry.problems(v, 2).join('; ')}`)
      maxStampMs = Math.max(maxStampMs, decodeEntry(v).stamp[0])
    }
  }
  return { maxStampMs }
}
