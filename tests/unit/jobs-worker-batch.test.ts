import { describe, expect, it } from 'vitest'
import { WORKER_BATCH_MAX } from '../../proto/index.ts'
import { Inflight } from '../../src/jobs/inflight.ts'
import { WORKER_BATCH_MAX_BYTES, WORKER_BATCHES_PER_HOST, WORKER_ITEMS_PER_HOST, WorkerBatcher, payloadBytes } from '../../src/jobs/worker-batch.ts'

describe('jobs - warm-worker batches', () => {
  it('cuts the default items in flight into a few large batches per host, and spreads a small job over every host', () => {
    const b = new WorkerBatcher()
    expect(b.items(WORKER_ITEMS_PER_HOST * 3, 3, 100_000)).toBe(WORKER_ITEMS_PER_HOST / WORKER_BATCHES_PER_HOST)
    expect(b.items(1_000_000, 1, 1_000_000)).toBe(WORKER_BATCH_MAX)
    expect(b.items(WORKER_ITEMS_PER_HOST * 3, 3, 250)).toBe(84)
    expect(b.items(1, 3, 10)).toBe(1)
  })

  it('keeps a batch of large payloads and results under WORKER_BATCH_MAX_BYTES, one item at least', () => {
    const b = new WorkerBatcher()
    const big = 'x'.repeat(60_000)
    const indices = Array.from({ length: 500 }, (_, i) => i)
    const n = b.take(indices, 0, 256, () => big)
    expect(n * payloadBytes(big)).toBeLessThanOrEqual(WORKER_BATCH_MAX_BYTES)
    expect(n).toBeGreaterThan(1)
    expect(b.take(indices, 0, 256, () => 'y'.repeat(2 * WORKER_BATCH_MAX_BYTES))).toBe(1)
    // results that come back large make the next batches smaller
    const before = b.take(indices, 0, 256, () => 1)
    for (let i = 0; i < 1000; i++) b.observe(50_000)
    expect(before).toBe(256)
    expect(b.take(indices, 0, 256, () => 1)).toBeLessThan(30)
    expect(b.take(indices, 490, 256, () => 1)).toBeLessThanOrEqual(10)
  })

  it('tracks the run in flight of each item in a typed array', () => {
    const f = new Inflight(5)
    f.set(3, 2)
    f.set(1, 1)
    f.set(3, 3)
    expect(f.size).toBe(2)
    expect(f.get(3)).toBe(3)
    expect(f.get(0)).toBeUndefined()
    expect(f.entries()).toEqual([[1, 1], [3, 3]])
    f.delete(1)
    f.delete(1)
    expect(f.size).toBe(1)
  })
})
