/**
 * The sync service of a node: its blob cache and receiver, the RPC handlers peers call (`sync.missing`, `sync.put`,
 * `sync.get`, `sync.collect`), and what the tasks module and the control API ask of it: take a client's manifest
 * and blobs, push a task's tree to its executor, lay a tree out for an attempt, collect and pull `--fetch` files.
 */
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import {
  SYNC_PIECE_BATCH_MAX_BYTES, syncSubmit, SyncCollect, SyncGet, SyncManifestDelta, SyncMissing, SyncPut,
  type BlobPiece, type BlobRange, type Manifest, type ManifestEntry, type TaskSync
} from '../../proto/index.ts'
import { InvalidArgumentError, NotFoundError, ProtocolError, TooLargeError, type NodeId } from '../interface/index.ts'
import type { RpcService } from '../mesh/index.ts'
import { BlobCache } from './blob-cache.ts'
import { BlobReceiver } from './blob-receiver.ts'
import { collectFiles } from './collect.ts'
import { layoutTree } from './layout.ts'
import { blobsOf, checkManifest, decodeManifest, encodeManifest, isFile, sha256Hex } from './manifest-codec.ts'
import { applyDelta, deltaBytes, diffManifests } from './manifest-delta.ts'
import { SYNC_CHUNK_BYTES, SYNC_DELTA_BASES_PER_PEER } from './constants.ts'
import { syncMetrics, type SyncMetrics } from './sync-metrics.ts'
import { pullBlobs, pullWhole, pushBlobs } from './transfer.ts'

export interface SyncComponents {
  rpc: Pick<RpcService, 'request' | 'handle'>
  logger: Logger
  registry: Registry
}

export interface SyncInit {
  /** where the cache lives (under gridd's data dir) */
  cacheDir: string
  cacheMaxBytes: number
  /** where an attempt's tree is laid out: its directory there, by task id (the executor's scratch directory) */
  treeOf: (taskId: string) => string
  /** the task user's group, when tasks run as another user */
  taskGroup?: number
}

export interface FetchedFiles { manifest: string | null, files: number, bytes: number }

export class SyncService {
  readonly cache: BlobCache
  private readonly receiver: BlobReceiver
  private readonly m: SyncMetrics
  private readonly log: Logger
  /** the manifests this node last sent each peer, newest first: bases for sending the next as a difference */
  private readonly sentTo = new Map<NodeId, string[]>()

  constructor (private readonly c: SyncComponents, private readonly init: SyncInit) {
    this.log = c.logger.child({ component: 'sync' })
    this.cache = new BlobCache(init.cacheDir, init.cacheMaxBytes, this.log)
    this.m = syncMetrics(c.registry, this.cache)
    this.receiver = new BlobReceiver(this.cache, this.log, () => { this.m.refused.inc() })
    c.rpc.handle(SyncMissing, req => ({ missing: this.missing(req.hashes) }))
    c.rpc.handle(SyncPut, async (req, ctx) => await this.put(`peer:${ctx.peer}`, req.pieces))
    c.rpc.handle(SyncGet, async req => {
      const data = await this.read(req.ranges)
      this.m.sent.inc({ kind: 'fetch' }, data.reduce((s, d) => s + d.byteLength, 0))
      return { data }
    })
    c.rpc.handle(SyncCollect, async req => await this.collect(req.id, req.patterns))
    c.rpc.handle(SyncManifestDelta, async req => await this.takeDelta(req))
  }

  start (): void { this.cache.open() }
  stop (): void { this.receiver.close() }

  stats (): { bytes: number, blobs: number, limitBytes: number } {
    return { bytes: this.cache.bytes, blobs: this.cache.count, limitBytes: this.cache.limitBytes }
  }

  missing (hashes: readonly string[]): string[] { return hashes.filter(h => !this.cache.has(h)) }

  async put (source: string, pieces: readonly BlobPiece[]): Promise<{ refused: string[] }> {
    const bytes = pieces.reduce((s, p) => s + p.data.byteLength, 0)
    if (bytes > SYNC_PIECE_BATCH_MAX_BYTES) throw new TooLargeError(`${bytes} bytes of blob pieces in one request; the limit is ${SYNC_PIECE_BATCH_MAX_BYTES}`)
    const r = await this.receiver.receive(source, pieces)
    return { refused: r.refused }
  }

  async read (ranges: readonly BlobRange[]): Promise<Buffer[]> {
    const total = ranges.reduce((s, r) => s + r.length, 0)
    if (total > SYNC_PIECE_BATCH_MAX_BYTES) throw new TooLargeError(`${total} bytes asked for in one request; the limit is ${SYNC_PIECE_BATCH_MAX_BYTES}`)
    return await Promise.all(ranges.map(async r => await this.cache.read(r.hash, r.offset, r.length)))
  }

  /**
   * A client's `sync: {manifest, fetch}` → the spec's `sync`: the manifest stored as a blob, every file's blob
   * present here already (uploaded first), else INVALID_ARGUMENT naming the first path whose content is missing.
   */
  async accept (body: unknown): Promise<TaskSync> {
    const b = syncSubmit.parseUser(body, 'sync')
    const m = typeof b.manifest === 'string' ? await this.manifestOf(b.manifest, false) : checkManifest(b.manifest, false)
    const lacking = m.entries.find(e => isFile(e) && !this.cache.has(e.sha256))
    if (lacking !== undefined) throw new InvalidArgumentError(`invalid sync: the content of ${lacking.path} (blob ${(lacking as { sha256: string }).sha256}) is not on this node; upload it first (POST /v1/sync/blobs)`)
    const hash = await this.cache.putBuffer(encodeManifest(m))
    const files = m.entries.filter(isFile)
    const sync: TaskSync = { manifest: hash, files: files.length, bytes: files.reduce((s, f) => s + f.size, 0) }
    if (b.fetch !== undefined && b.fetch.length > 0) sync.fetch = b.fetch
    return sync
  }

  /** Makes `peer` hold the tree of `sync` (the manifest and the files it lacks), sent from this node's cache. */
  async push (peer: NodeId, sync: TaskSync, signal?: AbortSignal, progress?: (sent: number, total: number) => void): Promise<void> {
    const started = Date.now()
    const m = await this.manifestOf(sync.manifest)
    const blobs = blobsOf(m)
    const manifestSize = encodeManifest(m).byteLength
    const unpin = this.cache.pin([...blobs.keys(), sync.manifest])
    try {
      const files = await pushBlobs(this.c.rpc, peer, this.cache, blobs, { ...(signal === undefined ? {} : { signal }), ...(progress === undefined ? {} : { progress }) })
      const manifestSent = await this.pushManifest(peer, sync.manifest, m, manifestSize, signal)
      this.m.sent.inc({ kind: 'file' }, files.sentBytes)
      this.m.sent.inc({ kind: 'manifest' }, manifestSent)
      this.m.saved.inc(files.savedBytes)
      this.m.seconds.observe({ phase: 'transfer' }, (Date.now() - started) / 1000)
      this.log.debug({ peer, manifest: sync.manifest, sentBlobs: files.sentBlobs, sentBytes: files.sentBytes, savedBytes: files.savedBytes, ms: Date.now() - started }, 'synced tree sent')
    } finally {
      unpin()
    }
  }

  /**
   * The manifest to `peer`: nothing if it has it; else as its difference from the latest one this node sent it that
   * it still has (a changed file costs its entry), else whole. Bytes sent.
   */
  private async pushManifest (peer: NodeId, hash: string, m: Manifest, size: number, signal?: AbortSignal): Promise<number> {
    const opts = { ...(signal === undefined ? {} : { signal }), timeoutMs: 60_000 }
    let sent = 0
    const { missing } = await this.c.rpc.request(peer, SyncMissing, { hashes: [hash] }, opts)
    if (missing.length > 0) {
      const bases = (this.sentTo.get(peer) ?? []).filter(h => h !== hash && this.cache.has(h))
      const theirs = bases.length === 0 ? [] : (await this.c.rpc.request(peer, SyncMissing, { hashes: bases }, opts)).missing
      const base = bases.find(b => !theirs.includes(b))
      if (base !== undefined) {
        const d = diffManifests(await this.manifestOf(base), m)
        const bytes = deltaBytes(d)
        if (bytes < size / 2 && bytes <= SYNC_CHUNK_BYTES && (await this.c.rpc.request(peer, SyncManifestDelta, { hash, base, ...d }, opts)).ok) sent = bytes
      }
      if (sent === 0) sent = (await pushBlobs(this.c.rpc, peer, this.cache, new Map([[hash, size]]), opts)).sentBytes
    }
    const list = [hash, ...(this.sentTo.get(peer) ?? []).filter(h => h !== hash)].slice(0, SYNC_DELTA_BASES_PER_PEER)
    this.sentTo.set(peer, list)
    return sent
  }

  /** `sync.manifest`: rebuilds a manifest from a base this node has and a difference, checked against its hash. */
  private async takeDelta (req: { hash: string, base: string, removed: string[], upserted: ManifestEntry[] }): Promise<{ ok: boolean }> {
    if (this.cache.has(req.hash)) return { ok: true }
    if (!this.cache.has(req.base)) return { ok: false }
    const next = checkManifest(applyDelta(await this.manifestOf(req.base), req), true)
    const bytes = encodeManifest(next)
    if (sha256Hex(bytes) !== req.hash) throw new ProtocolError(`the manifest rebuilt from ${req.base} and its difference does not match ${req.hash}`)
    await this.cache.putBuffer(bytes)
    return { ok: true }
  }

  /** Lays out `sync`'s tree for task `id` (a fresh directory); its path. NOT_FOUND when a blob is missing here. */
  async layout (id: string, sync: TaskSync): Promise<string> {
    const started = Date.now()
    const m = await this.manifestOf(sync.manifest)
    const blobs = blobsOf(m)
    const lacking = [...blobs.keys()].find(h => !this.cache.has(h))
    if (lacking !== undefined) throw new NotFoundError(`this node's sync cache lacks blob ${lacking} of the task's tree`)
    const unpin = this.cache.pin(blobs.keys())
    const dir = this.init.treeOf(id)
    try {
      await layoutTree(this.cache, m, dir, this.init.taskGroup)
    } finally {
      unpin()
    }
    this.m.seconds.observe({ phase: 'layout' }, (Date.now() - started) / 1000)
    return dir
  }

  /** `--fetch` on the executor: the files of task `id`'s tree matching `patterns`, taken into the cache. */
  async collect (id: string, patterns: readonly string[]): Promise<FetchedFiles> {
    const { manifest, bytes } = await collectFiles(this.cache, this.init.treeOf(id), patterns)
    if (manifest.entries.length === 0) return { manifest: null, files: 0, bytes: 0 }
    return { manifest: await this.cache.putBuffer(encodeManifest(manifest)), files: manifest.entries.length, bytes }
  }

  /** `--fetch` at the coordinator: collect on `peer` (or here), then bring what this cache lacks. */
  async fetchFrom (peer: NodeId, self: boolean, id: string, attempt: number, patterns: readonly string[], signal?: AbortSignal): Promise<FetchedFiles> {
    const started = Date.now()
    if (self) return await this.collect(id, patterns)
    const got = await this.c.rpc.request(peer, SyncCollect, { id, attempt, patterns: [...patterns] }, { ...(signal === undefined ? {} : { signal }), timeoutMs: 120_000 })
    if (got.manifest === null) return got
    if (!this.cache.has(got.manifest)) await this.cache.putBuffer(await pullWhole(this.c.rpc, peer, got.manifest, signal))
    const m = await this.manifestOf(got.manifest)
    await pullBlobs(this.c.rpc, peer, this.cache, this.receiver, blobsOf(m), signal)
    this.m.seconds.observe({ phase: 'fetch' }, (Date.now() - started) / 1000)
    return got
  }

  private async manifestOf (hash: string, fromPeer = true): Promise<Manifest> {
    if (!this.cache.has(hash)) throw fromPeer ? new NotFoundError(`this node's sync cache lacks the manifest ${hash}`) : new InvalidArgumentError(`invalid sync: manifest ${hash} is not on this node; upload it first (POST /v1/sync/blobs) or send the manifest itself`)
    return decodeManifest(await readFile(this.cache.path(hash)), fromPeer)
  }
}
