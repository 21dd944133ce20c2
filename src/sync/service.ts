/**
 * The sync service of a node: its blob cache and receiver, the RPC handlers peers call (`sync.missing`, `sync.put`,
 * `sync.get`, `sync.collect`), and what the tasks module and the control API ask of it: take a client's manifest
 * and blobs, push a task's tree to its executor, lay a tree out for an attempt, collect and pull `--fetch` files.
 */
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import {
  SYNC_MISSING_BATCH_MAX, SYNC_PIECE_BATCH_MAX_BYTES, syncSubmit, SyncCollect, SyncGet, SyncLacking, SyncManifestDelta, SyncMissing, SyncPut,
  type BlobPiece, type BlobRange, type Manifest, type ManifestEntry, type TaskSync
} from '../../proto/index.ts'
import { GridError, InvalidArgumentError, InvalidConfigError, NotFoundError, ProtocolError, TooLargeError, type NodeId } from '../interface/index.ts'
import type { RpcService } from '../mesh/index.ts'
import { BlobCache } from './blob-cache.ts'
import { BlobReceiver } from './blob-receiver.ts'
import { collectFiles } from './collect.ts'
import { layoutTree } from './layout.ts'
import { SpareTrees } from './spare-tree.ts'
import { stampTree, type TreeStamp } from './tree-stamp.ts'
import { blobsOf, checkChange, checkManifest, decodeManifest, encodeManifest, isFile, sha256Hex } from './manifest-codec.ts'
import { applyDelta, deltaBytes, diffManifests } from './manifest-delta.ts'
import { SYNC_CHUNK_BYTES, SYNC_DELTA_BASES_PER_PEER, SYNC_MANIFESTS_DECODED_MAX } from './constants.ts'
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
  /** where this node lays out a spare of the latest tree, for the next attempt (gridd's own; absent: no spares) */
  spareDir?: string
  /** executor.syncLayout: link (hard links to the cache) needs a task user; auto links only with one (default copy) */
  layout?: 'copy' | 'link' | 'auto'
}

export interface FetchedFiles { manifest: string | null, files: number, bytes: number }

export class SyncService {
  readonly cache: BlobCache
  private readonly receiver: BlobReceiver
  private readonly m: SyncMetrics
  private readonly log: Logger
  /** the manifests this node last sent each peer, newest first: bases for sending the next as a difference */
  private readonly sentTo = new Map<NodeId, string[]>()
  /** manifests decoded and checked lately (hash → manifest, oldest first): a run's tree is read by several steps */
  private readonly decoded = new Map<string, Manifest>()
  private readonly blobsByManifest = new WeakMap<Manifest, ReadonlyMap<string, number>>()
  /** whether layouts place files as hard links to the cache (executor.syncLayout, with a task user only) */
  private readonly link: boolean
  private readonly spares: SpareTrees | undefined
  /** trees laid out for tasks that have not ended, with their stamps (they may become the spare once they end) */
  private readonly trees = new Map<string, { hash: string, m: Manifest, dir: string, stamp: TreeStamp }>()

  constructor (private readonly c: SyncComponents, private readonly init: SyncInit) {
    this.log = c.logger.child({ component: 'sync' })
    if (init.layout === 'link' && init.taskGroup === undefined) throw new InvalidConfigError(['executor.syncLayout: link needs executor.taskUser (a task running as gridd\'s own user could write through a hard link into the sync cache); set a task user, or use copy or auto'])
    this.link = init.taskGroup !== undefined && (init.layout === 'link' || init.layout === 'auto')
    this.cache = new BlobCache(init.cacheDir, init.cacheMaxBytes, this.log)
    const layoutOpts = { ...(init.taskGroup === undefined ? {} : { group: init.taskGroup }), link: this.link }
    this.spares = init.spareDir === undefined ? undefined : new SpareTrees(init.spareDir, this.cache, this.log, layoutOpts)
    this.m = syncMetrics(c.registry, this.cache)
    this.receiver = new BlobReceiver(this.cache, this.log, () => { this.m.refused.inc() })
    c.rpc.handle(SyncMissing, req => ({ missing: this.missing(req.hashes) }))
    c.rpc.handle(SyncLacking, async req => await this.lacking(req.manifest))
    c.rpc.handle(SyncPut, async (req, ctx) => await this.put(`peer:${ctx.peer}`, req.pieces))
    c.rpc.handle(SyncGet, async req => {
      const data = await this.read(req.ranges)
      this.m.sent.inc({ kind: 'fetch' }, data.reduce((s, d) => s + d.byteLength, 0))
      return { data }
    })
    c.rpc.handle(SyncCollect, async req => await this.collect(req.id, req.patterns))
    c.rpc.handle(SyncManifestDelta, async req => await this.takeChange(req, true))
  }

  start (): void { this.cache.open(); this.spares?.open() }
  stop (): void { this.receiver.close() }

  stats (): { bytes: number, blobs: number, limitBytes: number } {
    return { bytes: this.cache.bytes, blobs: this.cache.count, limitBytes: this.cache.limitBytes }
  }

  missing (hashes: readonly string[]): string[] { return hashes.filter(h => !this.cache.has(h)) }

  /** The control API's `{manifest}` question: `[hash]` when this cache lacks the manifest, else its blobs it lacks. */
  async missingOf (hash: string): Promise<string[]> {
    if (!this.cache.has(hash)) return [hash]
    return [...this.blobsOf(await this.manifestOf(hash, false)).keys()].filter(h => !this.cache.has(h))
  }

  /** `sync.lacking`: the blobs of manifest `hash` (here) this cache lacks, unless there are too many to list. */
  private async lacking (hash: string): Promise<{ missing: string[], complete: boolean }> {
    const m = await this.manifestOf(hash)
    const missing: string[] = []
    let complete = true
    for (const h of this.blobsOf(m).keys()) {
      if (this.cache.has(h)) continue
      if (missing.length === SYNC_MISSING_BATCH_MAX) { complete = false; break }
      missing.push(h)
    }
    // the sender sends what is missing next: the attempt's tree is laid out (as a spare) while it comes
    if (missing.length > 0) this.spares?.prepareAhead(hash, m)
    return complete ? { missing, complete } : { missing: [], complete }
  }

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
    const started = Date.now()
    const b = syncSubmit.parseUser(body, 'sync')
    const m = typeof b.manifest === 'string' ? await this.manifestOf(b.manifest, false) : checkManifest(b.manifest, false)
    const lacking = m.entries.find(e => isFile(e) && !this.cache.has(e.sha256))
    if (lacking !== undefined) throw new InvalidArgumentError(`invalid sync: the content of ${lacking.path} (blob ${(lacking as { sha256: string }).sha256}) is not on this node; upload it first (POST /v1/sync/blobs)`)
    // a manifest given by hash is stored already; only one sent whole is encoded
    const hash = typeof b.manifest === 'string' ? b.manifest : await this.cache.putBuffer(encodeManifest(m))
    const files = m.entries.filter(isFile)
    const sync: TaskSync = { manifest: hash, files: files.length, bytes: files.reduce((s, f) => s + f.size, 0) }
    if (b.fetch !== undefined && b.fetch.length > 0) sync.fetch = b.fetch
    this.log.debug({ manifest: hash, files: sync.files, ms: Date.now() - started }, 'synced tree accepted')
    return sync
  }

  /** Makes `peer` hold the tree of `sync` (the manifest and the files it lacks), sent from this node's cache. */
  async push (peer: NodeId, sync: TaskSync, signal?: AbortSignal, progress?: (sent: number, total: number) => void): Promise<void> {
    const started = Date.now()
    const m = await this.manifestOf(sync.manifest)
    const blobs = this.blobsOf(m)
    const manifestSize = this.cache.sizeOf(sync.manifest) ?? encodeManifest(m).byteLength
    const unpin = this.cache.pin([...blobs.keys(), sync.manifest])
    try {
      // which blobs the peer lacks, asked by the manifest: a peer that has it (a tree run there before) answers at
      // once; else the manifest goes first (most often as a difference), and the question again. A tree this node has
      // not sent the peer, but the one before it (an edited project), goes as its difference first: one question less
      let manifestSent = 0
      const known = this.sentTo.get(peer) ?? []
      const base = known.includes(sync.manifest) ? undefined : known.find(h => this.cache.has(h))
      if (base !== undefined) manifestSent = await this.pushDelta(peer, sync.manifest, base, m, manifestSize, signal) ?? 0
      let lacking = await this.lackingOn(peer, sync.manifest, signal)
      if (lacking === 'no-manifest') {
        manifestSent = await this.pushManifest(peer, sync.manifest, m, manifestSize, signal)
        lacking = await this.lackingOn(peer, sync.manifest, signal)
      }
      this.noteSent(peer, sync.manifest)
      const manifestMs = Date.now() - started
      // a peer of an older version (it knows no sync.lacking), or one that lacks too many to list: asked by hashes
      const missing = typeof lacking === 'string' ? undefined : lacking
      const files = await pushBlobs(this.c.rpc, peer, this.cache, blobs, { ...(signal === undefined ? {} : { signal }), ...(progress === undefined ? {} : { progress }), ...(missing === undefined ? {} : { missing }) })
      this.m.sent.inc({ kind: 'file' }, files.sentBytes)
      this.m.sent.inc({ kind: 'manifest' }, manifestSent)
      this.m.saved.inc(files.savedBytes)
      this.m.seconds.observe({ phase: 'transfer' }, (Date.now() - started) / 1000)
      this.log.debug({ peer, manifest: sync.manifest, sentBlobs: files.sentBlobs, sentBytes: files.sentBytes, savedBytes: files.savedBytes, manifestBytes: manifestSent, manifestMs, askedLacking: missing !== undefined, ms: Date.now() - started }, 'synced tree sent')
    } finally {
      unpin()
    }
  }

  /**
   * Which blobs of manifest `hash` `peer` lacks, asked by the manifest (`sync.lacking`): the list; 'too-many' (ask by
   * hashes); 'no-manifest' when it answers NOT_FOUND: it lacks the manifest, or (a peer of an older version) it does
   * not know the method, which a second question after the manifest was sent tells apart.
   */
  private async lackingOn (peer: NodeId, hash: string, signal?: AbortSignal): Promise<string[] | 'too-many' | 'no-manifest'> {
    try {
      const r = await this.c.rpc.request(peer, SyncLacking, { manifest: hash }, { ...(signal === undefined ? {} : { signal }), timeoutMs: 60_000 })
      return r.complete ? r.missing : 'too-many'
    } catch (err) {
      if (err instanceof GridError && err.code === 'NOT_FOUND') return 'no-manifest'
      throw err
    }
  }

  /**
   * The manifest to `peer`: nothing if it has it; else as its difference from the latest one this node sent it that
   * it still has (a changed file costs its entry), else whole. Bytes sent.
   */
  private async pushManifest (peer: NodeId, hash: string, m: Manifest, size: number, signal?: AbortSignal): Promise<number> {
    const opts = { ...(signal === undefined ? {} : { signal }), timeoutMs: 60_000 }
    let sent = 0
    // whether it has the manifest, and which of the bases for a difference: one question
    const bases = (this.sentTo.get(peer) ?? []).filter(h => h !== hash && this.cache.has(h))
    const { missing } = await this.c.rpc.request(peer, SyncMissing, { hashes: [hash, ...bases] }, opts)
    if (missing.includes(hash)) {
      const base = bases.find(b => !missing.includes(b))
      if (base !== undefined) sent = await this.pushDelta(peer, hash, base, m, size, signal) ?? 0
      if (sent === 0) sent = (await pushBlobs(this.c.rpc, peer, this.cache, new Map([[hash, size]]), opts)).sentBytes
    }
    return sent
  }

  /**
   * Manifest `hash` to `peer` as its difference from `base` (`sync.manifest`), when that is small beside the manifest:
   * its bytes once the peer has it; undefined when the peer lacks the base, or the difference is not worth sending.
   */
  private async pushDelta (peer: NodeId, hash: string, base: string, m: Manifest, size: number, signal?: AbortSignal): Promise<number | undefined> {
    const d = diffManifests(await this.manifestOf(base), m)
    const bytes = deltaBytes(d)
    if (bytes >= size / 2 || bytes > SYNC_CHUNK_BYTES) return undefined
    try {
      return (await this.c.rpc.request(peer, SyncManifestDelta, { hash, base, ...d }, { ...(signal === undefined ? {} : { signal }), timeoutMs: 60_000 })).ok ? bytes : undefined
    } catch (err) {
      // a peer that does not know the method (an older version) gets the manifest whole
      if (err instanceof GridError && err.code === 'NOT_FOUND') return undefined
      throw err
    }
  }

  /** `peer` has manifest `hash`: the latest such are the bases of the next one's difference. */
  private noteSent (peer: NodeId, hash: string): void {
    this.sentTo.set(peer, [hash, ...(this.sentTo.get(peer) ?? []).filter(h => h !== hash)].slice(0, SYNC_DELTA_BASES_PER_PEER))
  }

  /**
   * `sync.manifest` (from a peer) and POST /v1/sync/manifest (from the client): rebuilds a manifest from a base this
   * node has and a difference, checked against its hash. Only the difference's entries are checked: the base was.
   */
  async takeChange (req: { hash: string, base: string, removed: string[], upserted: ManifestEntry[] }, fromPeer: boolean): Promise<{ ok: boolean }> {
    if (this.cache.has(req.hash)) return { ok: true }
    if (!this.cache.has(req.base)) return { ok: false }
    const next = checkChange(applyDelta(await this.manifestOf(req.base, fromPeer), req), req.upserted, fromPeer)
    const bytes = encodeManifest(next)
    if (sha256Hex(bytes) !== req.hash) {
      const msg = `the manifest rebuilt from ${req.base} and its difference does not match ${req.hash}`
      throw fromPeer ? new ProtocolError(msg) : new InvalidArgumentError(`invalid request: ${msg}; upload the manifest whole`)
    }
    await this.cache.putBuffer(bytes, req.hash)
    this.remember(req.hash, next)
    return { ok: true }
  }

  /** Lays out `sync`'s tree for task `id` (a fresh directory); its path. NOT_FOUND when a blob is missing here. */
  async layout (id: string, sync: TaskSync): Promise<string> {
    const started = Date.now()
    const m = await this.manifestOf(sync.manifest)
    const blobs = this.blobsOf(m)
    const lacking = [...blobs.keys()].find(h => !this.cache.has(h))
    if (lacking !== undefined) throw new NotFoundError(`this node's sync cache lacks blob ${lacking} of the task's tree`)
    const unpin = this.cache.pin(blobs.keys())
    const dir = this.init.treeOf(id)
    const checkedMs = Date.now() - started
    // an attempt before this one of the same task, whose tree is being looked at to become the spare
    this.trees.delete(id)
    await this.spares?.idle(dir)
    let placed: 'spare' | { copied: number, linked: number }
    let stamp: TreeStamp | undefined
    // a tree whose task may hand it back (it left it as laid out) is stamped: not one of links (they share inodes
    // with the cache and every other tree) nor one whose files --fetch brings back after the task
    const recyclable = this.spares !== undefined && !this.link && (sync.fetch === undefined || sync.fetch.length === 0)
    try {
      stamp = await this.spares?.take(sync.manifest, m, dir)
      if (stamp !== undefined) placed = 'spare'
      else {
        placed = await layoutTree(this.cache, m, dir, { ...(this.init.taskGroup === undefined ? {} : { group: this.init.taskGroup }), link: this.link })
        if (recyclable) stamp = await stampTree(dir, m)
      }
    } finally {
      unpin()
    }
    if (recyclable && stamp !== undefined) this.trees.set(id, { hash: sync.manifest, m, dir, stamp })
    const ms = Date.now() - started
    this.m.seconds.observe({ phase: 'layout' }, ms / 1000)
    this.log.debug({ task: id, manifest: sync.manifest, ...(placed === 'spare' ? { from: 'spare' } : { from: 'cache', linked: placed.linked, copied: placed.copied }), checkedMs, ms }, 'synced tree laid out')
    // the next attempt of this tree (or of the next version of it) finds one ready
    this.spares?.prepare(sync.manifest, m)
    return dir
  }

  /**
   * Task `id` ended on this node (its processes are gone): its tree, if it is still as laid out, may become the spare
   * for the next attempt of that tree (when the background copy of the spare is not ready yet).
   */
  ended (id: string): void {
    const t = this.trees.get(id)
    if (t === undefined) return
    this.trees.delete(id)
    this.spares?.recycle(t.hash, t.m, t.dir, t.stamp)
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

  /** Manifest `hash` from this cache, decoded and checked (once: it is remembered for the next steps that read it). */
  private async manifestOf (hash: string, fromPeer = true): Promise<Manifest> {
    if (!this.cache.has(hash)) throw fromPeer ? new NotFoundError(`this node's sync cache lacks the manifest ${hash}`) : new InvalidArgumentError(`invalid sync: manifest ${hash} is not on this node; upload it first (POST /v1/sync/blobs) or send the manifest itself`)
    const known = this.decoded.get(hash)
    if (known !== undefined) { this.cache.path(hash); this.remember(hash, known); return known }
    const m = decodeManifest(await readFile(this.cache.path(hash)), fromPeer)
    this.remember(hash, m)
    return m
  }

  /**
   * The blobs of manifest `m` (hash → size), worked out once per decoded manifest: a run's steps on each node (the
   * client's question, the push, the peer's `sync.lacking`, the layout) each read them, 10,000 entries a time.
   */
  private blobsOf (m: Manifest): ReadonlyMap<string, number> {
    let b = this.blobsByManifest.get(m)
    if (b === undefined) { b = blobsOf(m); this.blobsByManifest.set(m, b) }
    return b
  }

  private remember (hash: string, m: Manifest): void {
    this.decoded.delete(hash)
    this.decoded.set(hash, m)
    for (const old of this.decoded.keys()) {
      if (this.decoded.size <= SYNC_MANIFESTS_DECODED_MAX) break
      this.decoded.delete(old)
    }
  }
}
