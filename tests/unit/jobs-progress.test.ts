import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { JOB_CHUNK_ITEMS, type ItemRun, type JobDoc, type JobStreamEvent, type TaskSpec } from '../../proto/index.ts'
import { JobDriver } from '../../src/jobs/driver.ts'
import { ChunkSchedule, JOB_PARTIAL_FLUSH_MS } from '../../src/jobs/progress.ts'
import type { JobRecords } from '../../src/jobs/records.ts'
import { WORKER_BATCHES_PER_HOST, WORKER_ITEMS_PER_HOST } from '../../src/jobs/worker-batch.ts'
import { EventQueue } from '../../src/tasks/index.ts'

const done = (run = 1): ItemRun => ({ status: 'completed', run, exitCode: 0 })

describe('ChunkSchedule: when a progress chunk is written', () => {
  it('writes a chunk once as it settles, not at every result', () => {
    const runs: Array<ItemRun | null> = new Array(JOB_CHUNK_ITEMS * 2).fill(null)
    const s = new ChunkSchedule(runs, 0)
    for (let i = 0; i < JOB_CHUNK_ITEMS - 1; i++) {
      s.changed(i, undefined, 'completed')
      expect(s.due(1)).toEqual([])
    }
    s.changed(JOB_CHUNK_ITEMS - 1, undefined, 'completed')
    expect(s.due(1)).toEqual([0])
    expect(s.due(2)).toEqual([])
  })

  it('writes a run to be recorded before its task at once, and a chunk still open every JOB_PARTIAL_FLUSH_MS', () => {
    const s = new ChunkSchedule(new Array(JOB_CHUNK_ITEMS * 2).fill(null), 0)
    s.changed(JOB_CHUNK_ITEMS, undefined, 'running', true)
    expect(s.beforeStart()).toEqual([1])
    s.changed(JOB_CHUNK_ITEMS, 'running', 'completed')
    expect(s.due(JOB_PARTIAL_FLUSH_MS - 1)).toEqual([])
    expect(s.due(JOB_PARTIAL_FLUSH_MS)).toEqual([1])
    s.changed(JOB_CHUNK_ITEMS + 1, undefined, 'completed')
    expect(s.all()).toEqual([1])
    expect(s.all()).toEqual([])
  })

  it('counts a chunk open again when a settled item runs again (job retry)', () => {
    const runs: Array<ItemRun | null> = new Array(JOB_CHUNK_ITEMS).fill(null).map(() => done())
    const s = new ChunkSchedule(runs, 0)
    s.changed(3, 'completed', 'running', true)
    expect(s.beforeStart()).toEqual([0])
    s.changed(3, 'running', 'completed')
    expect(s.due(1)).toEqual([0])
  })
})

describe('JobDriver: a warm-worker job writes each progress chunk a bounded number of times', () => {
  it('writes every chunk of a 6,400-item job once, with every item completed, and the verdict', async () => {
    const total = JOB_CHUNK_ITEMS * 100
    const writes = new Map<number, Array<ItemRun | null>[]>()
    let verdict: JobDoc | undefined
    const records = {
      writeRuns: (_id: string, chunks: number[], runsOf: (chunk: number) => Array<ItemRun | null>) => {
        for (const chunk of chunks) writes.set(chunk, [...(writes.get(chunk) ?? []), runsOf(chunk).map(r => r === null ? null : { ...r })])
      },
      writeDoc: (_id: string, doc: JobDoc) => { verdict = doc }
    } as unknown as JobRecords
    const calls: number[] = []
    const workers = {
      isWorkerType: () => true,
      cannotServe: () => undefined,
      hostCount: () => 1,
      call: async (req: { payloads: unknown[] }) => {
        calls.push(req.payloads.length)
        await new Promise(resolve => setImmediate(resolve))
        return { node: 'n2id', nodeName: 'n2', results: req.payloads.map(p => ({ ok: true, result: p })) }
      }
    }
    const doc: JobDoc = { strategy: 'round-robin', aggregate: 'all-success', spec: { type: 'echo' } as JobDoc['spec'], maxParallel: 400, total, origin: 'me', originName: 'n1', driver: 'me', driverName: 'n1', createdAt: Date.now() }
    const items = Array.from({ length: total }, (_, i) => i)
    const d = new JobDriver({ tasks: {} as never, peerId: 'me', resolveNode: () => undefined, workers: workers as never }, records, 'j1', doc, { type: 'echo', env: {} } as unknown as TaskSpec, items, new Array(total).fill(null), pino({ level: 'silent' }), undefined, true)
    await d.drive()
    expect(calls.reduce((a, b) => a + b, 0)).toBe(total)
    expect(verdict?.final).toBe('completed')
    expect(writes.size).toBe(100)
    for (const [chunk, list] of writes) {
      // no write of `running` for a worker's item, and no rewrite at each result: the settled chunk, once
      expect(list, `chunk ${chunk}`).toHaveLength(1)
      expect(list[0]?.every((r, i) => r?.status === 'completed' && r.stdout === String(chunk * JOB_CHUNK_ITEMS + i))).toBe(true)
    }
    // an empty stdout is not kept per item
    expect(d.currentRuns.filter(r => r?.stdout === '')).toHaveLength(0)
  })

  it('sends large batches over the hosts, a few in flight each, and with results: false ends with counts and no results', async () => {
    const total = 6_000
    const records = { writeRuns: () => {}, writeDoc: () => {} } as unknown as JobRecords
    const calls: number[] = []
    let inflight = 0
    let most = 0
    const workers = {
      isWorkerType: () => true,
      cannotServe: () => undefined,
      hostCount: () => 3,
      call: async (req: { payloads: unknown[] }) => {
        calls.push(req.payloads.length)
        inflight += req.payloads.length
        most = Math.max(most, inflight)
        await new Promise(resolve => setImmediate(resolve))
        inflight -= req.payloads.length
        return { node: 'n2id', nodeName: 'n2', results: req.payloads.map(p => (p === 7 ? { ok: false, code: 'WORKER_ERROR', error: 'seven' } : { ok: true, result: { echo: p } })) }
      }
    }
    const maxParallel = WORKER_ITEMS_PER_HOST * 3
    const doc: JobDoc = { strategy: 'round-robin', aggregate: 'all-success', spec: { type: 'echo' } as JobDoc['spec'], maxParallel, total, origin: 'me', originName: 'n1', driver: 'me', driverName: 'n1', createdAt: Date.now() }
    const sink = new EventQueue<JobStreamEvent>()
    const d = new JobDriver({ tasks: {} as never, peerId: 'me', resolveNode: () => undefined, workers: workers as never }, records, 'j2', doc, { type: 'echo', env: {} } as unknown as TaskSpec, Array.from({ length: total }, (_, i) => i), new Array(total).fill(null), pino({ level: 'silent' }), sink, true, false)
    await d.drive()
    expect(calls[0]).toBe(WORKER_ITEMS_PER_HOST / WORKER_BATCHES_PER_HOST)
    expect(calls.reduce((a, b) => a + b, 0)).toBe(total)
    expect(most).toBeLessThanOrEqual(maxParallel)
    const events: JobStreamEvent[] = []
    for await (const e of sink) events.push(e)
    expect(events.filter(e => e.type === 'result')).toEqual([])
    const done = events.find(e => e.type === 'done')
    expect(done?.type === 'done' ? done.job : undefined).toMatchObject({ status: 'failed', succeeded: total - 1, failed: 1, cancelled: 0, pending: 0 })
    expect(done?.type === 'done' ? done.job.results : 'none').toBeUndefined()
    expect(d.table.get(7)).toMatchObject({ status: 'failed', error: 'WORKER_ERROR: seven' })
    expect(d.table.get(8)).toMatchObject({ status: 'completed', exitCode: 0, attempts: 1, node: 'n2id', nodeName: 'n2', stdout: '{"echo":8}' })
  })

  it('sends again, after a backoff, the items a worker node refused for now, and each ends once', async () => {
    const total = 300
    const records = { writeRuns: () => {}, writeDoc: () => {} } as unknown as JobRecords
    const seen = new Map<unknown, number>()
    let refusals = 0
    const workers = {
      isWorkerType: () => true,
      cannotServe: () => undefined,
      hostCount: () => 2,
      call: async (req: { payloads: unknown[] }) => {
        await new Promise(resolve => setImmediate(resolve))
        return {
          node: 'n2id',
          nodeName: 'n2',
          results: req.payloads.map(p => {
            seen.set(p, (seen.get(p) ?? 0) + 1)
            // every tenth item is refused the first time (a full queue)
            if ((p as number) % 10 === 0 && seen.get(p) === 1) { refusals++; return { ok: false, code: 'UNAVAILABLE', error: 'queue full' } }
            return { ok: true, result: p }
          })
        }
      }
    }
    const doc: JobDoc = { strategy: 'round-robin', aggregate: 'all-success', spec: { type: 'echo' } as JobDoc['spec'], maxParallel: 200, total, origin: 'me', originName: 'n1', driver: 'me', driverName: 'n1', createdAt: Date.now() }
    const d = new JobDriver({ tasks: {} as never, peerId: 'me', resolveNode: () => undefined, workers: workers as never }, records, 'j3', doc, { type: 'echo', env: {} } as unknown as TaskSpec, Array.from({ length: total }, (_, i) => i), new Array(total).fill(null), pino({ level: 'silent' }), undefined, true)
    await d.drive()
    expect(refusals).toBe(30)
    expect(d.table.counts()).toEqual({ none: 0, running: 0, completed: total, failed: 0, cancelled: 0 })
    expect([...seen.values()].filter(n => n > 2)).toEqual([])
    expect(d.table.get(10)).toMatchObject({ status: 'completed', run: 1, stdout: '10' })
  })

  it('taken over, sends again the items recorded running (a warm worker\'s batch has no record to follow) and keeps those done', async () => {
    const total = 500
    const records = { writeRuns: () => {}, writeDoc: () => {} } as unknown as JobRecords
    const sent: number[] = []
    const workers = {
      isWorkerType: () => true,
      cannotServe: () => undefined,
      hostCount: () => 3,
      call: async (req: { payloads: unknown[] }) => {
        for (const p of req.payloads) sent.push(p as number)
        await new Promise(resolve => setImmediate(resolve))
        return { node: 'n3id', nodeName: 'n3', results: req.payloads.map(p => ({ ok: true, result: p })) }
      }
    }
    // the dead driver's records: items 0-99 done, 100-149 running (in a batch in flight), the rest not started
    const runs: Array<ItemRun | null> = Array.from({ length: total }, (_, i) => (i < 100 ? done() : i < 150 ? { status: 'running', run: 1 } : null))
    const doc: JobDoc = { strategy: 'round-robin', aggregate: 'all-success', spec: { type: 'echo' } as JobDoc['spec'], maxParallel: 300, total, origin: 'dead', originName: 'n1', driver: 'me', driverName: 'n2', createdAt: Date.now() }
    const d = new JobDriver({ tasks: {} as never, peerId: 'me', resolveNode: () => undefined, workers: workers as never }, records, 'j4', doc, { type: 'echo', env: {} } as unknown as TaskSpec, Array.from({ length: total }, (_, i) => i), runs, pino({ level: 'silent' }), undefined, true)
    await d.drive()
    expect(sent.sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i + 100))
    expect(d.table.get(120)).toMatchObject({ status: 'completed', run: 2, nodeName: 'n3' })
    expect(d.table.get(5)).toMatchObject({ status: 'completed', run: 1 })
    expect(d.table.counts().completed).toBe(total)
  })
})
