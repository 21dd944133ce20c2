/** Defaults and limits of directory sync (`gridctl run --sync DIR`), each with why. */

/** Left out of every synced tree: version control, dependencies that are rebuilt per machine, caches, Grid's own. */
export const SYNC_DEFAULT_EXCLUDES = ['.git', 'node_modules', '__pycache__', '.venv', '.grid'] as const
/** The largest tree `--sync` sends unless `--sync-max` says otherwise (2 GiB): a mistake (a data set) is caught early. */
export const SYNC_MAX_DEFAULT_BYTES = 2 * 1024 ** 3
/** The blob cache's default bound (executor.syncCacheSize). */
export const SYNC_CACHE_DEFAULT_BYTES = 10 * 1024 ** 3
/**
 * Bytes of blob data per request (1 MiB): far below the RPC's 16 MiB frame, so a frame begun completes in well under
 * its deadline even on a slow link, and other requests on the stream are not held behind a big one.
 */
export const SYNC_CHUNK_BYTES = 1024 * 1024
/**
 * Piece requests in flight to one peer (or from gridctl to its daemon) at once: enough to hide the round trip and keep
 * the receiver writing while the next request is read, few enough to share the stream. 8: gridctl's upload of 10,000
 * files took 2.9-3.6 s against 3.6-3.8 s with 4; node to node it made no difference measured.
 */
export const SYNC_LANES = 8
/** Manifests remembered per peer as bases for sending the next one as a difference (sync.manifest). */
export const SYNC_DELTA_BASES_PER_PEER = 8
/** A blob that arrives with the wrong content is sent again this many times before the sync fails. */
export const SYNC_RESEND_MAX = 2
/** A partly received blob that gets no piece for this long is dropped (its sender went away). */
export const SYNC_PARTIAL_TTL_MS = 60_000
/** Partly received blobs one source may have open at once (a sender sends a few lanes at a time). */
export const SYNC_PARTIALS_PER_SOURCE_MAX = 64
/**
 * Manifests a node keeps decoded (checked) in memory: the steps of one run (accept, push, the difference, the layout)
 * read the same one, and the next run's difference reads the last. A 10,000-file manifest is about 3 MB decoded.
 */
export const SYNC_MANIFESTS_DECODED_MAX = 8
/** The largest tree a node keeps a spare of, laid out ahead for the next attempt (spare-tree.ts): disk it takes. */
export const SYNC_SPARE_MAX_BYTES = 2 * 1024 ** 3
/** A spare serves a tree at most this many entries (changed, added, removed) away from its own; else it is dropped. */
export const SYNC_SPARE_DIFF_MAX = 1000
/** Files hashed or copied at once when a manifest is built or a tree laid out. */
export const SYNC_FS_CONCURRENCY = 16
/**
 * gridctl uploads at most this many bytes of blobs (a changed file or two) as base64 in JSON rather than msgpack: the
 * few kB more cost less than loading msgpackr (about 8 ms of gridctl's run).
 */
export const SYNC_UPLOAD_JSON_MAX_BYTES = 64 * 1024
/** gridctl shows upload progress on a terminal for transfers larger than this. */
export const SYNC_PROGRESS_MIN_BYTES = 8 * 1024 * 1024
