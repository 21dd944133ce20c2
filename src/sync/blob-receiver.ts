/**
 * Blobs arriving in pieces (from a peer's `sync.put`, or the local client's uploads) into the cache: each blob's
 * pieces are written in order to a temporary file while hashed, and the blob is committed only once whole and its
 * hash matches; a mismatch drops it and names it as refused, so the sender sends it again. A source's requests that carry
 * parts of larger blobs are taken one at a time, in arrival order; requests of whole blobs go side by side. A partial blob that stalls past SYNC_PARTIAL_TTL_MS is dropped.
 */
import { createHash, type Hash } from 'node:crypto'
import { open, unlink, type FileHandle } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { BlobPiece } from '../../proto/index.ts'
import { InvalidArgumentError, TooLargeError } from '../interface/index.ts'
import type { BlobCache } from './blob-cache.ts'
import { SYNC_PARTIAL_TTL_MS, SYNC_PARTIALS_PER_SOURCE_MAX } from './constants.ts'

interface Partial {
  size: number
  received: number
  tmp: string
  fh: FileHandle
  hasher: Hash
  touched: number
}

export interface ReceiveResult {
  refused: string[]
  /** bytes of pieces taken */
  bytes: number
}

export class BlobReceiver {
  private readonly partial = new Map<string, Map<string, Partial>>()
  private readonly queues = new Map<string, Promise<unknown>>()
  private readonly sweeper: NodeJS.Timeout

  constructor (private readonly cache: BlobCache, private readonly log: Pick<Logger, 'warn'>, private readonly onRefused: (hash: string) => void = () => {}) {
    this.sweeper = setInterval(() => { void this.sweep() }, SYNC_PARTIAL_TTL_MS / 4)
    this.sweeper.unref()
  }

  close (): void {
    clearInterval(this.sweeper)
    for (const [source] of this.partial) void this.dropSource(source)
  }

  /**
   * Takes `pieces` from `source`, after that source's earlier requests when any piece is part of a larger blob (their
   * order matters); requests of whole blobs only (small files) go side by side.
   */
  async receive (source: string, pieces: readonly BlobPiece[]): Promise<ReceiveResult> {
    if (pieces.every(p => p.offset === 0 && p.data.byteLength === p.size)) return await this.take(source, pieces)
    const prev = this.queues.get(source) ?? Promise.resolve()
    const run = prev.catch(() => {}).then(async () => await this.take(source, pieces))
    this.queues.set(source, run)
    try {
      return await run
    } finally {
      if (this.queues.get(source) === run) this.queues.delete(source)
    }
  }

  private async take (source: string, pieces: readonly BlobPiece[]): Promise<ReceiveResult> {
    const refused: string[] = []
    let bytes = 0
    let mine = this.partial.get(source)
    // blobs whole in one piece (most files) are checked, then written side by side
    const writes: Array<Promise<unknown>> = []
    for (const p of pieces) {
      bytes += p.data.byteLength
      if (p.offset + p.data.byteLength > p.size) throw new InvalidArgumentError(`blob ${p.hash}: a piece at ${p.offset} of ${p.data.byteLength} bytes runs past its size ${p.size}`)
      if (p.offset === 0) {
        const old = mine?.get(p.hash)
        if (old !== undefined) await this.drop(source, p.hash, old)
        if (this.cache.has(p.hash)) continue
        if (p.data.byteLength === p.size) {
          // whole in one piece: check it first, then write it
          if (!this.matches(p.hash, createHash('sha256').update(p.data))) { this.refuse(source, p.hash, refused); continue }
          writes.push(this.cache.putBuffer(p.data, p.hash))
          continue
        }
        if (mine === undefined) { mine = new Map(); this.partial.set(source, mine) }
        if (mine.size >= SYNC_PARTIALS_PER_SOURCE_MAX) throw new TooLargeError(`more than ${SYNC_PARTIALS_PER_SOURCE_MAX} blobs partly sent at once`)
        const tmp = this.cache.tmpPath(p.hash)
        const fh = await open(tmp, 'wx', 0o600)
        mine.set(p.hash, { size: p.size, received: 0, tmp, fh, hasher: createHash('sha256'), touched: Date.now() })
      }
      const part = mine?.get(p.hash)
      if (part === undefined || part.received !== p.offset || part.size !== p.size) {
        // a piece out of order (its start was lost, or the blob was dropped): the whole blob is sent again
        if (part !== undefined) await this.drop(source, p.hash, part)
        if (!this.cache.has(p.hash) && !refused.includes(p.hash)) this.refuse(source, p.hash, refused)
        continue
      }
      await part.fh.write(p.data, 0, p.data.byteLength, p.offset)
      part.hasher.update(p.data)
      part.received += p.data.byteLength
      part.touched = Date.now()
      if (part.received < part.size) continue
      mine?.delete(p.hash)
      await part.fh.close()
      if (!this.matches(p.hash, part.hasher)) {
        await unlink(part.tmp).catch(() => {})
        this.refuse(source, p.hash, refused)
        continue
      }
      await this.cache.commit(part.tmp, p.hash, part.size)
    }
    await Promise.all(writes)
    return { refused, bytes }
  }

  private matches (hash: string, hasher: Hash): boolean { return hasher.digest('hex') === hash }

  private refuse (source: string, hash: string, refused: string[]): void {
    refused.push(hash)
    this.onRefused(hash)
    this.log.warn({ source, hash }, 'a synced blob did not match its hash; refused (the sender sends it again)')
  }

  private async drop (source: string, hash: string, part: Partial): Promise<void> {
    this.partial.get(source)?.delete(hash)
    await part.fh.close().catch(() => {})
    await unlink(part.tmp).catch(() => {})
  }

  private async dropSource (source: string): Promise<void> {
    for (const [hash, part] of this.partial.get(source) ?? []) await this.drop(source, hash, part)
    this.partial.delete(source)
  }

  private async sweep (): Promise<void> {
    const now = Date.now()
    for (const [source, mine] of this.partial) {
      for (const [hash, part] of mine) if (now - part.touched > SYNC_PARTIAL_TTL_MS) await this.drop(source, hash, part)
      if (mine.size === 0) this.partial.delete(source)
    }
  }
}
