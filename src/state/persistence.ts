/**
 * Crash-safe persistence of the writer documents in the data directory, with plain files:
 *
 * - `state/snapshot.bin`: every signed record of every document's current generation (msgpack), replaced
 *   atomically (temp file, fsync, rename);
 * - `state/wal.log`: every signed record since the snapshot, appended as frames `[u32 length][u32 crc32][msgpack body]`.
 *
 * Records keep their writer's signature, so what this node serves after a restart is still signed. The previous
 * release's files (snapshot version 1: each document's unsigned full state; log records without `n` and `s`) load
 * as unsigned records: the store keeps this node's own (and re-signs them in a new generation) and drops other
 * writers' (fetched again, signed, from peers).
 *
 * Each batch is written at once (a kill -9 loses nothing already written: it is in the page cache) and fsynced at
 * most once a second (group commit: a machine crash loses at most that second). A torn or corrupt tail frame is cut
 * off at load. Replaying an update twice is harmless (Yjs updates are idempotent), so a crash between writing a
 * new snapshot and truncating the log loses nothing. Plain files rather than node:sqlite: the access pattern is an
 * append-only log and an occasional snapshot, which needs no query engine, and node:sqlite is still experimental.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { Packr } from 'msgpackr'
import { writeFileAtomic } from '../util/index.ts'

/** A record as stored: signed (`n`, `s`), or unsigned from the previous release. */
export interface DocRecord { w: string, g: number, u: Uint8Array, n?: number, s?: Uint8Array }

const packr = new Packr({ useRecords: false, mapsAsObjects: true })
/** 2: signed records; 1: the previous release's unsigned full states (read, never written). */
const SNAPSHOT_VERSION = 2
const LEGACY_SNAPSHOT_VERSION = 1
const HEADER_BYTES = 8
/** fsync of the log at most this often (group commit) */
const SYNC_INTERVAL_MS = 1_000

export interface Loaded {
  snapshot: DocRecord[]
  wal: DocRecord[]
  /** Bytes cut from a torn or corrupt log tail. */
  truncatedBytes: number
  /** The snapshot was written by a graceful stop and nothing was logged after it: every record is on disk. */
  clean: boolean
}

export class StateFiles {
  readonly dir: string
  readonly snapshotPath: string
  readonly walPath: string
  private wal?: FileHandle
  private walBytes = 0
  private snapshotBytes = 0
  private writing: Promise<void> = Promise.resolve()
  private lastSyncAt = 0
  private syncTimer?: NodeJS.Timeout

  constructor (dataDir: string) {
    this.dir = join(dataDir, 'state')
    this.snapshotPath = join(this.dir, 'snapshot.bin')
    this.walPath = join(this.dir, 'wal.log')
  }

  /** Reads the snapshot and the log (cutting a torn tail), before the node talks to any peer. */
  load (): Loaded {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    let snapshot: DocRecord[] = []
    let cleanSnapshot = false
    if (existsSync(this.snapshotPath)) {
      const bytes = readFileSync(this.snapshotPath)
      this.snapshotBytes = bytes.byteLength
      const body = packr.unpack(bytes) as { version?: number, docs?: DocRecord[], records?: DocRecord[], clean?: boolean }
      cleanSnapshot = body.clean === true
      if (body.version === SNAPSHOT_VERSION && Array.isArray(body.records)) snapshot = body.records
      else if (body.version === LEGACY_SNAPSHOT_VERSION && Array.isArray(body.docs)) snapshot = body.docs.map(d => ({ w: d.w, g: d.g, u: d.u }))
      else throw new Error(`${this.snapshotPath} is not a snapshot of version ${SNAPSHOT_VERSION} or ${LEGACY_SNAPSHOT_VERSION}`)
    }
    const wal: DocRecord[] = []
    let truncatedBytes = 0
    if (existsSync(this.walPath)) {
      const bytes = readFileSync(this.walPath)
      let off = 0
      while (off + HEADER_BYTES <= bytes.byteLength) {
        const len = bytes.readUInt32LE(off)
        const crc = bytes.readUInt32LE(off + 4)
        const end = off + HEADER_BYTES + len
        if (end > bytes.byteLength) break
        const body = bytes.subarray(off + HEADER_BYTES, end)
        if (crc32(body) !== crc) break
        try {
          wal.push(...(packr.unpack(body) as DocRecord[]))
        } catch {
          break
        }
        off = end
      }
      truncatedBytes = bytes.byteLength - off
      if (truncatedBytes > 0) {
        const fd = openSync(this.walPath, 'r+')
        ftruncateSync(fd, off)
        closeSync(fd)
      }
      this.walBytes = off
    }
    return { snapshot, wal, truncatedBytes, clean: cleanSnapshot && wal.length === 0 && truncatedBytes === 0 }
  }

  /** Appends a batch of updates as one frame and fsyncs it. Calls are serialised. */
  async append (records: DocRecord[]): Promise<void> {
    if (records.length === 0) return
    const body = packr.pack(records)
    const frame = Buffer.allocUnsafe(HEADER_BYTES + body.byteLength)
    frame.writeUInt32LE(body.byteLength, 0)
    frame.writeUInt32LE(crc32(body), 4)
    body.copy(frame, HEADER_BYTES)
    const run = async (): Promise<void> => {
      this.wal ??= await open(this.walPath, 'a', 0o600)
      await this.wal.write(frame)
      this.walBytes += frame.byteLength
      this.scheduleSync()
    }
    this.writing = this.writing.then(run, run)
    await this.writing
  }

  private scheduleSync (): void {
    if (this.syncTimer !== undefined) return
    const wait = Math.max(0, SYNC_INTERVAL_MS - (Date.now() - this.lastSyncAt))
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined
      const run = async (): Promise<void> => {
        this.lastSyncAt = Date.now()
        await this.wal?.sync()
      }
      this.writing = this.writing.then(run, run)
    }, wait)
    this.syncTimer.unref()
  }

  /** The log has grown past the snapshot: time to compact. */
  wantsCompaction (): boolean {
    return this.walBytes > Math.max(4 * 1024 * 1024, this.snapshotBytes * 2)
  }

  /**
   * Replaces the snapshot with `records` (every signed record of the current generations) and empties the log;
   * `clean` (a graceful stop only) marks that nothing will be written after it.
   */
  async compact (records: DocRecord[], opts: { clean?: boolean } = {}): Promise<void> {
    const run = async (): Promise<void> => {
      clearTimeout(this.syncTimer)
      this.syncTimer = undefined
      const bytes = packr.pack({ version: SNAPSHOT_VERSION, records, clean: opts.clean === true })
      writeFileAtomic(this.snapshotPath, bytes, 0o600)
      this.snapshotBytes = bytes.byteLength
      await this.wal?.close()
      this.wal = undefined
      const fd = openSync(this.walPath, 'w', 0o600)
      closeSync(fd)
      this.walBytes = 0
    }
    this.writing = this.writing.then(run, run)
    await this.writing
  }

  async close (): Promise<void> {
    clearTimeout(this.syncTimer)
    this.syncTimer = undefined
    await this.writing.catch(() => {})
    await this.wal?.sync().catch(() => {})
    await this.wal?.close()
    this.wal = undefined
  }

  sizes (): { snapshotBytes: number, walBytes: number } {
    return {
      snapshotBytes: existsSync(this.snapshotPath) ? statSync(this.snapshotPath).size : 0,
      walBytes: this.walBytes
    }
  }
}
