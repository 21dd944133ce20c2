/**
 * A cancel that comes while the task's process is being forked (admitted, its spawn sent to the spawner, no pid yet)
 * is kept: the process is signalled as soon as the spawner reports it, so it never runs to its end.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

let t: TestExecutor | undefined
afterEach(async () => { await t?.executor.stop(); t = undefined })

describe('executor - cancel while the process is forking', () => {
  it('TERMs the process once the spawner reports its pid: it ends cancelled, never finishing', async () => {
    t = testExecutor()
    t.executor.start()
    const w = recorder()
    expect(t.executor.admit(task('forking', { command: ['sh', '-c', 'echo started; sleep 30; echo finished'] }), w)).toEqual({ queued: false })
    // the spawn is in flight: the spawner answers through its pipe, after this synchronous code
    expect(t.executor.get('forking')?.state.pid).toBeUndefined()
    expect(t.executor.cancel('forking')).toBe(true)
    const state = await w.result
    expect(state).toMatchObject({ status: 'cancelled', error: 'cancelled', signal: 'SIGTERM' })
    expect(w.stdout()).not.toContain('finished')
  })

  it('still KILLs one that ignores TERM, even when the grace period ends before its pid is known', async () => {
    t = testExecutor({ killGraceMs: 1 })
    t.executor.start()
    const w = recorder()
    t.executor.admit(task('stubborn-forking', { command: ['sh', '-c', 'trap "" TERM; sleep 30; echo finished'] }), w)
    expect(t.executor.get('stubborn-forking')?.state.pid).toBeUndefined()
    expect(t.executor.cancel('stubborn-forking')).toBe(true)
    const state = await w.result
    expect(state).toMatchObject({ status: 'cancelled', signal: 'SIGKILL' })
    expect(w.stdout()).not.toContain('finished')
  })
})
