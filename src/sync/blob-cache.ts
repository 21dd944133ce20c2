/**
 * The executor's content-addressed blob cache: `<root>/blobs/<first two hex>/<sha256>`, read-only files, bounded by
 * `maxBytes` with the least recently used going first (a blob in use by a transfer or a layout is pinned). Crash-safe:
 * a blob is written under `<root>/tmp/` and renamed into place only once whole and its hash checked, so a blob that is
 * visible is complete; what a crash leaves in tmp/ is removed at the next start. Recency is kept in memory; after a
 * restart the blobs count as used in the order of their arrival (mtime).
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { chmod, open, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { NotFoundError } from '../interface/index.ts'
import { sha256Hex } from './manifest-codec.ts'

export class BlobCache {
  /** hash → size, oldest use first */
  private readonly index = new Map<string, number>()
  private readonly pins = new Map<string, number>()
  private total = 0
  /** names the temporary files: unique in tmp/, which only this process uses and which is cleared at each start */
  private tmpCount = 0
  /** the fan-out directories known to exist */
  private readonly dirs = new Set<string>()
  /** who waits for a blob to arrive (a spare laid out as a tree's blobs come) */
  private readonly waiters = new Map<string, Set<() => void>>()

  constructor (readonly root: string, private readonly maxBytes: number, private readonly log: Pick<Logger, 'info' | 'warn'>) {}

  /** Makes the directories, clears what a crash left half-written, and indexes the blobs there. */
  open (): void {
    rmSync(join(this.root, 'tmp'), { recursive: true, force: true })
    mkdirSync(join(this.root, 'tmp'), { recursive: true, mode: 0o700 })
    mkdirSync(join(this.root, 'blobs'), { recursive: true, mode: 0o700 })
    const found: Array<{ hash: string, size: number, at: number }> = []
    for (const dir of readdirSync(join(this.root, 'blobs'))) {
      for (const name of readdirSync(join(this.root, 'blobs', dir))) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue
        try {
          const st = statSync(join(this.root, 'blobs', dir, name))
          found.push({ hash: name, size: st.size, at: st.mtimeMs })
        } catch {}
      }
    }
    found.sort((a, b) => a.at - b.at)
    for (const f of found) { this.index.set(f.hash, f.size); this.total += f.size }
    this.evict()
  }

  get bytes (): number { return this.total }
  get count (): number { return this.index.size }
  get limitBytes (): number { return this.maxBytes }

  has (hash: string): boolean { return this.index.has(hash) }

  /** The blob's size, if it is here. */
  sizeOf (hash: string): number | undefined { return this.index.get(hash) }

  /** The blob's file (it counts as used now); NOT_FOUND when absent. */
  path (hash: string): string {
    const size = this.index.get(hash)
    if (size === undefined) throw new NotFoundError(`blob ${hash} is not in this node's sync cache`)
    this.index.delete(hash)
    this.index.set(hash, size)
    return this.blobPath(hash)
  }

  /** Resolves once blob `hash` is here (at once if it is already); rejects with `signal`'s reason if it aborts first. */
  async whenPresent (hash: string, signal: AbortSignal): Promise<void> {
    if (this.index.has(hash)) return
    signal.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      let set = this.waiters.get(hash)
      if (set === undefined) { set = new Set(); this.waiters.set(hash, set) }
      const forget = (): void => { set.delete(arrived); if (set.size === 0 && this.waiters.get(hash) === set) this.waiters.delete(hash) }
      const aborted = (): void => { forget(); reject(signal.reason) }
      const arrived = (): void => { signal.removeEventListener('abort', aborted); resolve() }
      set.add(arrived)
      signal.addEventListener('abort', aborted, { once: true })
    })
  }

  /** Keeps these blobs from eviction until the returned function is called. */
  pin (hashes: Iterable<string>): () => void {
    const list = [...hashes]
    for (const h of list) this.pins.set(h, (this.pins.get(h) ?? 0) + 1)
    return () => {
      for (const h of list) {
        const n = (this.pins.get(h) ?? 1) - 1
        if (n <= 0) this.pins.delete(h)
        else this.pins.set(h, n)
      }
      this.evict()
    }
  }

  /** A fresh temporary file for a blob being received. */
  tmpPath (hash: string): string { return join(this.root, 'tmp', `${hash}.${this.tmpCount++}`) }

  /** Moves a complete, checked temporary file into place: from now it is visible. */
  async commit (tmp: string, hash: string, size: number, readOnly = false): Promise<void> {
    if (this.index.has(hash)) { await unlink(tmp).catch(() => {}); return }
    const dest = this.blobPath(hash)
    const dir = hash.slice(0, 2)
    if (!this.dirs.has(dir)) { mkdirSync(join(this.root, 'blobs', dir), { recursive: true, mode: 0o700 }); this.dirs.add(dir) }
    if (!readOnly) await chmod(tmp, 0o444)
    await rename(tmp, dest)
    this.index.set(hash, size)
    this.total += size
    const waiting = this.waiters.get(hash)
    if (waiting !== undefined) { this.waiters.delete(hash); for (const arrived of waiting) arrived() }
    this.evict()
  }

  /** Stores a blob held in memory (a manifest), checked against its hash. */
  async putBuffer (data: Uint8Array, checkedHash?: string): Promise<string> {
    const hash = checkedHash ?? sha256Hex(data)
    if (this.index.has(hash)) { this.path(hash); return hash }
    const tmp = this.tmpPath(hash)
    // created read-only: the one write is through the descriptor that created it
    await writeFile(tmp, data, { mode: 0o444 })
    await this.commit(tmp, hash, data.byteLength, true)
    return hash
  }

  /** `length` bytes of a blob from `offset` (fewer at its end). */
  async read (hash: string, offset: number, length: number): Promise<Buffer> {
    const fh = await open(this.path(hash), 'r')
    try {
      const buf = Buffer.allocUnsafe(length)
      const { bytesRead } = await fh.read(buf, 0, length, offset)
      return buf.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
  }

  private blobPath (hash: string): string { return join(this.root, 'blobs', hash.slice(0, 2), hash) }

  private evict (): void {
    if (this.total <= this.maxBytes) return
    let removed = 0
    for (const [hash, size] of this.index) {
      if (this.total <= this.maxBytes) break
      if (this.pins.has(hash)) continue
      try { rmSync(this.blobPath(hash), { force: true }) } catch (err) { this.log.warn({ err, hash }, 'cannot remove a blob from the sync cache'); continue }
      this.index.delete(hash)
      this.total -= size
      removed++
    }
    if (removed > 0) this.log.info({ removed, bytes: this.total, limit: this.maxBytes }, 'sync cache: least recently used blobs removed')
  }
}
