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
 * Each batch is written at once (a kill -9 loses nothing already written: it is in the page cache; a small one, when
 * nothing else is under way on the log, with a direct write, sparing the caller a thread-pool round trip) and fsynced at
 * most once a second (group commit: a machine crash loses at most that second). A torn or corrupt tail frame is cut
 * off at load. Replaying an update twice is harmless (Yjs updates are idempotent), so a crash between writing a
 * new snapshot and truncating the log loses nothing. Plain files rather than node:sqlite: the access pattern is an
 * append-only log and an occasional snapshot, which needs no query engine, and node:sqlite is still experimental.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { Packr } from 'msgpackr'
import Type from 'typebox'
import { Bytes, packShort, validator } from '../../proto/index.ts'
import { InternalError } from '../interface/index.ts'
import { writeFileAtomic } from '../util/index.ts'

/** A record as stored: signed (`n`, `s`), or unsigned from the previous release. */
export interface DocRecord { w: string, g: number, u: Uint8Array, n?: number, s?: Uint8Array }

const packr = new Packr({ useRecords: false, mapsAsObjects: true })
const Int = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
/** What a file must hold to be applied: a corrupt file must not reach the documents (a TypeError at start). */
const storedRecords = validator(Type.Array(Type.Union([
  Type.Object({ w: Type.String({ minLength: 1 }), g: Int, u: Bytes, n: Int, s: Bytes }),
  Type.Object({ w: Type.String({ minLength: 1 }), g: Int, u: Bytes, n: Type.Optional(Type.Undefined()), s: Type.Optional(Type.Undefined()) })
])))
/** 2: signed records; 1: the previous release's unsigned full states (read, never written). */
const SNAPSHOT_VERSION = 2
const LEGACY_SNAPSHOT_VERSION = 1
const HEADER_BYTES = 8
/** fsync of the log at most this often (group commit) */
const SYNC_INTERVAL_MS = 1_000
/** A frame up to this size is written at once when the log is idle (larger ones go through the thread pool). */
const WAL_DIRECT_WRITE_MAX_BYTES = 64 * 1024

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
  /** File operations queued or under way: while any is, appends queue behind them. */
  private busy = 0

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
      ;({ records: snapshot, clean: cleanSnapshot } = this.readSnapshot(bytes))
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
        // a frame whose checksum holds but which is not records is cut like a torn tail
        let records: unknown
        try { records = packr.unpack(body) } catch { break }
        if (!storedRecords.check(records)) break
        for (const r of records) wal.push(r as DocRecord)
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

  /**
   * The records of a snapshot file; one that does not decode, or holds what is not records, stops the start with an
   * error saying what to do (its writers' records are not all anywhere else: it is never dropped silently).
   */
  private readSnapshot (bytes: Uint8Array): { records: DocRecord[], clean: boolean } {
    const corrupt = (why: string, cause?: unknown): InternalError => new InternalError(
      `${this.snapshotPath} is corrupt (${why}); move it aside to start from the log and what peers hold`, { cause })
    let body: { version?: unknown, docs?: unknown, records?: unknown, clean?: unknown }
    try {
      body = packr.unpack(bytes) as typeof body
    } catch (err) {
      throw corrupt(`not msgpack: ${(err as Error).message}`, err)
    }
    if (body === null || typeof body !== 'object') throw corrupt('not a map')
    if (body.version === SNAPSHOT_VERSION) {
      if (!storedRecords.check(body.records)) throw corrupt(`records: ${storedRecords.problems(body.records, 2).join('; ')}`)
      return { records: body.records as DocRecord[], clean: body.clean === true }
    }
    if (body.version === LEGACY_SNAPSHOT_VERSION) {
      const docs = Array.isArray(body.docs) ? (body.docs as Array<Record<string, unknown>>).map(d => ({ w: d?.w, g: d?.g, u: d?.u })) : body.docs
      if (!storedRecords.check(docs)) throw corrupt(`docs: ${storedRecords.problems(docs, 2).join('; ')}`)
      return { records: docs as DocRecord[], clean: body.clean === true }
    }
    throw corrupt(`not a snapshot of version ${SNAPSHOT_VERSION} or ${LEGACY_SNAPSHOT_VERSION}`)
  }

  /** Appends a batch of updates as one frame and fsyncs it. Calls are serialised. */
  async append (records: DocRecord[]): Promise<void> {
    if (records.length === 0) return
    const body = packShort(packr, records)
    const frame = Buffer.allocUnsafe(HEADER_BYTES + body.byteLength)
    frame.writeUInt32LE(body.byteLength, 0)
    frame.writeUInt32LE(crc32(body), 4)
    frame.set(body, HEADER_BYTES)
    if (this.busy === 0 && this.wal !== undefined && frame.byteLength <= WAL_DIRECT_WRITE_MAX_BYTES) {
      // nothing else is under way on the log: a small frame goes to the page cache at once, sparing the caller (an
      // acknowledgement waiting for its record) a round trip through the thread pool
      try {
        for (let at = 0; at < frame.byteLength;) at += writeSync(this.wal.fd, frame, at)
      } catch (err) {
        this.cutTornFrame()
        throw err
      }
      this.walBytes += frame.byteLength
      this.scheduleSync()
      return
    }
    await this.serialised(async () => {
      this.wal ??= await open(this.walPath, 'a', 0o600)
      try {
        await this.wal.write(frame)
      } catch (err) {
        this.cutTornFrame()
        throw err
      }
      this.walBytes += frame.byteLength
      this.scheduleSync()
    })
  }

  /**
   * A write that failed part-way (the disk full) leaves part of a frame at the log's end; the frames appended after it
   * would sit behind it, and the load, which cuts the log at its first torn frame, would drop them all. So the log goes
   * back to its last whole frame at once (a failed cut leaves it as it was: the load cuts it there anyway).
   */
  private cutTornFrame (): void {
    if (this.wal === undefined) return
    try { ftruncateSync(this.wal.fd, this.walBytes) } catch {}
  }

  /** Runs `run` after every file operation queued before it (appends, syncs, compactions never overlap). */
  private async serialised (run: () => Promise<void>): Promise<void> {
    this.busy++
    const done = async (): Promise<void> => { try { await run() } finally { this.busy-- } }
    this.writing = this.writing.then(done, done)
    await this.writing
  }

  private scheduleSync (): void {
    if (this.syncTimer !== undefined) return
    const wait = Math.max(0, SYNC_INTERVAL_MS - (Date.now() - this.lastSyncAt))
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined
      this.serialised(async () => {
        this.lastSyncAt = Date.now()
        await this.wal?.sync()
      }).catch(() => {})
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
    await this.serialised(async () => {
      clearTimeout(this.syncTimer)
      this.syncTimer = undefined
      const bytes = packShort(packr, { version: SNAPSHOT_VERSION, records, clean: opts.clean === true })
      writeFileAtomic(this.snapshotPath, bytes, 0o600)
      this.snapshotBytes = bytes.byteLength
      await this.wal?.close()
      this.wal = undefined
      const fd = openSync(this.walPath, 'w', 0o600)
      closeSync(fd)
      this.walBytes = 0
    })
  }

  async close (): Promise<void> {
    clearTimeout(this.syncTimer)
    this.syncTimer = undefined
    this.busy++ // no direct write while the log closes
    await this.writing.catch(() => {})
    await this.wal?.sync().catch(() => {})
    await this.wal?.close()
    this.wal = undefined
    this.busy--
  }

  sizes (): { snapshotBytes: number, walBytes: number } {
    return {
      snapshotBytes: existsSync(this.snapshotPath) ? statSync(this.snapshotPath).size : 0,
      walBytes: this.walBytes
    }
  }
}
