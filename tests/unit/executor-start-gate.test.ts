/**
 * The executor's start gate (issue 13, fencing): a start the gate holds waits for its answer with its resources held;
 * a no ends the attempt lost without a run, a yes starts it, and a cancel or a stop meanwhile ends it unstarted.
 */
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

let t: TestExecutor | undefined
afterEach(async () => { await t?.executor.stop(); t = undefined })

function held (): { gate: Promise<string | undefined>, answer: (why: string | undefined) => void } {
  let answer!: (why: string | undefined) => void
  const gate = new Promise<string | undefined>(resolve => { answer = resolve })
  return { gate, answer }
}

describe('executor - the start gate', () => {
  it('asks only for what it is told to; a queued start says it waited', async () => {
    t = testExecutor({ slots: 1 })
    const asked: Array<{ id: string, waited: boolean }> = []
    t.executor.setStartGate((tk, how) => { asked.push({ id: tk.id, waited: how.waited }); return undefined })
    t.executor.start()
    const a = recorder()
    const b = recorder()
    t.executor.admit(task('first', { command: ['sh', '-c', 'sleep 0.2'] }), a)
    expect(t.executor.admit(task('second', { command: ['true'] }), b)).toEqual({ queued: true })
    await b.result
    expect(asked).toEqual([{ id: 'first', waited: false }, { id: 'second', waited: true }])
  })

  it('a no ends the attempt lost, never run, and frees its slot', async () => {
    t = testExecutor({ slots: 1 })
    const mark = join(tmpdir(), `grid-gate-${process.pid}-${Math.random().toString(36).slice(2)}`)
    const h = held()
    t.executor.setStartGate(tk => tk.id === 'old' ? h.gate : undefined)
    t.executor.start()
    const w = recorder()
    expect(t.executor.admit(task('old', { command: ['touch', mark] }), w)).toEqual({ queued: false })
    // held: the slot is taken while the answer is awaited
    expect(t.executor.usage()).toMatchObject({ running: 1, freeSlots: 0 })
    h.answer('its coordinator is at attempt 2 of it')
    const state = await w.result
    expect(state).toMatchObject({ status: 'failed', lost: true })
    expect(state.error).toContain('did not start attempt 1: its coordinator is at attempt 2 of it')
    expect(existsSync(mark)).toBe(false)
    expect(t.executor.usage()).toMatchObject({ running: 0, freeSlots: 1 })
    const next = recorder()
    t.executor.admit(task('next'), next)
    expect(await next.result).toMatchObject({ status: 'completed' })
    rmSync(mark, { force: true })
  })

  it('a yes starts it', async () => {
    t = testExecutor()
    const h = held()
    t.executor.setStartGate(() => h.gate)
    t.executor.start()
    const w = recorder()
    t.executor.admit(task('current', { command: ['sh', '-c', 'echo ran'] }), w)
    h.answer(undefined)
    expect(await w.result).toMatchObject({ status: 'completed' })
    expect(w.stdout()).toContain('ran')
  })

  it('a cancel while it waits for the answer ends it cancelled, never run', async () => {
    t = testExecutor()
    const h = held()
    t.executor.setStartGate(() => h.gate)
    t.executor.start()
    const w = recorder()
    t.executor.admit(task('waiting', { command: ['sh', '-c', 'echo ran'] }), w)
    expect(t.executor.cancel('waiting')).toBe(true)
    h.answer(undefined)
    expect(await w.result).toMatchObject({ status: 'cancelled' })
    expect(w.stdout()).not.toContain('ran')
  })
})
