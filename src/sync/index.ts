/**
 * sync: shipping a working directory with a task (`gridctl run --sync DIR`) as content-addressed blobs. Owns the
 * manifest of a tree (built by gridctl, checked by every receiver), the excludes, each node's bounded blob cache, the
 * transfer of only the blobs a peer lacks over the pair's RPC stream, the layout of an attempt's fresh tree, and the
 * collection of `--fetch` files. It must not decide where a task runs or run processes: the tasks module calls it
 * before an offer and before admission, and the executor runs the task in the directory it laid out.
 * gridctl imports `manifest.ts` and `manifest-codec.ts` only (no daemon state).
 */
export { SyncService, type SyncComponents, type SyncInit, type FetchedFiles } from './service.ts'
export { buildManifest, hashFile, type BuildOptions, type BuiltManifest } from './manifest.ts'
export { loadExcludes, type Excludes } from './excludes.ts'
export { BlobCache } from './blob-cache.ts'
export { BlobReceiver } from './blob-receiver.ts'
export { encodeManifest, decodeManifest, checkManifest, blobsOf, sha256Hex } from './manifest-codec.ts'
export * from './constants.ts'
