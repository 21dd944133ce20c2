import { describe, expect, it } from 'vitest'
import { JOB_CHUNK_ITEMS, type ItemRun, type JobDoc } from '../../proto/index.ts'
import { JOB_RESULTS_SLICE_ITEMS, JobRecords, toJobRecord, type JobStore } from '../../src/jobs/records.ts'
import { RunTable } from '../../src/jobs/run-table.ts'
import { normalizeJob } from '../../src/jobs/request.ts'

/** The replicated store as one writer's map (enough for the records of one job). */
function memoryStore (): JobStore {
  const m = new Map<string, unknown>()
  const entry = (key: string): { key: string, value: unknown, writer: string, stamp: [number, number] } => ({ key, value: m.get(key), writer: 'me', stamp: [1, 0] })
  return {
    selfId: 'me',
    set: (_c: string, key: string, value: unknown) => { m.set(key, value); return [1, 0] },
    setMany: (_c: string, entries: Iterable<readonly [string, unknown]>) => { for (const [k, v] of entries) m.set(k, v) },
    entryOf: (_w: string, _c: string, key: string) => (m.has(key) ? entry(key) : undefined),
    lookupAll: (_c: string, key: string) => (m.has(key) ? [entry(key)] : []),
    groupAll: () => new Map()
  } as unknown as JobStore
}

describe('jobs - records', () => {
  it('writes a job\'s results as pieces of the same JSON document, a slice at a time, from the records or the driver\'s table', () => {
    const total = JOB_RESULTS_SLICE_ITEMS * 2 + 5
    const store = memoryStore()
    const records = new JobRecords(store)
    const { env: _env, ...spec } = normalizeJob({ command: ['true'], count: total }, id => id).spec
    const doc: JobDoc = { strategy: 'round-robin', aggregate: 'all-success', spec, maxParallel: 10, total, origin: 'me', originName: 'n1', driver: 'me', driverName: 'n1', createdAt: 1, final: 'completed', finishedAt: 2 }
    records.writeDoc('j1', doc)
    const items = Array.from({ length: total }, (_, i) => ({ n: i }))
    records.writeItems('j1', items)
    const runs: Array<ItemRun | null> = items.map((_, i) => (i === 3 ? null : { status: 'completed', run: 1, exitCode: 0, attempts: 1, node: 'B', nodeName: 'n2', stdout: String(i) }))
    const chunks = Array.from({ length: Math.ceil(total / JOB_CHUNK_ITEMS) }, (_, c) => c)
    records.writeRuns('j1', chunks, c => runs.slice(c * JOB_CHUNK_ITEMS, (c + 1) * JOB_CHUNK_ITEMS))
    const whole = toJobRecord('j1', doc, runs, items)
    const summary = records.record('j1', false)
    if (summary === undefined) throw new Error('no record')
    const parts = [...records.resultParts(summary)]
    expect(parts.length).toBeGreaterThan(3)
    expect(JSON.parse(parts.join(''))).toEqual(JSON.parse(JSON.stringify(whole)))
    expect(JSON.parse([...records.resultParts(summary, RunTable.from(runs))].join(''))).toEqual(JSON.parse(JSON.stringify(whole)))
    expect(whole.results?.[3]).toMatchObject({ status: 'cancelled', item: { n: 3 } })
  })
})
