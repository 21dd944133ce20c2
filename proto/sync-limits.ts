/** The limits of synced trees on the wire, apart from their schemas (typebox), so gridctl's upload path loads no validator. */
/** Most bytes of blob data in one piece request (`sync.put`, `sync.get`, the control API's blob endpoints). */
export const SYNC_PIECE_BATCH_MAX_BYTES = 1024 * 1024
/** Most pieces in one request: many small files share a request. */
export const SYNC_PIECES_MAX = 1024
/** Most hashes in one `sync.missing` question. */
export const SYNC_MISSING_BATCH_MAX = 8192
/** Most entries in a manifest. */
export const SYNC_MANIFEST_MAX_ENTRIES = 200_000
/** Most `--fetch` patterns of a task. */
export const SYNC_FETCH_PATTERNS_MAX = 64
/**
 * The binary form of POST /v1/sync/blobs: the same `{pieces: [{hash, size, offset, data}]}` as msgpack, each `data` raw
 * bytes (msgpack bin) instead of base64 text in JSON: a third fewer bytes, and no text to build or parse either side.
 */
export const SYNC_UPLOAD_BINARY_TYPE = 'application/msgpack'
