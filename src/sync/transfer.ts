/**
 * Moving blobs between two nodes over the pair's RPC stream: `push` asks the peer which blobs it lacks
 * (`sync.missing`) and sends only those (`sync.put`), in pieces of at most SYNC_CHUNK_BYTES (many small files share
 * one request, a large file goes piece by piece), SYNC_LANES requests at a time; a blob the peer refuses (its hash did
 * not match on arrival) is sent again. `pull` brings blobs the other way (`sync.get`), for `--fetch`.
 */
import {
  SYNC_MISSING_BATCH_MAX, SYNC_PIECES_MAX, SyncGet, SyncMissing, SyncPut, type BlobPiece
} from '../../proto/index.ts'
import { ProtocolError, type NodeId } from '../interface/index.ts'
import type { RpcService } from '../mesh/index.ts'
import type { BlobCache } from './blob-cache.ts'
import type { BlobReceiver } from './blob-receiver.ts'
import { SYNC_CHUNK_BYTES, SYNC_LANES, SYNC_RESEND_MAX } from './constants.ts'
import { sha256Hex } from './manifest-codec.ts'
import { mapLimit } from './pool.ts'

export type SyncRpc = Pick<RpcService, 'request'>

/** Per request: a piece of 1 MiB takes well under a second even on a slow link. */
const PIECE_REQUEST_TIMEOUT_MS = 60_000

export interface PushResult {
  /** bytes sent, by what they were */
  sentBytes: number
  sentBlobs: number
  /** bytes the peer had already */
  savedBytes: number
}

export interface PushOptions {
  signal?: AbortSignal
  /** bytes sent so far, of `total` to send */
  progress?: (sent: number, total: number) => void
  /** which of `blobs` the peer lacks, when already known (sync.lacking): not asked again */
  missing?: readonly string[]
}

/** Makes `peer` hold every blob of `blobs` (hash → size) that it lacks, from `cache`. */
export async function pushBlobs (rpc: SyncRpc, peer: NodeId, cache: Pick<BlobCache, 'read'>, blobs: ReadonlyMap<string, number>, opts: PushOptions = {}): Promise<PushResult> {
  const all = opts.missing === undefined ? [...blobs.keys()] : []
  const missing: string[] = opts.missing === undefined ? [] : opts.missing.filter(h => blobs.has(h))
  for (let i = 0; i < all.length; i += SYNC_MISSING_BATCH_MAX) {
    const r = await rpc.request(peer, SyncMissing, { hashes: all.slice(i, i + SYNC_MISSING_BATCH_MAX) }, { signal: opts.signal, timeoutMs: PIECE_REQUEST_TIMEOUT_MS })
    missing.push(...r.missing)
  }
  const lacking = new Set(missing)
  let savedBytes = 0
  for (const [h, size] of blobs) if (!lacking.has(h)) savedBytes += size
  const total = missing.reduce((s, h) => s + (blobs.get(h) ?? 0), 0)
  let sentBytes = 0
  const send = async (pieces: BlobPiece[]): Promise<string[]> => {
    const r = await rpc.request(peer, SyncPut, { pieces }, { signal: opts.signal, timeoutMs: PIECE_REQUEST_TIMEOUT_MS })
    for (const p of pieces) sentBytes += p.data.byteLength
    opts.progress?.(sentBytes, total)
    return r.refused
  }
  let round = missing
  for (let attempt = 0; round.length > 0; attempt++) {
    if (attempt > SYNC_RESEND_MAX) throw new ProtocolError(`peer ${peer} refused ${round.length} blob${round.length === 1 ? '' : 's'} ${SYNC_RESEND_MAX + 1} times (their content did not match their hash on arrival), first ${round[0] ?? ''}`)
    const refused = new Set<string>()
    await mapLimit(plan(round, blobs), SYNC_LANES, async item => {
      if (item.kind === 'small') {
        const pieces = await Promise.all(item.hashes.map(async h => ({ hash: h, size: blobs.get(h) ?? 0, offset: 0, data: await cache.read(h, 0, blobs.get(h) ?? 0) })))
        for (const h of await send(pieces)) refused.add(h)
        return
      }
      const size = blobs.get(item.hash) ?? 0
      for (let off = 0; off < size; off += SYNC_CHUNK_BYTES) {
        const data = await cache.read(item.hash, off, Math.min(SYNC_CHUNK_BYTES, size - off))
        const r = await send([{ hash: item.hash, size, offset: off, data }])
        if (r.length > 0) { refused.add(item.hash); return }
      }
    })
    round = [...refused]
  }
  return { sentBytes, sentBlobs: missing.length, savedBytes }
}

type Item = { kind: 'small', hashes: string[] } | { kind: 'large', hash: string }

/** Small blobs grouped into requests of up to SYNC_CHUNK_BYTES; each large one its own item (sent in pieces). */
function plan (hashes: readonly string[], sizes: ReadonlyMap<string, number>): Item[] {
  const items: Item[] = []
  let group: string[] = []
  let groupBytes = 0
  for (const h of hashes) {
    const size = sizes.get(h) ?? 0
    if (size > SYNC_CHUNK_BYTES / 2) { items.push({ kind: 'large', hash: h }); continue }
    if (group.length >= SYNC_PIECES_MAX || groupBytes + size > SYNC_CHUNK_BYTES) { items.push({ kind: 'small', hashes: group }); group = []; groupBytes = 0 }
    group.push(h)
    groupBytes += size
  }
  if (group.length > 0) items.push({ kind: 'small', hashes: group })
  return items
}

/** Reads a whole blob of unknown size (a manifest) from `peer`, checked against its hash. */
export async function pullWhole (rpc: SyncRpc, peer: NodeId, hash: string, signal?: AbortSignal): Promise<Buffer> {
  const parts: Buffer[] = []
  for (let off = 0; ; off += SYNC_CHUNK_BYTES) {
    const r = await rpc.request(peer, SyncGet, { ranges: [{ hash, offset: off, length: SYNC_CHUNK_BYTES }] }, { signal, timeoutMs: PIECE_REQUEST_TIMEOUT_MS })
    const d = Buffer.from(r.data[0] ?? new Uint8Array())
    parts.push(d)
    if (d.byteLength < SYNC_CHUNK_BYTES) break
  }
  const all = Buffer.concat(parts)
  if (sha256Hex(all) !== hash) throw new ProtocolError(`peer ${peer} sent blob ${hash} with other content`)
  return all
}

/** Brings the blobs of `blobs` that `cache` lacks from `peer`, through `receiver` (checked as any arrival). */
export async function pullBlobs (rpc: SyncRpc, peer: NodeId, cache: Pick<BlobCache, 'has'>, receiver: Pick<BlobReceiver, 'receive'>, blobs: ReadonlyMap<string, number>, signal?: AbortSignal): Promise<number> {
  const wanted = [...blobs.keys()].filter(h => !cache.has(h))
  let bytes = 0
  await mapLimit(plan(wanted, blobs), SYNC_LANES, async item => {
    const source = `pull:${peer}:${item.kind === 'large' ? item.hash : 'small'}`
    const ranges = item.kind === 'small'
      ? item.hashes.map(h => ({ hash: h, offset: 0, length: blobs.get(h) ?? 0 }))
      : Array.from({ length: Math.ceil((blobs.get(item.hash) ?? 0) / SYNC_CHUNK_BYTES) }, (_, i) => ({ hash: item.hash, offset: i * SYNC_CHUNK_BYTES, length: Math.min(SYNC_CHUNK_BYTES, (blobs.get(item.hash) ?? 0) - i * SYNC_CHUNK_BYTES) }))
    const batches = item.kind === 'small' ? [ranges] : ranges.map(r => [r])
    for (const batch of batches) {
      const r = await rpc.request(peer, SyncGet, { ranges: batch }, { signal, timeoutMs: PIECE_REQUEST_TIMEOUT_MS })
      const pieces = batch.map((rg, i) => ({ hash: rg.hash, size: blobs.get(rg.hash) ?? 0, offset: rg.offset, data: r.data[i] ?? new Uint8Array() }))
      const got = await receiver.receive(source, pieces)
      bytes += got.bytes
      if (got.refused.length > 0) throw new ProtocolError(`peer ${peer} sent ${got.refused.length} blob(s) whose content did not match their hash, first ${got.refused[0] ?? ''}`)
    }
  })
  return bytes
}
