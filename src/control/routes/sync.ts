/**
 * The blob endpoints of synced trees (`gridctl run --sync`): which blobs this node lacks, a manifest as its difference
 * from one this node has, uploads of blob pieces (bounded requests, each answered once written: msgpack with raw bytes,
 * or JSON with base64 text), and reads of blobs (for `--fetch`).
 */
import { decode } from '../../../proto/codec.ts'
import { SYNC_PIECE_BATCH_MAX_BYTES, SYNC_UPLOAD_BINARY_TYPE, syncManifestBody, syncMissingBody, syncReadBody, syncUploadBinaryBody, syncUploadBody, type BlobPiece } from '../../../proto/index.ts'
import { InvalidArgumentError, TooLargeError, UnavailableError } from '../../interface/index.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

export function syncRoutes (deps: ControlDeps): Route[] {
  const sync = (): NonNullable<ControlDeps['sync']> => {
    if (deps.sync === undefined) throw new UnavailableError('this node has no sync cache')
    return deps.sync
  }
  return [
    {
      method: 'POST',
      path: '/sync/missing',
      handler: async req => {
        const b = syncMissingBody.parseUser(await req.body(), 'request')
        return { json: { missing: b.manifest === undefined ? sync().missing(b.hashes ?? []) : await sync().missingOf(b.manifest) } }
      }
    },
    {
      // a manifest as its difference from one this node has: a changed file of a large tree costs its entry
      method: 'POST',
      path: '/sync/manifest',
      handler: async req => ({ json: await sync().takeChange(syncManifestBody.parseUser(await req.body(), 'request'), false) })
    },
    {
      method: 'POST',
      path: '/sync/blobs',
      handler: async req => {
        const pieces = req.contentType === SYNC_UPLOAD_BINARY_TYPE ? binaryPieces(await req.bytes()) : base64Pieces(await req.body())
        const bytes = pieces.reduce((s, p) => s + p.data.byteLength, 0)
        if (bytes > SYNC_PIECE_BATCH_MAX_BYTES) throw new TooLargeError(`${bytes} bytes of blob data in one upload; the limit is ${SYNC_PIECE_BATCH_MAX_BYTES}`)
        return { json: await sync().put('client', pieces) }
      }
    },
    {
      method: 'POST',
      path: '/sync/blobs/read',
      handler: async req => ({ json: { data: (await sync().read(syncReadBody.parseUser(await req.body(), 'request').ranges)).map(d => d.toString('base64')) } })
    }
  ]
}

/** The pieces of a msgpack upload (gridctl's): their bytes as they came. */
function binaryPieces (body: Buffer): BlobPiece[] {
  let value: unknown
  try {
    value = decode(body)
  } catch (err) {
    throw new InvalidArgumentError(`invalid upload: the body is not msgpack (${(err as Error).message}); send {pieces: [{hash, size, offset, data}]} as ${SYNC_UPLOAD_BINARY_TYPE}, or as JSON with data in base64`, { cause: err })
  }
  return syncUploadBinaryBody.parseUser(value, 'upload').pieces
}

/** The pieces of a JSON upload: data in base64. */
function base64Pieces (body: unknown): BlobPiece[] {
  return syncUploadBody.parseUser(body, 'upload').pieces.map(p => ({ hash: p.hash, size: p.size, offset: p.offset, data: Buffer.from(p.data, 'base64') }))
}
