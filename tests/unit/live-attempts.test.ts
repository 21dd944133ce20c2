/**
 * Re-attaching to an attempt whose offer failed on the way (issue 13): an executor that read the offer late asks its
 * coordinator (`task.confirm`) before it starts. When its question crosses the coordinator's attach, the attach hears
 * "no such attempt" although a yes just let the start through: the coordinator must look once more after that yes's
 * lease, not run the task elsewhere beside it (the chaos run's "ran again with no executor death between").
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { NotFoundError } from '../../src/interface/index.ts'
import type { Coordinated, Outcome } from '../../src/tasks/coordinator.ts'
import { DeathWatch } from '../../src/tasks/death-watch.ts'
import { LiveAttempts } from '../../src/tasks/live-attempts.ts'
import { CONFIRM_LEASE_MS } from '../../src/tasks/start-fence.ts'
import { spec } from './executor-fixtures.ts'

function attempts (attach: (n: number) => Promise<unknown>): { live: LiveAttempts, co: Coordinated, attaches: () => number } {
  let n = 0
  const co = {
    id: 't1',
    spec: spec(),
    coord: { attempt: 1, coordinator: 'coord', origin: 'coord', originName: 'coord', spec: spec() },
    placed: false,
    cancelRequested: false,
    offset: 0,
    submittedAt: Date.now(),
    abort: new AbortController()
  } as unknown as Coordinated
  const coordinated = new Map([[co.id, co]])
  const c = {
    peerId: 'coord',
    rpc: { request: async () => await attach(++n) },
    members: { state: () => 'alive' },
    nodeRegistry: { get: () => undefined }
  }
  const live = new LiveAttempts(c as never, { nodeName: 'coord' }, { aspects: () => ({ cancelRequested: false }), writeCoord: () => {} } as never, coordinated,
    new DeathWatch(() => 'alive', id => id, 1_500), { hold: async () => undefined },
    { classify: (_co, result): Outcome => ({ kind: 'done', result }), forward: () => true, runDeadline: () => 60_000 }, () => true, pino({ level: 'silent' }))
  return { live, co, attaches: () => n }
}

describe('re-attaching to an attempt', () => {
  it('looks again after the lease when the executor heard yes just before it said it has none of the attempt', async () => {
    const result = { status: 'completed', node: 'exec', nodeName: 'exec' }
    let yes: string | undefined = 'not asked'
    const { live, co, attaches } = attempts(async n => {
      if (n === 1) {
        // the executor's question, answered while the attach is on the way: it starts within the lease
        yes = await live.notCurrent('t1', 1, 'exec')
        throw new NotFoundError('this node has no attempt 1 of task t1')
      }
      return result
    })
    const t0 = performance.now()
    const out = await live.reattach(co, 'exec')
    expect(yes).toBeUndefined()
    expect(out).toEqual({ kind: 'done', result })
    expect(attaches()).toBe(2)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(CONFIRM_LEASE_MS - 50)
  })

  it('gives the attempt up when the executor has none of it and heard no yes; a later question hears no', async () => {
    const { live, co, attaches } = attempts(async () => { throw new NotFoundError('this node has no attempt 1 of task t1') })
    const out = await live.reattach(co, 'exec')
    expect(out).toEqual({ kind: 'retry', reason: 'node exec lost the task' })
    expect(attaches()).toBe(1)
    expect(await live.notCurrent('t1', 1, 'exec')).toBe('its coordinator coord gave attempt 1 up')
  })
})
