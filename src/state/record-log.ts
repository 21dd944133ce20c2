/**
 * The signed records of one writer's generation that this node applied, by sequence number: what it serves in
 * catch-up and persists, so every byte it relays is the writer's own signed record. A writer's new generation starts
 * with a signed snapshot (records 0..k), so a log is bounded by its writer's generations. It must not apply anything:
 * the writer set does that.
 */
import type { SignedRecord } from './signing.ts'

export class RecordLog {
  private readonly records = new Map<number, SignedRecord>()
  private sorted?: SignedRecord[]
  /** The lowest sequence number not held: every record below it is here. */
  next = 0
  /** Bytes of updates held. */
  bytes = 0

  constructor (readonly gen: number) {}

  get size (): number {
    return this.records.size
  }

  has (n: number): boolean {
    return this.records.has(n)
  }

  /** Keeps a record (its bytes copied when they are a view of a larger buffer); false when it was held already. */
  add (rec: SignedRecord): boolean {
    if (this.records.has(rec.n)) return false
    this.records.set(rec.n, ownBytes(rec))
    this.bytes += rec.u.byteLength
    this.sorted = undefined
    while (this.records.has(this.next)) this.next++
    return true
  }

  /** True when a record above `next` is held: one below it is missing (a missed push). */
  hasGap (): boolean {
    return this.records.size > this.next
  }

  /** Every record, by sequence number. */
  all (): SignedRecord[] {
    this.sorted ??= [...this.records.values()].sort((a, b) => a.n - b.n)
    return this.sorted
  }

  /** The records from sequence number `from` on, in order. */
  * from (from: number): IterableIterator<SignedRecord> {
    for (const r of this.all()) if (r.n >= from) yield r
  }
}

/**
 * The record with bytes of its own. One decoded from a frame holds views of the frame's buffer (a socket read with
 * other frames in it, a push of many records, the whole log file read at start), and a record is kept until its
 * writer's next generation: it would keep that whole buffer alive as long.
 */
export function ownBytes (rec: SignedRecord): SignedRecord {
  // (s is always there on a signed record; a record of a test's stub signer may lack it)
  const whole = (b: Uint8Array | undefined): boolean => b === undefined || (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength)
  if (whole(rec.u) && whole(rec.s)) return rec
  return { ...rec, u: whole(rec.u) ? rec.u : new Uint8Array(rec.u), s: whole(rec.s) ? rec.s : new Uint8Array(rec.s) }
}
