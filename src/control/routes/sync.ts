/**
 * The blob endpoints of synced trees (`gridctl run --sync`): which blobs this node lacks, a manifest as its difference
 * from one this node has, uploads of blob pieces (base64 in bounded JSON requests, each answered once written), and
 * reads of blobs (for `--fetch`).
 */
import { SYNC_PIECE_BATCH_MAX_BYTES, syncManifestBody, syncMissingBody, syncReadBody, syncUploadBody } from '../../../proto/index.ts'
import { TooLargeError, UnavailableError } from '../../interface/index.ts'
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
        const b = syncUploadBody.parseUser(await req.body(), 'upload')
        const pieces = b.pieces.map(p => ({ hash: p.hash, size: p.size, offset: p.offset, data: Buffer.from(p.data, 'base64') }))
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
