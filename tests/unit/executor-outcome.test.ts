import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { exitCodeOf, outcomeOf } from '../../src/executor/index.ts'
import { recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

const CTX = { command: 'prog', nodeName: 'n1' }

describe('executor - outcome of a process', () => {
  it('calls exit 0 completed, any other code failed', () => {
    expect(outcomeOf(CTX, { code: 0, signal: null })).toEqual({ status: 'completed', exitCode: 0, signal: null })
    expect(outcomeOf(CTX, { code: 1, signal: null })).toEqual({ status: 'failed', exitCode: 1, signal: null, error: 'exited with code 1' })
  })

  it('calls a process killed by a signal failed, naming the signal', () => {
    expect(outcomeOf(CTX, { code: null, signal: 'SIGKILL' })).toMatchObject({ status: 'failed', signal: 'SIGKILL', error: 'killed by SIGKILL' })
  })

  it('says what the executor stopped it for: timeout, cancel, shutdown (lost)', () => {
    const end = { code: null, signal: 'SIGTERM' as const }
    expect(outcomeOf({ ...CTX, timeoutMs: 50, stopping: 'timeout' }, end)).toMatchObject({ status: 'timeout', error: 'timed out after 50ms' })
    // as the user wrote it (--timeout 2s), not in milliseconds
    expect(outcomeOf({ ...CTX, timeoutMs: 2000, stopping: 'timeout' }, end)).toMatchObject({ error: 'timed out after 2s' })
    expect(outcomeOf({ ...CTX, stopping: 'cancelled' }, end)).toMatchObject({ status: 'cancelled', error: 'cancelled' })
    expect(outcomeOf({ ...CTX, stopping: 'shutdown' }, end)).toMatchObject({ status: 'failed', lost: true, error: 'executor n1 stopped while the task ran' })
  })

  it('gives a command that is not there 127, one that cannot start 126', () => {
    expect(outcomeOf(CTX, { code: null, signal: null, spawnError: { code: 'ENOENT', message: 'spawn prog ENOENT' } })).toMatchObject({ status: 'failed', exitCode: 127, error: 'cannot start prog: command not found' })
    expect(outcomeOf(CTX, { code: null, signal: null, spawnError: { code: 'EACCES', message: 'spawn prog EACCES' } })).toMatchObject({ status: 'failed', exitCode: 126, error: 'cannot start prog: spawn prog EACCES' })
  })

  it('calls a task that went with the spawner lost, whatever else is known', () => {
    expect(outcomeOf({ ...CTX, stopping: 'timeout' }, { code: null, signal: null, lostReason: 'the task spawner of this node died' })).toMatchObject({ status: 'failed', lost: true, error: 'the task spawner of this node died' })
  })

  it('maps an outcome to the shell\'s exit code', () => {
    expect(exitCodeOf({ status: 'completed', exitCode: 0 })).toBe(0)
    expect(exitCodeOf({ status: 'failed', exitCode: 1 })).toBe(1)
    expect(exitCodeOf({ status: 'failed', exitCode: null, signal: 'SIGKILL' })).toBe(137)
    expect(exitCodeOf({ status: 'failed', exitCode: null, signal: 'SIGTERM' })).toBe(143)
    expect(exitCodeOf({ status: 'timeout', exitCode: null, signal: 'SIGTERM' })).toBe(124)
    expect(exitCodeOf({ status: 'cancelled', exitCode: null, signal: 'SIGTERM' })).toBe(130)
    expect(exitCodeOf({ status: 'failed', exitCode: 127 })).toBe(127)
    expect(exitCodeOf({ status: 'failed', exitCode: null, signal: null })).toBe(1)
  })
})

describe('executor - how real tasks end', () => {
  let t: TestExecutor | undefined
  let dir: string
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'grid-outcome-')) })
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
  afterEach(async () => { await t?.executor.stop(); t = undefined })

  async function run (id: string, over: Parameters<typeof task>[1]): Promise<{ state: Awaited<ReturnType<TestExecutor['ended']>>, stdout: string }> {
    const w = recorder()
    t?.executor.admit(task(id, over), w)
    const state = await w.result
    return { state, stdout: w.stdout() }
  }

  it('completes with exit 0 and keeps the output', async () => {
    t = testExecutor()
    t.executor.start()
    const r = await run('ok', { command: ['sh', '-c', 'echo "hello $GRID_TASK_ID attempt $GRID_ATTEMPT"'] })
    expect(r.state).toMatchObject({ status: 'completed', exitCode: 0, signal: null })
    expect(r.stdout).toBe('hello ok attempt 1\n')
    expect(exitCodeOf(r.state)).toBe(0)
  })

  it('fails with the exit code the process gave', async () => {
    t = testExecutor()
    t.executor.start()
    const r = await run('three', { command: ['sh', '-c', 'exit 3'] })
    expect(r.state).toMatchObject({ status: 'failed', exitCode: 3, error: 'exited with code 3' })
    expect(exitCodeOf(r.state)).toBe(3)
  })

  it('fails with the signal that killed the process', async () => {
    t = testExecutor()
    t.executor.start()
    const r = await run('killed', { command: ['sh', '-c', 'kill -9 $$'] })
    expect(r.state).toMatchObject({ status: 'failed', exitCode: null, signal: 'SIGKILL' })
    expect(exitCodeOf(r.state)).toBe(137)
  })

  it('stops a task at its timeout: status timeout, exit code 124', async () => {
    t = testExecutor()
    t.executor.start()
    const r = await run('slow', { command: ['sleep', '30'], timeoutMs: 100 })
    expect(r.state).toMatchObject({ status: 'timeout', signal: 'SIGTERM', error: 'timed out after 100ms' })
    expect(exitCodeOf(r.state)).toBe(124)
  })

  it('kills a task that ignores TERM after the grace period', async () => {
    t = testExecutor({ killGraceMs: 200 })
    t.executor.start()
    const w = recorder()
    t.executor.admit(task('stubborn', { command: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'] }), w)
    await w.printed('ready')
    t.executor.cancel('stubborn')
    expect(await w.result).toMatchObject({ status: 'cancelled', signal: 'SIGKILL' })
  })

  it('cancels a running task: exit code 130', async () => {
    t = testExecutor()
    t.executor.start()
    const w = recorder()
    t.executor.admit(task('cancel-me', { command: ['sleep', '30'] }), w)
    await t.running('cancel-me')
    expect(t.executor.cancel('cancel-me')).toBe(true)
    const state = await w.result
    expect(state).toMatchObject({ status: 'cancelled', error: 'cancelled' })
    expect(exitCodeOf(state)).toBe(130)
    expect(t.executor.cancel('cancel-me')).toBe(false)
  })

  it('fails a command that does not exist with 127, a missing directory with 126', async () => {
    t = testExecutor()
    t.executor.start()
    const missing = await run('missing', { command: ['/nonexistent/grid-no-such-command'] })
    expect(missing.state).toMatchObject({ status: 'failed', exitCode: 127, error: 'cannot start /nonexistent/grid-no-such-command: command not found' })
    const noDir = await run('no-dir', { command: ['true'], cwd: join(dir, 'gone') })
    expect(noDir.state).toMatchObject({ status: 'failed', exitCode: 126 })
    expect(noDir.state.error).toMatch(/working directory .*gone does not exist/)
  })

  it('gives a typed task its payload on stdin and its stdout back as the result', async () => {
    t = testExecutor({ taskTypes: { echo: { command: ['cat'] }, text: { command: ['sh', '-c', 'cat >/dev/null; echo plain words'] } } })
    t.executor.start()
    const json = await run('typed', { command: undefined, type: 'echo', payload: { a: [1, 2] } })
    expect(json.state).toMatchObject({ status: 'completed', result: { a: [1, 2] } })
    const text = await run('typed-text', { command: undefined, type: 'text', payload: null })
    expect(text.state).toMatchObject({ status: 'completed', result: 'plain words\n' })
  })
})
