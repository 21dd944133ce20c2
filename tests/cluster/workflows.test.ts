import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WorkflowRecord } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'

/** Every line of every file `${prefix}-NODE` (a job appends its node's name to the file of its node). */
function runsOf (root: string, prefix: string): string[] {
  const out: string[] = []
  for (const f of readdirSync(root)) if (f.startsWith(`${prefix}-`)) out.push(...readFileSync(join(root, f), 'utf8').split('\n').filter(l => l !== ''))
  return out
}

describe('workflows - DAGs of jobs over 3 daemons', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd, n3: Gridd
  let seq = 0
  const file = (content: unknown, ext = 'json'): string => {
    const f = join(c.root, `wf-${++seq}.${ext}`)
    writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content))
    return f
  }
  const status = async (n: Gridd, id: string): Promise<WorkflowRecord> => {
    const r = await n.ctl(['workflow', 'status', id, '-o', 'json'])
    if (r.code !== 0) throw new Error(`workflow status ${id} exited ${r.code}: ${r.stderr}`)
    return JSON.parse(r.stdout) as WorkflowRecord
  }
  const job = (w: WorkflowRecord, name: string): WorkflowRecord['jobs'][number] => w.jobs.find(j => j.name === name) as WorkflowRecord['jobs'][number]

  beforeAll(async () => {
    c = await Cluster.start(3, { args: () => ['--slots', '4'] })
    ;[n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('every node\'s load to reach n1', async () => (await n1.nodes()).filter(n => n.load !== undefined && n.load !== null).length === 3)
  })
  afterAll(async () => { await c?.destroy() })

  it('runs a diamond (a -> b, c -> d) with b and c at once, d getting their stdout in GRID_NEEDS; -o json is the issue\'s document', async () => {
    const dir = c.root
    // b and c each wait for the other to have started: they pass only if they run at the same time
    const meet = (self: string, other: string): string => `touch ${dir}/${self}.started; for i in $(seq 1 300); do [ -e ${dir}/${other}.started ] && break; sleep 0.1; done; [ -e ${dir}/${other}.started ] && echo "  ${self} out  "`
    const f = file(`name: diamond
params: {greeting: hello}
jobs:
  a:
    command: [sh, -c, 'echo "\${{ params.greeting }} from a"']
  b:
    needs: [a]
    command: [sh, -c, '${meet('b', 'c')}']
  c:
    needs: [a]
    command: [sh, -c, '${meet('c', 'b')}']
  d:
    needs: [b, c]
    command: [sh, -c, 'echo "$GRID_NEEDS"']
`, 'yaml')
    const r = await n1.ctl(['workflow', 'run', f, '-o', 'json', '--param', 'greeting=hi'], { timeoutMs: 110_000 })
    expect(r.code, r.stderr).toBe(0)
    const w = JSON.parse(r.stdout) as WorkflowRecord
    expect(Object.keys(w).sort()).toEqual(['id', 'jobs', 'name', 'status'])
    expect(w).toMatchObject({ name: 'diamond', status: 'succeeded' })
    expect(w.jobs.map(j => [j.name, j.status])).toEqual([['a', 'succeeded'], ['b', 'succeeded'], ['c', 'succeeded'], ['d', 'succeeded']])
    expect(Object.keys(w.jobs[0] ?? {}).sort()).toEqual(['attempts', 'endedAt', 'exitCode', 'name', 'needs', 'node', 'nodeName', 'startedAt', 'status'])
    expect(job(w, 'd').needs).toEqual(['b', 'c'])
    // d's stdout is GRID_NEEDS: each need's trimmed stdout
    const logs = await n2.ctl(['workflow', 'logs', w.id, 'd'])
    expect(logs.code, logs.stderr).toBe(0)
    expect(JSON.parse(logs.stdout)).toEqual({ b: 'b out', c: 'c out' })
    const a = await n3.ctl(['workflow', 'logs', w.id, 'a'])
    expect(a.stdout).toBe('hi from a\n')
    // any node shows it, with the DAG drawn
    const table = await n3.ctl(['workflow', 'status', w.id])
    expect(table.stdout).toContain('-> b [succeeded]  c [succeeded]')
    expect((await n2.ctl(['workflow', 'ls'])).stdout).toContain(w.id)
  })

  it('retries a failing job that then succeeds, counting its attempts', async () => {
    const marker = join(c.root, 'flaky-marker')
    const f = file({ name: 'flaky', jobs: { a: { retries: 2, command: ['sh', '-c', `if [ -e ${marker} ]; then echo ok; else touch ${marker}; exit 3; fi`] }, b: { needs: ['a'], command: ['true'] } } })
    const r = await n2.ctl(['workflow', 'run', f, '-o', 'json'], { timeoutMs: 110_000 })
    expect(r.code, r.stderr).toBe(0)
    const w = JSON.parse(r.stdout) as WorkflowRecord
    expect(w.status).toBe('succeeded')
    expect(job(w, 'a')).toMatchObject({ status: 'succeeded', attempts: 2, exitCode: 0 })
  })

  it('a job with items is a distribute job: its answer is its dependant\'s GRID_NEEDS entry', async () => {
    const f = file({ name: 'fan', jobs: { shards: { items: ['x', 'y', 'z'], strategy: 'map-reduce', reduce: 'wc -l', command: ['sh', '-c', 'echo "$GRID_ITEM"'] }, sum: { needs: ['shards'], command: ['sh', '-c', 'echo "$GRID_NEEDS"'] } } })
    const r = await n3.ctl(['workflow', 'run', f, '-o', 'json'], { timeoutMs: 110_000 })
    expect(r.code, r.stderr).toBe(0)
    const w = JSON.parse(r.stdout) as WorkflowRecord
    expect(w.jobs.map(j => [j.name, j.status])).toEqual([['shards', 'succeeded'], ['sum', 'succeeded']])
    const rec = await n1.api.get<WorkflowRecord>(`/workflows/${w.id}`)
    const jobId = job(rec, 'shards').jobId as string
    expect((await n1.ctl(['job', jobId, '-o', 'json'])).stdout).toContain('"total": 3')
    expect(JSON.parse((await n1.ctl(['workflow', 'logs', w.id, 'sum'])).stdout)).toEqual({ shards: '3' })
  })

  it('a job that fails skips its dependants and fails the workflow (exit 1); the other branch that runs finishes', async () => {
    const f = file({ name: 'broken', jobs: { a: { retries: 0, command: ['sh', '-c', 'exit 4'] }, b: { needs: ['a'], command: ['true'] }, c: { needs: ['b'], command: ['true'] }, other: { command: ['sh', '-c', 'sleep 2; echo done'] } } })
    const r = await n1.ctl(['workflow', 'run', f, '-o', 'json'], { timeoutMs: 110_000 })
    expect(r.code).toBe(1)
    const w = JSON.parse(r.stdout) as WorkflowRecord
    expect(w.status).toBe('failed')
    expect(w.jobs.map(j => [j.name, j.status])).toEqual([['a', 'failed'], ['b', 'skipped'], ['c', 'skipped'], ['other', 'succeeded']])
    expect(job(w, 'a').exitCode).toBe(4)
    // retry runs again what did not succeed, under the same id: it fails again, keeping `other`
    const again = await n2.ctl(['workflow', 'retry', w.id, '-o', 'json'])
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toEqual({ id: w.id, retrying: ['a', 'b', 'c'] })
    const end = await waitFor('the retried workflow to fail again', async () => { const s = await status(n1, w.id); return s.status === 'failed' ? s : undefined }, { timeoutMs: 60_000 })
    expect(job(end, 'other').status).toBe('succeeded')
    expect(job(end, 'b').status).toBe('skipped')
  })

  it('pause: no new job starts while running ones finish; resume goes on', async () => {
    const gate = join(c.root, 'pause-gate')
    const f = file({ name: 'pausable', jobs: { a: { command: ['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.1; done`] }, b: { needs: ['a'], command: ['true'] } } })
    const r = await n1.ctl(['workflow', 'run', f, '--detach'])
    expect(r.code, r.stderr).toBe(0)
    const id = r.stdout.trim()
    await waitFor('a to run', async () => job(await status(n2, id), 'a').status === 'running', { timeoutMs: 60_000 })
    const p = await n2.ctl(['workflow', 'pause', id, '-o', 'json'])
    expect(p.code, p.stderr).toBe(0)
    await waitFor('n1 to see it paused', async () => (await status(n1, id)).status === 'paused', { timeoutMs: 30_000 })
    writeFileSync(gate, '')
    await waitFor('a to succeed while paused', async () => job(await status(n1, id), 'a').status === 'succeeded', { timeoutMs: 60_000 })
    await new Promise(resolve => setTimeout(resolve, 2_500))
    const held = await status(n3, id)
    expect(held.status).toBe('paused')
    expect(job(held, 'b').status).toBe('pending')
    expect((await n3.ctl(['workflow', 'resume', id])).code).toBe(0)
    const done = await waitFor('the resumed workflow to succeed', async () => { const s = await status(n1, id); return s.status === 'succeeded' ? s : undefined }, { timeoutMs: 60_000 })
    expect(job(done, 'b').status).toBe('succeeded')
  })

  it('cancel from another node cancels the running job where it runs', async () => {
    const f = file({ name: 'long', jobs: { a: { command: ['sleep', '120'] }, b: { needs: ['a'], command: ['true'] } } })
    const r = await n1.ctl(['workflow', 'run', f, '--detach'])
    const id = r.stdout.trim()
    await waitFor('a to run', async () => job(await status(n1, id), 'a').status === 'running', { timeoutMs: 60_000 })
    const x = await n3.ctl(['workflow', 'cancel', id])
    expect(x.code, x.stderr).toBe(0)
    const end = await waitFor('the workflow to be cancelled', async () => { const s = await status(n2, id); return s.status === 'cancelled' ? s : undefined }, { timeoutMs: 60_000 })
    expect(end.jobs.map(j => [j.name, j.status])).toEqual([['a', 'cancelled'], ['b', 'cancelled']])
  })

  it('refuses a cycle and a need naming no job with exit 2, both named, and starts nothing', async () => {
    const before = (await n1.ctl(['workflow', 'ls', '-o', 'json'])).stdout
    const f = file({ name: 'loops', jobs: { a: { needs: ['b'], command: ['true'] }, b: { needs: ['a'], command: ['true'] }, c: { needs: ['nowhere'], command: ['true'] }, d: { command: ['true'], gpu: 1 } } })
    const r = await n1.ctl(['workflow', 'run', f])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/the jobs form a cycle: (a -> b -> a|b -> a -> b)/)
    expect(r.stderr).toContain('job c: needs "nowhere", which names no job of this workflow')
    expect(r.stderr).toContain('job d: unknown field "gpu"')
    const t = await n1.ctl(['workflow', 'run', file({ jobs: { a: { type: 'no-such-type' } } })])
    expect(t.code).toBe(2)
    expect(t.stderr).toContain('job a:')
    expect((await n1.ctl(['workflow', 'ls', '-o', 'json'])).stdout).toBe(before)
  })

  it('kill -9 of the origin while b runs: a successor finishes the workflow, a and b each ran once, and nothing ran twice', async () => {
    const dir = c.root
    const f = file({
      name: 'survivor',
      jobs: {
        a: { node: 'n1', command: ['sh', '-c', `echo "$GRID_NODE_NAME" >> ${dir}/runs-a-$GRID_NODE_NAME`] },
        b: { node: 'n1', needs: ['a'], command: ['sh', '-c', `echo "$GRID_NODE_NAME" >> ${dir}/runs-b-$GRID_NODE_NAME; sleep 6; echo b-result`] },
        c: { needs: ['b'], command: ['sh', '-c', `echo "$GRID_NODE_NAME" >> ${dir}/runs-c-$GRID_NODE_NAME; echo "$GRID_NEEDS"`] }
      }
    })
    const r = await n3.ctl(['workflow', 'run', f, '--detach'])
    expect(r.code, r.stderr).toBe(0)
    const id = r.stdout.trim()
    // a second workflow of n3's, paused: it stays paused across the takeover
    const gate = join(dir, 'held-gate')
    const held = (await n3.ctl(['workflow', 'run', file({ name: 'held', jobs: { p: { node: 'n1', command: ['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.1; done`] }, q: { needs: ['p'], command: ['true'] } } }), '--detach'])).stdout.trim()
    await waitFor('p to run', async () => job(await status(n1, held), 'p').status === 'running', { timeoutMs: 60_000 })
    expect((await n3.ctl(['workflow', 'pause', held])).code).toBe(0)
    // the pause mark replicated (a mark written on a node that dies before its push goes out is lost, as any write)
    await waitFor('n1 to see it paused', async () => (await status(n1, held)).status === 'paused', { timeoutMs: 30_000 })
    await waitFor('b to run', () => runsOf(dir, 'runs-b').length === 1, { timeoutMs: 60_000 })
    n3.signal('SIGKILL')
    await n3.waitExit()
    const end = await waitFor('the workflow to end on the survivors', async () => { const s = await status(n1, id); return s.status === 'running' ? undefined : s }, { timeoutMs: 90_000 })
    expect(end.status).toBe('succeeded')
    expect(runsOf(dir, 'runs-a')).toEqual(['n1'])
    expect(runsOf(dir, 'runs-b')).toEqual(['n1'])
    expect(runsOf(dir, 'runs-c')).toHaveLength(1)
    const fromN2 = await status(n2, id)
    expect(fromN2.status).toBe('succeeded')
    expect(job(fromN2, 'b')).toMatchObject({ status: 'succeeded', attempts: 1 })
    const logs = await n2.ctl(['workflow', 'logs', id, 'c'])
    expect(JSON.parse(logs.stdout)).toEqual({ b: 'b-result' })
    expect(existsSync(join(dir, 'runs-b-n3'))).toBe(false)
    const taken = await n1.api.get<WorkflowRecord>(`/workflows/${id}`)
    expect(['n1', 'n2']).toContain(taken.driverName)
    // the paused one: taken over, still paused, its q not started; resumed from a survivor it finishes
    const h = await waitFor('the paused workflow to be taken over', async () => { const x = await n2.api.get<WorkflowRecord>(`/workflows/${held}`); return x.driverName !== 'n3' ? x : undefined }, { timeoutMs: 60_000 })
    expect(h.status, JSON.stringify(h)).toBe('paused')
    // the job running at the takeover completes; nothing new starts while paused
    writeFileSync(gate, '')
    await waitFor('p to succeed', async () => job(await status(n1, held), 'p').status === 'succeeded', { timeoutMs: 60_000 })
    await new Promise(resolve => setTimeout(resolve, 2_000))
    const still = await n1.api.get<WorkflowRecord>(`/workflows/${held}`)
    expect(still.status, JSON.stringify(still)).toBe('paused')
    expect(job(still, 'q').status).toBe('pending')
    expect((await n2.ctl(['workflow', 'resume', held])).code).toBe(0)
    const fin = await waitFor('the resumed workflow to end', async () => { const x = await status(n1, held); return x.status === 'running' ? undefined : x }, { timeoutMs: 60_000 })
    expect(fin.status).toBe('succeeded')
  })
})

describe('workflows - the origin dies with jobs running on it', () => {
  let c: Cluster
  let n1: Gridd, n3: Gridd
  beforeAll(async () => {
    c = await Cluster.start(3, { args: () => ['--slots', '4'] })
    ;[n1, , n3] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('every node\'s load to reach n1', async () => (await n1.nodes()).filter(n => n.load !== undefined && n.load !== null).length === 3)
  })
  afterAll(async () => { await c?.destroy() })

  it('a job whose task died with the origin runs again elsewhere, every other job once, and the workflow succeeds', async () => {
    const dir = c.root
    const jobs: Record<string, unknown> = {}
    // three jobs of 4 CPUs on nodes of 4 slots, each held until the gate opens: running at once, one is on n3, the
    // origin (a job that only slept could end on n3 before the kill on a slow machine, and have nothing to run again)
    const gate = join(dir, 'gate')
    for (let i = 0; i < 3; i++) jobs[`p${i}`] = { cpus: 4, command: ['sh', '-c', `echo "$GRID_NODE_NAME" >> ${dir}/on-p${i}; while [ ! -f ${gate} ]; do sleep 0.1; done`] }
    jobs.end = { needs: Object.keys(jobs), command: ['true'] }
    const f = join(dir, 'three.json')
    writeFileSync(f, JSON.stringify({ name: 'three', jobs }))
    const id = (await n3.ctl(['workflow', 'run', f, '--detach'])).stdout.trim()
    const where = (): Record<string, string[]> => Object.fromEntries(readdirSync(dir).filter(x => x.startsWith('on-p')).map(x => [x.slice(3), readFileSync(join(dir, x), 'utf8').split('\n').filter(l => l !== '')]))
    await waitFor('all three to run', () => Object.keys(where()).length === 3, { timeoutMs: 60_000 })
    const before = where()
    expect(Object.values(before).some(nodes => nodes[0] === 'n3'), JSON.stringify(before)).toBe(true)
    n3.signal('SIGKILL')
    await n3.waitExit()
    writeFileSync(gate, '')
    const end = await waitFor('the workflow to end on n1', async () => { const w = await n1.api.get<WorkflowRecord>(`/workflows/${id}`); return w.status === 'running' ? undefined : w }, { timeoutMs: 90_000 })
    expect(end.status, JSON.stringify(end.jobs)).toBe('succeeded')
    const after = where()
    for (const [name, nodes] of Object.entries(before)) {
      // a job that ran on n3 ran once more, elsewhere; any other ran exactly once
      if (nodes[0] === 'n3') { expect(after[name]).toHaveLength(2); expect(after[name]?.[1]).not.toBe('n3') } else expect(after[name]).toEqual(nodes)
    }
  })
})
