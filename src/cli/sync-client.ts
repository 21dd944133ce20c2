/**
 * gridctl run's side of `--sync DIR` and `--fetch PATH`: the manifest of DIR (bad input exits 2 before anything is
 * sent), the blobs the local daemon lacks uploaded in bounded pieces (with progress on a terminal for large
 * transfers), and after the task, the files it wrote that match `--fetch` written back into DIR.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { realpath, rename, chmod, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, sep } from 'node:path'
// no validator (typebox) on the upload path: loading one costs gridctl more than a walk of 10,000 files
import type { Manifest, ManifestFile } from '../../proto/sync.ts'
import { SYNC_MISSING_BATCH_MAX, SYNC_PIECE_BATCH_MAX_BYTES, SYNC_PIECES_MAX, SYNC_UPLOAD_BINARY_TYPE } from '../../proto/sync-limits.ts'
import { GridError, ProtocolError } from '../interface/index.ts'
import { buildManifest, hashFile, type BuildOptions, type BuiltManifest } from '../sync/manifest.ts'
import { isFile, sha256Hex } from '../sync/manifest-bytes.ts'
import { walkCacheFile } from '../sync/walk-cache.ts'
import { SYNC_LANES, SYNC_PROGRESS_MIN_BYTES, SYNC_UPLOAD_JSON_MAX_BYTES } from '../sync/constants.ts'
import { mapLimit } from '../sync/pool.ts'
import type { ApiClient } from './client.ts'

export interface SyncUpload {
  /** the `sync` of the POST /v1/tasks body */
  body: { manifest: string, fetch?: string[] }
  root: string
  files: number
  bytes: number
  sentBlobs: number
  sentBytes: number
  /** how the manifest reached the daemon: it had it, as its difference from the last one, or whole */
  manifestSent: 'known' | 'difference' | 'whole'
}

const mib = (b: number): string => (b / 1048576).toFixed(1)

/** Hashes `dir`, uploads what the daemon lacks, and gives the task's `sync`. */
export async function uploadTree (client: ApiClient, dir: string, opts: BuildOptions & { fetch?: string[], err: NodeJS.WritableStream & { isTTY?: boolean }, signal?: AbortSignal }): Promise<SyncUpload> {
  // the walk cache is written once the task's request is on its way (uploadBuilt): not on the path to sending it
  const built = await buildManifest(dir, { ...opts, hashCache: true, deferSave: true })
  try {
    return await uploadBuilt(client, built, opts)
  } catch (err) {
    // the hashes stand whatever became of the upload: the next run need not read the files again
    built.saveWalk()
    throw err
  }
}

async function uploadBuilt (client: ApiClient, built: BuiltManifest, opts: { fetch?: string[], err: NodeJS.WritableStream & { isTTY?: boolean }, signal?: AbortSignal }): Promise<SyncUpload> {
  // which file holds each blob: needed only for those to be sent (all of them for a daemon asked by hashes)
  let whereOf: Map<string, ManifestFile> | undefined
  let wanted: ReadonlySet<string> | undefined
  const where = (): Map<string, ManifestFile> => {
    if (whereOf !== undefined) return whereOf
    whereOf = new Map()
    for (const e of built.manifest.entries) if (isFile(e) && (wanted === undefined || wanted.has(e.sha256)) && !whereOf.has(e.sha256)) whereOf.set(e.sha256, e)
    return whereOf
  }
  const manifestHash = built.hash
  const sizeOf = (h: string): number => h === manifestHash ? built.encoded().byteLength : where().get(h)?.size ?? 0
  // a piece (at most 1 MiB) in one synchronous read: quicker than three trips to the thread pool, and gridctl waits
  // on nothing else meanwhile
  const readPiece = async (h: string, offset: number, length: number): Promise<Buffer> => {
    if (h === manifestHash) return built.encoded().subarray(offset, offset + length)
    const fd = openSync(join(built.root, (where().get(h) as ManifestFile).path), 'r')
    try {
      const buf = Buffer.allocUnsafe(length)
      return buf.subarray(0, readSync(fd, buf, 0, length, offset))
    } finally { closeSync(fd) }
  }
  const send = async (hashes: readonly string[]): Promise<void> => {
    await uploadBlobs(client, hashes, sizeOf, readPiece, h => h === manifestHash ? 'the manifest' : join(built.root, where().get(h)?.path ?? h), { ...opts, root: built.root })
  }
  // a tree that changed goes as its difference from the last one built (the walk cache names it), when the daemon has
  // that one: a changed file of 10,000 costs its entry, not a 1.2 MB manifest
  let manifestSent: SyncUpload['manifestSent'] = built.previous !== undefined && await sendChange(client, built, opts.signal) ? 'difference' : 'known'
  // by the manifest: the daemon (once it has the manifest) names the blobs it lacks, so a tree of 10,000 files costs
  // no list of 10,000 hashes each way; a daemon of an older version is asked by hashes
  let missing = await missingOf(client, manifestHash, opts.signal)
  if (missing !== undefined && missing.length === 1 && missing[0] === manifestHash) {
    if (sha256Hex(built.encoded()) !== manifestHash) throw new ProtocolError(`--sync: the walk cache of ${built.root} names a manifest other than the tree's; remove ${walkCacheFile(built.root)} and run again`)
    await send(missing)
    manifestSent = 'whole'
    missing = await missingOf(client, manifestHash, opts.signal)
  }
  if (missing === undefined) {
    const hashes = [...where().keys(), manifestHash]
    missing = []
    for (let i = 0; i < hashes.length; i += SYNC_MISSING_BATCH_MAX) {
      const r = await client.post<{ missing: string[] }>('/sync/missing', { hashes: hashes.slice(i, i + SYNC_MISSING_BATCH_MAX) }, opts.signal)
      missing.push(...r.missing)
    }
    if (missing.includes(manifestHash)) manifestSent = 'whole'
  }
  wanted = new Set(missing)
  await send(missing)
  // after the caller's next request (the task's) has gone out, as its socket write comes before the loop's check
  // phase: the write of the walk cache overlaps the daemon's work on it
  setImmediate(built.saveWalk)
  const body: SyncUpload['body'] = { manifest: manifestHash }
  if (opts.fetch !== undefined && opts.fetch.length > 0) body.fetch = opts.fetch
  return { body, root: built.root, files: built.files, bytes: built.bytes, sentBlobs: missing.length, sentBytes: missing.reduce((s, h) => s + sizeOf(h), 0), manifestSent }
}

/**
 * POST /v1/sync/manifest: the manifest as its difference from the last one built (when the difference is small
 * beside it). Whether the daemon has it now; false also from a daemon of an older version (no such endpoint) or one
 * that could not rebuild it: the manifest is then uploaded whole.
 */
async function sendChange (client: ApiClient, built: BuiltManifest, signal?: AbortSignal): Promise<boolean> {
  const p = built.previous
  if (p === undefined) return false
  const body = { hash: built.hash, base: p.base, removed: p.change.removed, upserted: p.change.upserted }
  const bytes = Buffer.byteLength(JSON.stringify(body))
  // small beside the manifest (judged by its entries: encoding the manifest to measure it costs what this saves)
  if (bytes > SYNC_PIECE_BATCH_MAX_BYTES || p.change.removed.length + p.change.upserted.length > built.manifest.entries.length / 2) return false
  try {
    return (await client.post<{ ok: boolean }>('/sync/manifest', body, signal)).ok
  } catch (err) {
    if (err instanceof GridError && (err.code === 'NO_SUCH_ENDPOINT' || err.code === 'INVALID_ARGUMENT')) return false
    throw err
  }
}

/** POST /v1/sync/missing `{manifest}`: the manifest itself if the daemon lacks it, else its blobs the daemon lacks. */
async function missingOf (client: ApiClient, manifest: string, signal?: AbortSignal): Promise<string[] | undefined> {
  try {
    return (await client.post<{ missing: string[] }>('/sync/missing', { manifest }, signal)).missing
  } catch (err) {
    // an older daemon refuses the field
    if (err instanceof GridError && err.code === 'INVALID_ARGUMENT' && /manifest/.test(err.message)) return undefined
    throw err
  }
}

type Range = { hash: string, offset: number, length: number }

/** Uploads blobs `hashes` in requests of at most SYNC_PIECE_BATCH_MAX_BYTES: small ones together, large ones piece by piece (in order). */
async function uploadBlobs (client: ApiClient, hashes: readonly string[], sizeOf: (h: string) => number, readPiece: (h: string, offset: number, length: number) => Promise<Buffer>, nameOf: (h: string) => string, opts: { root: string, err: NodeJS.WritableStream & { isTTY?: boolean }, signal?: AbortSignal }): Promise<void> {
  const total = hashes.reduce((s, h) => s + sizeOf(h), 0)
  const show = opts.err.isTTY === true && total >= SYNC_PROGRESS_MIN_BYTES
  let sent = 0
  const batches: Range[][] = []
  let cur: Range[] = []
  let curBytes = 0
  const flush = (): void => { if (cur.length > 0) batches.push(cur); cur = []; curBytes = 0 }
  const large: string[] = []
  for (const h of hashes) {
    const size = sizeOf(h)
    if (size > SYNC_PIECE_BATCH_MAX_BYTES / 2) { large.push(h); continue }
    if (curBytes + size > SYNC_PIECE_BATCH_MAX_BYTES || cur.length >= SYNC_PIECES_MAX) flush()
    cur.push({ hash: h, offset: 0, length: size })
    curBytes += size
  }
  flush()
  // msgpack with raw bytes; base64 in JSON for a daemon of an older version (it answers that the body is not JSON),
  // and for a few small blobs (a changed file), where loading msgpackr would cost more than their base64
  let packr: import('msgpackr/pack').Packr | undefined
  let binary = total > SYNC_UPLOAD_JSON_MAX_BYTES
  const post = async (pieces: Array<{ hash: string, size: number, offset: number, data: Buffer }>): Promise<{ refused: string[] }> => {
    if (binary) {
      packr ??= new (await import('msgpackr/pack')).Packr({ useRecords: false, moreTypes: false })
      try {
        return await client.postBytes<{ refused: string[] }>('/sync/blobs', packr.pack({ pieces }), SYNC_UPLOAD_BINARY_TYPE, opts.signal)
      } catch (err) {
        if (!(err instanceof GridError && err.code === 'INVALID_ARGUMENT' && /not JSON/.test(err.message))) throw err
        binary = false
      }
    }
    return await client.post<{ refused: string[] }>('/sync/blobs', { pieces: pieces.map(p => ({ ...p, data: p.data.toString('base64') })) }, opts.signal)
  }
  const upload = async (ranges: Range[]): Promise<void> => {
    const pieces = await Promise.all(ranges.map(async r => ({ hash: r.hash, size: sizeOf(r.hash), offset: r.offset, data: await readPiece(r.hash, r.offset, r.length) })))
    const res = await post(pieces)
    if (res.refused.length > 0) throw new ProtocolError(`--sync: ${nameOf(res.refused[0] as string)} changed while it was being sent (its content no longer matches its hash); run again`)
    sent += ranges.reduce((s, r) => s + r.length, 0)
    if (show) opts.err.write(`\rgridctl: syncing ${opts.root}: ${mib(sent)} of ${mib(total)} MiB`)
  }
  type Job = { kind: 'batch', ranges: Range[] } | { kind: 'large', hash: string }
  const jobs: Job[] = [...large.map(h => ({ kind: 'large' as const, hash: h })), ...batches.map(b => ({ kind: 'batch' as const, ranges: b }))]
  await mapLimit(jobs, SYNC_LANES, async j => {
    if (j.kind === 'batch') { await upload(j.ranges); return }
    const size = sizeOf(j.hash)
    for (let off = 0; off < size; off += SYNC_PIECE_BATCH_MAX_BYTES) await upload([{ hash: j.hash, offset: off, length: Math.min(SYNC_PIECE_BATCH_MAX_BYTES, size - off) }])
  })
  if (show) opts.err.write('\n')
}

async function readBlob (client: ApiClient, hash: string, size: number | undefined, signal?: AbortSignal): Promise<Buffer> {
  const parts: Buffer[] = []
  for (let off = 0; ; off += SYNC_PIECE_BATCH_MAX_BYTES) {
    const length = size === undefined ? SYNC_PIECE_BATCH_MAX_BYTES : Math.min(SYNC_PIECE_BATCH_MAX_BYTES, size - off)
    if (size !== undefined && length <= 0) break
    const r = await client.post<{ data: string[] }>('/sync/blobs/read', { ranges: [{ hash, offset: off, length }] }, signal)
    const d = Buffer.from(r.data[0] ?? '', 'base64')
    parts.push(d)
    if (d.byteLength < SYNC_PIECE_BATCH_MAX_BYTES) break
  }
  const all = Buffer.concat(parts)
  if (sha256Hex(all) !== hash) throw new ProtocolError(`--fetch: blob ${hash} came back with other content`)
  return all
}

/** Writes the fetched files (manifest `hash` in the local daemon's cache) into `root`; how many were written. */
export async function writeFetched (client: ApiClient, root: string, hash: string, signal?: AbortSignal): Promise<{ written: number, unchanged: number }> {
  const { decodeManifest } = await import('../sync/manifest-codec.ts')
  const m: Manifest = decodeManifest(await readBlob(client, hash, undefined, signal), true)
  const real = await realpath(root)
  let written = 0
  let unchanged = 0
  for (const e of m.entries) {
    if (!isFile(e)) continue
    const dest = join(real, e.path)
    await mkdir(dirname(dest), { recursive: true })
    // never write through a link out of the directory
    const parent = await realpath(dirname(dest))
    if (parent !== real && !parent.startsWith(real + sep)) throw new ProtocolError(`--fetch: ${e.path} would be written outside ${real}`)
    const same = await hashFile(dest).then(h => h === e.sha256, () => false)
    if (same) { unchanged++; continue }
    const data = await readBlob(client, e.sha256, e.size, signal)
    const tmp = `${dest}.grid-fetch-${process.pid}`
    await writeFile(tmp, data, { mode: e.mode & 0o777 })
    await chmod(tmp, e.mode & 0o777)
    await rename(tmp, dest)
    written++
  }
  return { written, unchanged }
}
