/**
 * How a warm-worker job's items are cut into batched requests (worker.call): large enough that a batch's fixed
 * costs (an RPC, its framing and encryption, a promise chain) are shared by many items, a few batches in flight per
 * host so that a host's workers never wait for the next one, and bounded in bytes (what is sent and what comes back
 * travel in one RPC frame). Pure bookkeeping.
 */
import { WORKER_BATCH_MAX } from '../../proto/index.ts'

/** A warm-worker job's default --max-parallel per node that hosts the type: under a node's worker queue limit (executor.queueLimit, 1000 by default), so no batch is refused for a full queue. */
export const WORKER_ITEMS_PER_HOST = 768
/** Batches in flight per host the items in flight are cut into: one being served, others on their way. */
export const WORKER_BATCHES_PER_HOST = 3
/** A batch's payloads and expected results, estimated as JSON, stay under this (a few items over it go alone). */
export const WORKER_BATCH_MAX_BYTES = 1024 * 1024

export class WorkerBatcher {
  /** a moving average of a result's size (bytes of its JSON text) */
  private resultBytes = 0

  /** Most items per batch: the items in flight over a few batches per host, and a small job spread over every host. */
  items (maxParallel: number, hosts: number, total: number): number {
    const h = Math.max(1, hosts)
    const per = Math.min(Math.ceil(maxParallel / (h * WORKER_BATCHES_PER_HOST)), Math.ceil(total / h))
    return Math.max(1, Math.min(WORKER_BATCH_MAX, per))
  }

  /** How many of indices[from...] the next batch takes: at most `most`, and at least one, within WORKER_BATCH_MAX_BYTES. */
  take (indices: readonly number[], from: number, most: number, itemOf: (i: number) => unknown): number {
    const end = Math.min(indices.length, from + most)
    let bytes = 0
    let k = from
    while (k < end) {
      bytes += payloadBytes(itemOf(indices[k] as number)) + this.resultBytes
      if (bytes > WORKER_BATCH_MAX_BYTES && k > from) break
      k++
    }
    return k - from
  }

  /** A result of this many bytes came back. */
  observe (bytes: number): void {
    this.resultBytes += (bytes - this.resultBytes) / 64
  }
}

/** A payload's size as JSON, about (numbers and strings without encoding them; anything else is measured). */
export function payloadBytes (item: unknown): number {
  switch (typeof item) {
    case 'number': return 24
    case 'boolean': return 5
    case 'string': return item.length + 2
    default: return item === null || item === undefined ? 4 : (JSON.stringify(item)?.length ?? 4)
  }
}
