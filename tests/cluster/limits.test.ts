import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusResponse, TaskRecord } from '../../proto/index.ts'
import { TaskCgroups } from '../../src/executor/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { quietLogger } from '../unit/executor-fixtures.ts'

// a daemon on this machine finds the same cgroups: where none is writable the tests that need them skip, saying why
// (CI is such a machine, as root, so there they run)
const probe = new TaskCgroups(quietLogger(), { nodeName: `probe-${process.pid}`, root: '' })
const here = probe.setup()
probe.close()
const withCgroups = here.enforced ? describe : describe.skip
const title = here.enforced ? `limits - enforced with cgroups (${here.cgroup ?? ''})` : `limits - enforced with cgroups (skipped: ${here.reason ?? 'no writable cgroup'})`

/** CPU seconds of the shell's children, from the second line of `times` (their user and system time). */
function childCpuSeconds (timesOutput: string): number {
  const line = timesOutput.trim().split('\n').at(-1) ?? ''
  return [...line.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0)
}

withCgroups(title, () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd
  beforeAll(async () => {
    c = await Cluster.start(2)
    ;[n1, n2] = c.nodes as [Gridd, Gridd]
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('says in status that limits are enforced', async () => {
    const s = JSON.parse((await n2.ctl(['status', '-o', 'json'])).stdout) as StatusResponse
    expect(s.limits).toEqual({ enforced: true, cgroup: here.cgroup, reason: null })
    expect((await n2.ctl(['status'])).stdout).toMatch(/^limits:\s+enforced \(cgroup v[12]\)$/m)
  })

  it('kills a task over its memory limit with the reason, exit 137 and oom in its record', async () => {
    // an allocation of 256 MiB (awk doubles a string), far over the 20 MiB the task asked for
    const r = await n1.ctl(['run', '--node', 'n2', '--memory', '20M', '--', 'sh', '-c', 'exec awk \'BEGIN { s = "x"; for (i = 0; i < 28; i++) s = s s; print length(s) }\''])
    expect(r.code).toBe(137)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/failed: killed: out of memory, limit 20 MiB$/m)
    const id = /task (\S+) failed/.exec(r.stderr)?.[1] ?? ''
    const t = await waitFor('the task record to say oom', async () => {
      const rec = JSON.parse((await n1.ctl(['task', id, '-o', 'json'])).stdout) as TaskRecord
      return rec.status === 'failed' && rec.oom ? rec : undefined
    })
    expect(t).toMatchObject({ oom: true, error: 'killed: out of memory, limit 20 MiB' })
  })

  it('runs the same allocation to the end with memory to spare', async () => {
    const r = await n1.ctl(['run', '--node', 'n2', '--memory', '1G', '--', 'sh', '-c', 'exec awk \'BEGIN { s = "x"; for (i = 0; i < 24; i++) s = s s; print length(s) }\''])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('16777216\n')
  })

  it('holds a CPU-bound task to its --cpus quota, measured from its own CPU time', async () => {
    const r = await n1.ctl(['run', '--node', 'n2', '--cpus', '0.2', '--', 'sh', '-c', 'timeout 2 sh -c "while :; do :; done"; times'])
    expect(r.code).toBe(0)
    // 2 s of wall time: about 0.4 CPU-seconds at 0.2 of a core, 2 without the quota; the bound is generous
    expect(childCpuSeconds(r.stdout) / 2).toBeLessThan(0.6)
  })
})

describe('limits - not enforced, and said so', () => {
  let c: Cluster
  beforeAll(async () => { c = await Cluster.start(1, { args: () => ['--cgroup-root', 'off'] }) })
  afterAll(async () => { await c?.destroy() })

  it('warns once at start and shows it in status', async () => {
    const n = c.nodes[0] as Gridd
    const s = JSON.parse((await n.ctl(['status', '-o', 'json'])).stdout) as StatusResponse
    expect(s.limits).toEqual({ enforced: false, cgroup: null, reason: 'executor.cgroupRoot is off' })
    expect((await n.ctl(['status'])).stdout).toMatch(/^limits:\s+NOT enforced: executor\.cgroupRoot is off$/m)
    expect(n.log().split('\n').filter(l => l.includes('task limits are NOT enforced')).length).toBe(1)
  })
})
