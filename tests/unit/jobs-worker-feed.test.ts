/**
 * A warm-worker job's feed against a stub worker service: batches sized for the hosts, each reply recorded in the
 * driver's table, refused items sent again, failures and calls that fail recorded as failed, and nothing sent again
 * once the driver ends.
 */
import { describe, expect, it } from 'vitest'
import type { ItemRun, TaskSpec, WorkerOutcome } from '../../proto/index.ts'
import { GridError } from '../../src/interface/index.ts'
import { Inflight } from '../../src/jobs/inflight.ts'
import { ChunkSchedule } from '../../src/jobs/progress.ts'
import { RunTable } from '../../src/jobs/run-table.ts'
import { WorkerFeed, type FeedDriver } from '../../src/jobs/worker-feed.ts'
import type { WorkerCallRequest, WorkerCallResult } from '../../src/tasks/index.ts'
import { waitFor } from '../helpers/cluster.ts'

const SPEC = { type: 'echo', priority: 0, retries: 0 } as unknown as TaskSpec

interface Harness { feed: WorkerFeed, d: FeedDriver, calls: WorkerCallRequest[], ended: Array<[number, ItemRun['status']]>, batches: number, ending: boolean }

/** A feed over `n` items (each recorded running, run 1) whose worker service answers with `answer`. */
function harness (n: number, hosts: number, maxParallel: number, answer: (req: WorkerCallRequest, call: number) => Promise<WorkerOutcome[]>): Harness {
  const runs = new RunTable(n)
  const items = Array.from({ length: n }, (_, i) => i)
  const h: Harness = { calls: [], ended: [], batches: 0, ending: false } as unknown as Harness
  const d: FeedDriver = {
    runs,
    inflight: new Inflight(n),
    chunks: new ChunkSchedule(new Array<ItemRun | null>(n).fill(null)),
    items,
    round: () => 0,
    ending: () => h.ending,
    ended: (i, run, res) => { d.inflight.delete(i); runs.set(i, { ...res, run }); h.ended.push([i, res.status]) },
    completed: () => {},
    batchDone: () => { h.batches++ }
  }
  const workers = {
    isWorkerType: () => true,
    cannotServe: () => undefined,
    hostCount: () => hosts,
    call: async (req: WorkerCallRequest): Promise<WorkerCallResult> => {
      h.calls.push(req)
      return { node: 'n-host', nodeName: 'host', results: await answer(req, h.calls.length) }
    }
  }
  for (let i = 0; i < n; i++) runs.setRunning(i, 1, 0)
  h.d = d
  h.feed = new WorkerFeed(workers, SPEC, maxParallel, d)
  return h
}

const echo = async (req: WorkerCallRequest): Promise<WorkerOutcome[]> => req.payloads.map(p => ({ ok: true, result: { p } }))

describe('jobs - warm-worker feed', () => {
  it('sends the items in a few batches per host and records every reply in the table, with its node', async () => {
    const h = harness(600, 2, 600, echo)
    h.feed.start(Array.from({ length: 600 }, (_, i) => i))
    expect(h.calls.map(c => c.payloads.length)).toEqual([100, 100, 100, 100, 100, 100])
    expect(h.d.inflight.size).toBe(600)
    await waitFor('every batch answered', () => h.batches === 6)
    expect(h.d.inflight.size).toBe(0)
    expect(h.d.runs.counts().completed).toBe(600)
    expect(h.d.runs.get(7)).toMatchObject({ status: 'completed', run: 1, exitCode: 0, attempts: 1, node: 'n-host', nodeName: 'host', stdout: '{"p":7}' })
  })

  it('sends the items a worker refused for now again, and records a worker\'s error and a failed call as failures', async () => {
    const h = harness(6, 1, 30, async (req, call) => {
      if (call === 1) return req.payloads.map(p => p === 2 ? { ok: false, code: 'UNAVAILABLE', error: 'queue full' } : p === 4 ? { ok: false, code: 'WORKER_ERROR', error: 'bad item' } : { ok: true, result: p })
      if (call === 2) return req.payloads.map(p => ({ ok: true, result: p }))
      throw new GridError('INTERNAL', 'the call failed')
    })
    h.feed.start([0, 1, 2, 3, 4])
    await waitFor('the refused item sent again and answered', () => h.d.runs.statusOf(2) === 'completed', { timeoutMs: 10_000 })
    expect(h.calls.map(c => c.payloads)).toEqual([[0, 1, 2, 3, 4], [2]])
    expect(h.d.runs.get(4)).toMatchObject({ status: 'failed', error: 'WORKER_ERROR: bad item' })
    expect(h.d.runs.counts().completed).toBe(4)
    h.feed.start([5])
    await waitFor('the failed call recorded', () => h.d.runs.statusOf(5) === 'failed')
    expect(h.d.runs.get(5)?.error).toBe('the call failed')
  })

  it('ends refused items cancelled once its driver is ending, without sending them again', async () => {
    const h = harness(3, 1, 30, async req => req.payloads.map(() => ({ ok: false, code: 'UNAVAILABLE', error: 'draining' })))
    h.ending = true
    h.feed.start([0, 1, 2])
    await waitFor('every item ended', () => h.ended.length === 3)
    expect(h.ended.map(([, s]) => s)).toEqual(['cancelled', 'cancelled', 'cancelled'])
    expect(h.calls.length).toBe(1)
    expect(h.d.inflight.size).toBe(0)
  })
})
