import { describe, expect, it } from 'vitest'
import type { ItemRun, JobDoc } from '../../proto/index.ts'
import type { MemberView } from '../../src/interface/index.ts'
import { broadcastTargets, fitParallel, runStrategy } from '../../src/jobs/index.ts'
import { needsRun } from '../../src/jobs/driver.ts'
import { ahead, mergeDoc } from '../../src/jobs/records.ts'
import { MAX_PARALLEL_DEFAULT_CAP, QUEUED_RUNS_PER_NODE } from '../../src/jobs/placement.ts'
import { route, type Candidate, type Requirements, type RouteContext } from '../../src/routing/index.ts'

const member = (id: string, slots: number, gpus = 0): MemberView => ({ id, state: 'alive', load: { slots, gpus } } as unknown as MemberView)

describe('jobs - placement', () => {
  it('runs round-robin, random and least-loaded as the routing strategies of those names; map-reduce and broadcast least-loaded', () => {
    expect(runStrategy('round-robin')).toBe('round-robin')
    expect(runStrategy('random')).toBe('random')
    expect(runStrategy('least-loaded')).toBe('least-loaded')
    expect(runStrategy('map-reduce')).toBe('least-loaded')
    expect(runStrategy('broadcast')).toBe('least-loaded')
  })

  it('broadcast targets every eligible node once, in name order', () => {
    const names: Record<string, string> = { p1: 'zeta', p2: 'alpha', p3: 'mid' }
    expect(broadcastTargets(['p1', 'p2', 'p3', 'p2'], id => names[id] ?? id)).toEqual(['p2', 'p3', 'p1'])
  })

  it('fits as many runs as the eligible nodes hold, plus a few queued each, at least one', () => {
    const members = [member('a', 4), member('b', 2), member('c', 8, 2)]
    expect(fitParallel(['a', 'b'], members, { cpus: 1, gpus: 0 })).toBe(4 + 2 + 2 * QUEUED_RUNS_PER_NODE)
    expect(fitParallel(['a', 'b'], members, { cpus: 2, gpus: 0 })).toBe(2 + 1 + 2 * QUEUED_RUNS_PER_NODE)
    expect(fitParallel(['c'], members, { cpus: 1, gpus: 1 })).toBe(2 + QUEUED_RUNS_PER_NODE)
    // a node whose load has not been heard of yet holds one
    expect(fitParallel(['x'], members, { cpus: 1, gpus: 0 })).toBe(1 + QUEUED_RUNS_PER_NODE)
    expect(fitParallel([], members, { cpus: 1, gpus: 0 })).toBe(1)
    expect(fitParallel(['a'], [member('a', 100_000)], { cpus: 1, gpus: 0 })).toBe(MAX_PARALLEL_DEFAULT_CAP)
  })
})

describe('jobs - progress', () => {
  const run = (status: ItemRun['status'], n: number, round?: number): ItemRun => ({ status, run: n, ...(round === undefined ? {} : { round }) })

  it('merges writers\' progress to the most advanced run: a later run, else a final status over running', () => {
    expect(ahead(run('running', 1), null)).toBe(true)
    expect(ahead(run('completed', 1), run('running', 1))).toBe(true)
    expect(ahead(run('running', 1), run('completed', 1))).toBe(false)
    expect(ahead(run('running', 2), run('failed', 1))).toBe(true)
    expect(ahead(run('failed', 1), run('running', 2))).toBe(false)
  })

  it('never runs a succeeded or running item again; a retry round runs the ones that did not succeed before it', () => {
    expect(needsRun(null, 0)).toBe(true)
    expect(needsRun(run('completed', 1), 0)).toBe(false)
    expect(needsRun(run('running', 1), 0)).toBe(false)
    expect(needsRun(run('failed', 1), 0)).toBe(false)
    expect(needsRun(run('failed', 1), 1)).toBe(true)
    expect(needsRun(run('cancelled', 2), 1)).toBe(true)
    expect(needsRun(run('failed', 2, 1), 1)).toBe(false)
    expect(needsRun(run('completed', 1), 1)).toBe(false)
  })
})

describe('jobs - the job document', () => {
  const doc = (over: Partial<JobDoc> = {}): JobDoc => ({
    strategy: 'least-loaded', aggregate: 'all-success', spec: { cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, priority: 50, retries: 3, retryOnFailure: false, strategy: 'least-loaded', command: ['true'] },
    maxParallel: 4, total: 2, origin: 'o', originName: 'n1', driver: 'o', driverName: 'n1', createdAt: 1, ...over
  })
  const entry = (writer: string, ms: number, value: unknown): { key: string, writer: string, stamp: [number, number], value: unknown } => ({ key: 'j1', writer, stamp: [ms, 0], value })

  it('shows the newest document (a successor\'s over its dead origin\'s), and a cancel mark from any writer', () => {
    const m = mergeDoc([entry('o', 10, { doc: doc() }), entry('s', 20, { doc: doc({ driver: 's', driverName: 'n2' }) }), entry('x', 5, { cancel: { at: 30, by: 'x' } })])
    expect(m?.doc.driverName).toBe('n2')
    expect(m?.writer).toBe('s')
    expect(m?.cancelRequested).toBe(true)
  })

  it('does not let a cancel from before a job retry cancel the retried round, and skips malformed entries', () => {
    const m = mergeDoc([entry('o', 10, { doc: doc({ retries: 1, retriedAt: 50 }) }), entry('x', 5, { cancel: { at: 30, by: 'x' } }), entry('bad', 99, { doc: { nope: true } })])
    expect(m?.cancelRequested).toBe(false)
    expect(m?.doc.retries).toBe(1)
    expect(mergeDoc([entry('x', 5, { cancel: { at: 30, by: 'x' } })])).toBeUndefined()
  })
})

describe('jobs - a retried run prefers a node where it has not failed', () => {
  const node = (id: string): Candidate => ({ id, name: id, alive: true, draining: false, region: 'eu', labels: {}, capabilities: [], types: [], slots: 4, gpus: 0, memoryMiB: 16384, freeSlots: 4, freeGpus: 0, memFreeMiB: 16000, running: 0, queued: 0 })
  const req = (over: Partial<Requirements> = {}): Requirements => ({ cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, strategy: 'least-loaded', ...over })
  const ctx = (over: Partial<RouteContext> = {}): RouteContext => ({ origin: { id: 'a', region: 'eu' }, recentlySent: () => 0, random: Math.random, turn: 0, ...over })
  const nodes = [node('a'), node('b'), node('c')]
  const first = (r: ReturnType<typeof route>): string | undefined => (r.ok ? r.candidates[0] : undefined)

  it('ranks the nodes where it failed after every other, for each strategy', () => {
    for (let i = 0; i < 50; i++) {
      expect(first(route(nodes, req(), ctx({ avoid: new Set(['a', 'b']), random: Math.random })))).toBe('c')
      expect(first(route(nodes, req({ strategy: 'random' }), ctx({ avoid: new Set(['c']) })))).not.toBe('c')
    }
    const r = route(nodes, req({ strategy: 'round-robin' }), ctx({ turn: 0, avoid: new Set(['a']) }))
    expect(r.ok && r.candidates).toEqual(['b', 'c', 'a'])
  })

  it('still runs it where it failed when no other node can, and names a node given explicitly as it is', () => {
    const r = route(nodes, req(), ctx({ avoid: new Set(['a', 'b', 'c']) }))
    expect(r.ok && [...r.candidates].sort()).toEqual(['a', 'b', 'c'])
    expect(first(route(nodes, req({ node: 'a' }), ctx({ avoid: new Set(['a']) })))).toBe('a')
  })
})
