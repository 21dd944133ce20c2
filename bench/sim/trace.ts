/**
 * The ordered event trace, hashed as it goes: each event's virtual time, node, kind and (for the ones that matter)
 * a detail string. Numbers are batched into a buffer and fed to SHA-256, so hashing every event stays cheap.
 */
import { createHash, type Hash } from 'node:crypto'

const BATCH = 4096

export class Trace {
  private readonly hash: Hash = createHash('sha256')
  private readonly buf = new Float64Array(BATCH)
  private used = 0
  events = 0

  record (at: number, node: number, kind: number): void {
    if (this.used + 3 > BATCH) this.flush()
    this.buf[this.used++] = at
    this.buf[this.used++] = node
    this.buf[this.used++] = kind
    this.events++
  }

  detail (s: string): void {
    this.flush()
    this.hash.update(s)
  }

  digest (): string {
    this.flush()
    return this.hash.digest('hex')
  }

  private flush (): void {
    if (this.used === 0) return
    this.hash.update(new Uint8Array(this.buf.buffer, 0, this.used * 8))
    this.used = 0
  }
}
