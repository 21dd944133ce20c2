import { describe, expect, it } from 'vitest'
import type { WorkflowJobStatus } from '../../proto/index.ts'
import { plan } from '../../src/workflows/index.ts'

const diamond = { a: { needs: [] }, b: { needs: ['a'] }, c: { needs: ['a'] }, d: { needs: ['b', 'c'] } }
const order = ['a', 'b', 'c', 'd']
const st = (s: Record<string, WorkflowJobStatus>): Record<string, { status: WorkflowJobStatus }> =>
  Object.fromEntries(order.map(n => [n, { status: s[n] ?? 'pending' }]))

describe('workflows - the DAG', () => {
  it('starts the roots, then both branches of a diamond at once, then the join once both succeeded', () => {
    expect(plan(order, diamond, st({}), { paused: false })).toEqual({ start: ['a'], skip: [] })
    expect(plan(order, diamond, st({ a: 'running' }), { paused: false })).toEqual({ start: [], skip: [] })
    expect(plan(order, diamond, st({ a: 'succeeded' }), { paused: false })).toEqual({ start: ['b', 'c'], skip: [] })
    expect(plan(order, diamond, st({ a: 'succeeded', b: 'succeeded', c: 'running' }), { paused: false })).toEqual({ start: [], skip: [] })
    expect(plan(order, diamond, st({ a: 'succeeded', b: 'succeeded', c: 'succeeded' }), { paused: false })).toEqual({ start: ['d'], skip: [] })
    expect(plan(order, diamond, st({ a: 'succeeded', b: 'succeeded', c: 'succeeded', d: 'succeeded' }), { paused: false })).toEqual({ start: [], skip: [], done: 'succeeded' })
  })

  it('keeps to parallelism', () => {
    expect(plan(order, diamond, st({ a: 'succeeded' }), { paused: false, parallelism: 1 })).toEqual({ start: ['b'], skip: [] })
    expect(plan(order, diamond, st({ a: 'succeeded', b: 'running' }), { paused: false, parallelism: 1 })).toEqual({ start: [], skip: [] })
  })

  it('a failure skips its dependants, lets the other branch finish, starts nothing new, and fails the workflow', () => {
    const p = plan(order, diamond, st({ a: 'succeeded', b: 'failed', c: 'running' }), { paused: false })
    expect(p).toEqual({ start: [], skip: ['d'] })
    // another root that has not started does not start once something failed; it is skipped at the end
    const wide = { ...diamond, e: { needs: [] } }
    const o2 = [...order, 'e']
    expect(plan(o2, wide, { ...st({ a: 'succeeded', b: 'failed', c: 'succeeded', d: 'skipped' }), e: { status: 'pending' } }, { paused: false })).toEqual({ start: [], skip: ['e'], done: 'failed' })
  })

  it('a cancelled job counts as broken: its dependants are skipped and the workflow fails', () => {
    expect(plan(order, diamond, st({ a: 'cancelled' }), { paused: false })).toEqual({ start: [], skip: ['b', 'c', 'd'], done: 'failed' })
  })

  it('paused: nothing starts and the workflow does not end while jobs wait', () => {
    expect(plan(order, diamond, st({ a: 'succeeded' }), { paused: true })).toEqual({ start: [], skip: [] })
    expect(plan(order, diamond, st({ a: 'succeeded', b: 'running' }), { paused: true })).toEqual({ start: [], skip: [] })
  })
})
