/**
 * Synced directories on the wire (`gridctl run --sync DIR`): the manifest of a tree (path, mode, size, sha256 of each
 * file; symlinks as links), the task spec's `sync` field, and the RPC methods that find which blobs a peer lacks and
 * move them in bounded pieces. A blob is a file's content, named by its sha256; the manifest itself travels as a blob
 * (its canonical JSON), so a task record carries its hash only.
 */
import Type, { type Static } from 'typebox'
import { method } from './rpc.ts'
import { Bytes, validator } from './validate.ts'
import { SYNC_FETCH_PATTERNS_MAX, SYNC_MANIFEST_MAX_ENTRIES, SYNC_MISSING_BATCH_MAX, SYNC_PIECE_BATCH_MAX_BYTES, SYNC_PIECES_MAX } from './sync-limits.ts'

export * from './sync-limits.ts'

export const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' })
const RelPath = Type.String({ minLength: 1, maxLength: 4096 })

/** A regular file: its permission bits, size and content hash. */
export const ManifestFileSchema = Type.Object({ path: RelPath, mode: Type.Integer({ minimum: 0, maximum: 0o7777 }), size: Type.Integer({ minimum: 0 }), sha256: Sha256 }, { additionalProperties: false })
/** A symbolic link, kept as a link (its target, relative, stays inside the tree). */
export const ManifestLinkSchema = Type.Object({ path: RelPath, link: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false })
export const ManifestEntrySchema = Type.Union([ManifestFileSchema, ManifestLinkSchema])
export type ManifestFile = Static<typeof ManifestFileSchema>
export type ManifestLink = Static<typeof ManifestLinkSchema>
export type ManifestEntry = Static<typeof ManifestEntrySchema>

export const ManifestSchema = Type.Object({
  version: Type.Literal(1),
  entries: Type.Array(ManifestEntrySchema, { maxItems: SYNC_MANIFEST_MAX_ENTRIES })
}, { additionalProperties: false })
export type Manifest = Static<typeof ManifestSchema>
export const manifest = validator(ManifestSchema)

const FetchPatterns = Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: SYNC_FETCH_PATTERNS_MAX })

/** A task spec's `sync`: the tree it runs in (its manifest blob) and what comes back after it (`--fetch`). */
export const TaskSyncSchema = Type.Object({
  manifest: Sha256,
  files: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0 }),
  fetch: Type.Optional(FetchPatterns)
}, { additionalProperties: false })
export type TaskSync = Static<typeof TaskSyncSchema>

/** One piece of a blob: `size` is the whole blob's, `offset` where `data` goes; the last piece completes it. */
export const BlobPieceSchema = Type.Object({ hash: Sha256, size: Type.Integer({ minimum: 0 }), offset: Type.Integer({ minimum: 0 }), data: Bytes })
export type BlobPiece = Static<typeof BlobPieceSchema>
export const BlobRangeSchema = Type.Object({ hash: Sha256, offset: Type.Integer({ minimum: 0 }), length: Type.Integer({ minimum: 0, maximum: SYNC_PIECE_BATCH_MAX_BYTES }) })
export type BlobRange = Static<typeof BlobRangeSchema>

/** RPC `sync.missing`: which of these blobs the receiver's cache lacks. */
export const SyncMissing = method('sync.missing', Type.Object({ hashes: Type.Array(Sha256, { maxItems: SYNC_MISSING_BATCH_MAX }) }), Type.Object({ missing: Type.Array(Sha256) }))
/**
 * RPC `sync.lacking`: which blobs of a manifest the receiver has (as a blob) its cache lacks, so a sender that has
 * just sent the manifest (most often as a difference) need not list every hash of the tree. `complete` false when
 * more than SYNC_MISSING_BATCH_MAX are missing (`missing` then empty; the sender asks with `sync.missing`); a receiver
 * that lacks the manifest answers NOT_FOUND (as one that does not know the method does).
 */
export const SyncLacking = method('sync.lacking', Type.Object({ manifest: Sha256 }), Type.Object({ missing: Type.Array(Sha256, { maxItems: SYNC_MISSING_BATCH_MAX }), complete: Type.Boolean() }))
/**
 * RPC `sync.put`: pieces of blobs, in order per blob (at most SYNC_PIECE_BATCH_MAX_BYTES of data). A blob whose
 * content does not match its hash once whole is dropped and named in `refused`: the sender sends it again.
 */
export const SyncPut = method('sync.put', Type.Object({ pieces: Type.Array(BlobPieceSchema, { maxItems: SYNC_PIECES_MAX }) }), Type.Object({ refused: Type.Array(Sha256) }))
/** RPC `sync.get`: ranges of blobs the answerer has (for `--fetch`); a blob it lacks is NOT_FOUND. */
export const SyncGet = method('sync.get', Type.Object({ ranges: Type.Array(BlobRangeSchema, { maxItems: SYNC_PIECES_MAX }) }), Type.Object({ data: Type.Array(Bytes) }))
/**
 * RPC `sync.collect`: the files an attempt wrote under its tree that match `patterns`, taken into the executor's
 * cache; the answer names their manifest blob (null: nothing matched).
 */
export const SyncCollect = method('sync.collect', Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }), attempt: Type.Integer({ minimum: 1 }), patterns: FetchPatterns }), Type.Object({ manifest: Type.Union([Sha256, Type.Null()]), files: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) }))

/**
 * Control API: POST /v1/sync/missing `{hashes}` → `{missing}` (which blobs the local daemon's cache lacks); or
 * `{manifest}` → the manifest itself when the daemon lacks it (upload it, then ask again), else the blobs of its files
 * the cache lacks.
 */
export const SyncMissingBodySchema = Type.Object({ hashes: Type.Optional(Type.Array(Sha256, { maxItems: SYNC_MISSING_BATCH_MAX })), manifest: Type.Optional(Sha256) }, { additionalProperties: false })
/** Control API: POST /v1/sync/blobs `{pieces: [{hash, size, offset, data}]}`, data base64 → `{refused}`. */
export const SyncUploadBodySchema = Type.Object({
  pieces: Type.Array(Type.Object({ hash: Sha256, size: Type.Integer({ minimum: 0 }), offset: Type.Integer({ minimum: 0 }), data: Type.String() }, { additionalProperties: false }), { maxItems: SYNC_PIECES_MAX })
}, { additionalProperties: false })
/** Control API: POST /v1/sync/blobs as msgpack (SYNC_UPLOAD_BINARY_TYPE): the same body, each `data` raw bytes. */
export const SyncUploadBinaryBodySchema = Type.Object({ pieces: Type.Array(BlobPieceSchema, { maxItems: SYNC_PIECES_MAX }) }, { additionalProperties: false })
/** Control API: POST /v1/sync/blobs/read `{ranges: [{hash, offset, length}]}` → `{data: [base64...]}`. */
export const SyncReadBodySchema = Type.Object({ ranges: Type.Array(BlobRangeSchema, { maxItems: SYNC_PIECES_MAX }) }, { additionalProperties: false })
/** The `sync` of a POST /v1/tasks body: a manifest (or the hash of one uploaded as a blob) and `--fetch` patterns. */
export const SyncSubmitSchema = Type.Object({ manifest: Type.Union([ManifestSchema, Sha256]), fetch: Type.Optional(FetchPatterns) }, { additionalProperties: false })
/**
 * Control API: POST /v1/sync/manifest `{hash, base, removed, upserted}` → `{ok}`: a manifest as its difference from
 * one the daemon has (`base`, most often the last one this client sent), rebuilt and checked against `hash` as
 * `sync.manifest` does; `ok` false when the daemon lacks `base` (then upload the manifest whole, POST /v1/sync/blobs).
 */
export const SyncManifestBodySchema = Type.Object({
  hash: Sha256,
  base: Sha256,
  removed: Type.Array(RelPath, { maxItems: SYNC_MANIFEST_MAX_ENTRIES }),
  upserted: Type.Array(ManifestEntrySchema, { maxItems: SYNC_MANIFEST_MAX_ENTRIES })
}, { additionalProperties: false })
export const syncMissingBody = validator(SyncMissingBodySchema)
export const syncManifestBody = validator(SyncManifestBodySchema)
export const syncUploadBody = validator(SyncUploadBodySchema)
export const syncUploadBinaryBody = validator(SyncUploadBinaryBodySchema)
export const syncReadBody = validator(SyncReadBodySchema)
export const syncSubmit = validator(SyncSubmitSchema)

/**
 * RPC `sync.manifest`: a manifest sent as its difference from one the receiver has (`base`): the entries added or
 * changed, and the paths removed. The receiver rebuilds it, checks its hash is `hash`, and keeps it as a blob; `ok`
 * false when it lacks `base` (the sender then sends the whole manifest). A changed file costs its entry, not the
 * whole manifest (1.2 MB for 10,000 files).
 */
export const SyncManifestDelta = method('sync.manifest', Type.Object({
  hash: Sha256,
  base: Sha256,
  removed: Type.Array(RelPath, { maxItems: SYNC_MANIFEST_MAX_ENTRIES }),
  upserted: Type.Array(ManifestEntrySchema, { maxItems: SYNC_MANIFEST_MAX_ENTRIES })
}), Type.Object({ ok: Type.Boolean() }))
