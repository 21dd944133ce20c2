import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { WorkerTypeConfig } from '../../src/executor/index.ts'
import type { Proc } from '../../src/executor/worker-process.ts'
import { blockedBy, queuedReason } from '../../src/executor/worker-waits.ts'
import { WaitWatch, WORKER_WAIT_NOTICE_MS, WORKER_WAIT_RECHECK_MS } from '../../src/tasks/worker-waits.ts'

const T: WorkerTypeConfig = { command: ['w'], cpus: 0, gpus: 1, memory: 0, maxTasks: 0, idleTimeoutMs: 60_000, concurrency: 1, maxWorkers: 2 }

function proc (session: string | null, gpus: string[], busy = false): Proc {
  return { key: 'k', type: 'embed', session, held: { cpus: 0, gpus, memory: 0 }, inflight: new Map(busy ? [['1', {} as never]] : []), retiring: false, ended: false, served: 1 } as unknown as Proc
}

describe('worker waits - why a queued request waits', () => {
  const free = { slots: 4, gpus: 0, memoryBytes: 1 << 30, totalGpus: 1 }
  const state = { procs: [], session: 'B', draining: false, nextStartAt: 0, spawnerRunning: true, free }

  it('names the session whose worker holds the only GPU', () => {
    const blocked = blockedBy(state, T)
    expect(blocked).toEqual({ kind: 'resources' })
    expect(queuedReason({ nodeName: 'n2', type: 'embed', session: 'B', config: T, ahead: 0, blocked, procs: [proc('A', ['GPU-0'])], free }))
      .toBe("waiting for a GPU: the only one on n2 is held by session A's embed worker (idle)")
  })

  it('counts the requests ahead and says when the session\'s own worker is busy', () => {
    const blocked = blockedBy({ ...state, procs: [proc('B', ['GPU-0'], true)] }, T)
    expect(queuedReason({ nodeName: 'n2', type: 'embed', session: 'B', config: T, ahead: 3, blocked, procs: [], free }))
      .toBe("queued behind 3 requests for embed workers on n2; session B's embed worker on n2 is busy (1 request at once)")
  })

  it('says GPUs held by tasks, a crashed worker\'s backoff, and draining', () => {
    expect(queuedReason({ nodeName: 'n2', type: 'embed', session: null, config: T, ahead: 0, blocked: { kind: 'resources' }, procs: [], free: { ...free, totalGpus: 2 } }))
      .toBe('waiting for 1 GPU on n2 (0 of 2 free; held by running tasks (2 GPUs))')
    expect(blockedBy({ ...state, nextStartAt: Date.now() + 5_000 }, T).kind).toBe('backoff')
    expect(blockedBy({ ...state, draining: true }, T).kind).toBe('draining')
  })
})

describe('worker waits - the watch of one batch', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('says nothing for a batch answered within the notice time', () => {
    const said: string[] = []
    const w = new WaitWatch(r => said.push(r))
    w.add({ reason: () => 'queued' })
    vi.advanceTimersByTime(WORKER_WAIT_NOTICE_MS - 1)
    w.stop()
    vi.advanceTimersByTime(10 * WORKER_WAIT_RECHECK_MS)
    expect(said).toEqual([])
  })

  it('says the first waiting request\'s reason once, then only when it changes', () => {
    const said: string[] = []
    let reason: string | undefined = 'waiting for a GPU'
    const w = new WaitWatch(r => said.push(r))
    w.add({ reason: () => undefined })
    w.add({ reason: () => reason })
    vi.advanceTimersByTime(WORKER_WAIT_NOTICE_MS + 3 * WORKER_WAIT_RECHECK_MS)
    reason = 'waiting for the new embed worker on n2 to answer its first request (started 0 s ago)'
    vi.advanceTimersByTime(WORKER_WAIT_RECHECK_MS)
    w.stop()
    expect(said).toEqual(['waiting for a GPU', reason])
  })

  it('ends when the caller is gone', () => {
    let calls = 0
    const w = new WaitWatch(() => { calls++; throw new Error('the caller is gone') })
    let n = 0
    w.add({ reason: () => `r${n++}` })
    vi.advanceTimersByTime(WORKER_WAIT_NOTICE_MS + 5 * WORKER_WAIT_RECHECK_MS)
    expect(calls).toBe(1)
  })
})
