import { existsSync, readdirSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { TaskCgroups } from '../../src/executor/index.ts'
import { waitFor } from '../helpers/cluster.ts'
import { quietLogger, recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

// this machine's cgroups, as a daemon would find them (tests that need them skip, saying why, where none is writable)
const probe = new TaskCgroups(quietLogger(), { nodeName: `probe-${process.pid}`, root: '' })
const limits = probe.setup()
probe.close()
const withCgroups = limits.enforced ? describe : describe.skip
const MIB = 1024 * 1024

/** CPU seconds of the shell's children, from `times` (second line: children's user and system time). */
function childCpuSeconds (timesOutput: string): number {
  const line = timesOutput.trim().split('\n').at(-1) ?? ''
  return [...line.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0)
}

withCgroups(`executor - limits enforced with cgroups (${limits.cgroup ?? limits.reason ?? ''})`, () => {
  let t: TestExecutor | undefined
  afterEach(async () => { await t?.executor.stop(); t = undefined })
  const start = (): TestExecutor => {
    t = testExecutor({ cgroupRoot: '', nodeName: `unit-${process.pid}-${Math.random().toString(36).slice(2, 8)}` })
    t.executor.start()
    return t
  }

  it('kills a task over its memory limit, saying so', async () => {
    const t = start()
    const w = recorder()
    t.executor.admit(task('hog', { command: ['sh', '-c', 'exec awk \'BEGIN { s = "x"; for (i = 0; i < 28; i++) s = s s; print length(s) }\''], memory: 20 * MIB }), w)
    expect(await w.result).toMatchObject({ status: 'failed', oom: true, signal: 'SIGKILL', error: 'killed: out of memory, limit 20 MiB' })
    expect(t.executor.limits()).toMatchObject({ enforced: true, reason: null })
  })

  it('holds a CPU-bound task to its quota', async () => {
    const t = start()
    const w = recorder()
    t.executor.admit(task('spin', { command: ['sh', '-c', 'timeout 2 sh -c "while :; do :; done"; times'], cpus: 0.2, cpuLimit: true }), w)
    expect(await w.result).toMatchObject({ status: 'completed' })
    // 2 s of wall time at 0.2 of a core: about 0.4 CPU-seconds, far below the 2 an unlimited loop takes
    expect(childCpuSeconds(w.stdout())).toBeLessThan(1.2)
  })

  it('runs a task without limits as before, and still says when a command is not there', async () => {
    const t = start()
    const ok = recorder()
    t.executor.admit(task('plain', { command: ['sh', '-c', 'echo hi'] }), ok)
    expect(await ok.result).toMatchObject({ status: 'completed', exitCode: 0 })
    expect(ok.stdout()).toBe('hi\n')
    const missing = recorder()
    t.executor.admit(task('missing', { command: ['grid-no-such-command'] }), missing)
    expect(await missing.result).toMatchObject({ status: 'failed', exitCode: 127, error: 'cannot start grid-no-such-command: command not found' })
  })

  it('removes a task\'s cgroup once it ended', async () => {
    const t = start()
    const w = recorder()
    t.executor.admit(task('where', { command: ['cat', '/proc/self/cgroup'], memory: 64 * MIB }), w)
    await w.result
    const line = w.stdout().split('\n').find(l => /:memory:|^0::/.test(l) && l.includes('where.1')) ?? ''
    expect(line).toMatch(/grid-unit-.*\/where\.1$/)
    const dir = `/sys/fs/cgroup/${limits.cgroup === 'v1' ? 'memory' : ''}${line.slice(line.lastIndexOf(':') + 1)}`
    const parent = dir.slice(0, dir.lastIndexOf('/'))
    await waitFor(`${dir} removed`, () => !existsSync(dir), { timeoutMs: 5000 })
    expect(readdirSync(parent).includes('where.1')).toBe(false)
  })
})
