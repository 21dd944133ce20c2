import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobRecord, TaskRecord } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { GRIDCTL, ROOT } from '../helpers/paths.ts'

async function runCommand (cmd: string, args: string[]): Promise<{ code: number, stdout: string }> {
  return await new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.on('error', reject)
    p.on('close', code => { resolve({ code: code ?? 1, stdout }) })
  })
}

function lines (path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(l => l !== '') : []
}

async function jobJson (n: Gridd, args: string[], opts: { input?: string } = {}): Promise<{ code: number, job: JobRecord, stderr: string }> {
  const r = await n.ctl(['distribute', '-o', 'json', ...args], { timeoutMs: 110_000, ...opts })
  let job: JobRecord
  try { job = JSON.parse(r.stdout) as JobRecord } catch { throw new Error(`distribute did not print one JSON document (exit ${r.code}): ${r.stdout}\n${r.stderr}`) }
  return { code: r.code, job, stderr: r.stderr }
}

describe('jobs - one command over 3 daemons', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd
  beforeAll(async () => {
    c = await Cluster.start(3, { args: () => ['--slots', '4'] })
    ;[n1, n2] = c.nodes as [Gridd, Gridd]
    await c.converged()
    await waitFor('every node\'s load to reach n1', async () => (await n1.nodes()).filter(n => n.load !== undefined && n.load !== null).length === 3)
  })
  afterAll(async () => { await c?.destroy() })

  it('broadcast reaches each node once, and -o json prints exactly the job document', async () => {
    const log = join(c.root, 'bcast')
    const { code, job } = await jobJson(n1, ['--strategy', 'broadcast', '--', 'sh', '-c', `echo "$GRID_NODE_NAME" >> ${log}-$GRID_NODE_NAME; echo "hello from $GRID_NODE_NAME"`])
    expect(code).toBe(0)
    expect(job).toMatchObject({ strategy: 'broadcast', aggregate: 'all-success', status: 'completed', total: 3, succeeded: 3, failed: 0, cancelled: 0, running: 0, pending: 0 })
    expect((job.results ?? []).map(r => r.nodeName)).toEqual(['n1', 'n2', 'n3'])
    expect((job.results ?? []).map(r => r.stdout)).toEqual(['hello from n1\n', 'hello from n2\n', 'hello from n3\n'])
    for (const n of ['n1', 'n2', 'n3']) expect(lines(`${log}-${n}`)).toEqual([n])
    // the result fields of the contract, each of them
    expect(Object.keys(job.results?.[0] ?? {}).sort()).toEqual(['attempts', 'exitCode', 'index', 'item', 'node', 'nodeName', 'status', 'stdout'])
  })

  it('gives each run its item on stdin and in GRID_ITEM, GRID_ITEM_INDEX and GRID_JOB_ID (items from a JSON array file)', async () => {
    const file = join(c.root, 'items.json')
    writeFileSync(file, JSON.stringify(['a b', { k: 1 }, 7]))
    const { code, job } = await jobJson(n1, ['--items', file, '--', 'sh', '-c', 'read -r line; echo "$GRID_ITEM_INDEX|$GRID_ITEM|$line|${GRID_JOB_ID%%.*}"'])
    expect(code).toBe(0)
    expect(job.status).toBe('completed')
    expect((job.results ?? []).map(r => r.stdout)).toEqual([`0|a b|a b|${job.id}\n`, `1|{"k":1}|{"k":1}|${job.id}\n`, `2|7|7|${job.id}\n`])
    expect((job.results ?? []).map(r => r.item)).toEqual(['a b', { k: 1 }, 7])
  })

  it('round-robin spreads items read from stdin (one per line) evenly over the nodes', async () => {
    const { code, job } = await jobJson(n2, ['--strategy', 'round-robin', '--items', '-', '--', 'sh', '-c', 'echo "$GRID_ITEM"'], { input: 'x1\nx2\nx3\nx4\nx5\nx6\n' })
    expect(code).toBe(0)
    expect(job.total).toBe(6)
    expect((job.results ?? []).map(r => r.stdout.trim())).toEqual(['x1', 'x2', 'x3', 'x4', 'x5', 'x6'])
    const per = new Map<string, number>()
    for (const r of job.results ?? []) per.set(r.nodeName ?? '', (per.get(r.nodeName ?? '') ?? 0) + 1)
    expect([...per.values()]).toEqual([2, 2, 2])
  })

  it('random and least-loaded run one run per --count', async () => {
    for (const strategy of ['random', 'least-loaded']) {
      const { code, job } = await jobJson(n1, ['--strategy', strategy, '--count', '5', '--', 'sh', '-c', 'echo $GRID_ITEM'])
      expect(code).toBe(0)
      expect(job).toMatchObject({ strategy, total: 5, succeeded: 5 })
      expect((job.results ?? []).map(r => r.item)).toEqual([0, 1, 2, 3, 4])
    }
  })

  it('all-success fails with exit 1, saying how many runs failed and the first error', async () => {
    const r = await n1.ctl(['distribute', '--count', '3', '--', 'sh', '-c', 'exit $GRID_ITEM'], { timeoutMs: 110_000 })
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/failed: 1 succeeded, 2 failed, 0 cancelled of 3/)
    expect(r.stdout).toMatch(/2 of 3 runs did not succeed; the first: item 1: exited with code 1/)
    // not on a terminal: a line per finished run, no control characters
    expect(r.stdout.split('\n').filter(l => /^\[\d\] /.test(l))).toHaveLength(3)
    expect(r.stdout).not.toMatch(/\x1b/)
  })

  it('first-success succeeds with the first answer and cancels every other run (none left running)', async () => {
    const { code, job } = await jobJson(n1, ['--aggregate', 'first-success', '--count', '6', '--max-parallel', '6', '--', 'sh', '-c', 'if [ "$GRID_ITEM" = 0 ]; then echo win; else sleep 100; fi'])
    expect(code).toBe(0)
    expect(job).toMatchObject({ status: 'completed', answer: 'win', succeeded: 1, cancelled: 5, running: 0 })
    const tasks = await n1.api.get<TaskRecord[]>('/tasks')
    const runs = tasks.filter(t => t.id.startsWith(`${job.id}.`))
    expect(runs).toHaveLength(6)
    await waitFor('every run\'s task to have ended', async () => (await n1.api.get<TaskRecord[]>('/tasks')).filter(t => t.id.startsWith(`${job.id}.`) && ['pending', 'running'].includes(t.status)).length === 0)
  })

  it('majority answers what most runs printed, with one node answering differently', async () => {
    const { code, job } = await jobJson(n1, ['--strategy', 'broadcast', '--aggregate', 'majority', '--', 'sh', '-c', 'if [ "$GRID_NODE_NAME" = n3 ]; then echo B; else echo A; fi'])
    expect(code).toBe(0)
    expect(job).toMatchObject({ status: 'completed', answer: 'A', succeeded: 3 })
  })

  it('map-reduce gives the reduce every result as JSON lines in index order; its stdout is the answer', async () => {
    const reduce = 'awk -F\'"stdout":"\' \'{ split($2, a, "\\\\"); s += a[1]; n++ } END { print n " " s }\''
    const { code, job } = await jobJson(n1, ['--strategy', 'map-reduce', '--count', '4', '--reduce', reduce, '--', 'sh', '-c', 'echo $((GRID_ITEM * GRID_ITEM))'])
    expect(code).toBe(0)
    expect(job.status).toBe('completed')
    expect(job.answer).toBe('4 14\n')
    const lines = join(c.root, 'reduce-in')
    const r = await jobJson(n1, ['--strategy', 'map-reduce', '--count', '2', '--reduce', `cat > ${lines}`, '--', 'echo', 'hi'])
    expect(r.code).toBe(0)
    expect(readFileSync(lines, 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as unknown)).toEqual([
      { index: 0, item: 0, status: 'completed', exitCode: 0, stdout: 'hi\n' },
      { index: 1, item: 1, status: 'completed', exitCode: 0, stdout: 'hi\n' }
    ])
  })

  it('refuses bad input with exit 2, naming the problem, before anything runs', async () => {
    const before = (await n1.api.get<JobRecord[]>('/jobs')).length
    const empty = join(c.root, 'empty')
    writeFileSync(empty, '')
    const bad = join(c.root, 'bad.json')
    writeFileSync(bad, '[1, 2,')
    const cases: Array<[string[], RegExp]> = [
      [['--items', empty, '--', 'true'], /no items/],
      [['--items', bad, '--', 'true'], /not a valid JSON array/],
      [['--count', '2', '--reduce', 'cat', '--', 'true'], /--reduce is only for --strategy map-reduce/],
      [['--strategy', 'broadcast', '--count', '2', '--', 'true'], /broadcast .* takes no --items/],
      [['--strategy', 'sideways', '--count', '2', '--', 'true'], /--strategy must be one of/],
      [['--aggregate', 'most', '--count', '2', '--', 'true'], /--aggregate must be one of/],
      [['--strategy', 'map-reduce', '--count', '2', '--', 'true'], /needs --reduce/],
      [['--count', '1000001', '--', 'true'], /count must be a whole number from 1 to 1000000/],
      [['--count', '2', '--cpus', '999', '--', 'true'], /no node has 999 CPU slots/]
    ]
    for (const [args, msg] of cases) {
      const r = await n1.ctl(['distribute', ...args])
      expect({ args, code: r.code }).toEqual({ args, code: 2 })
      expect(r.stderr).toMatch(msg)
    }
    expect((await n1.api.get<JobRecord[]>('/jobs')).length).toBe(before)
  })

  it('job retry runs again only the items that did not succeed, keeping the rest', async () => {
    const fixed = join(c.root, 'fixed')
    const log = join(c.root, 'retry-runs')
    const r = await n1.ctl(['distribute', '--count', '4', '--', 'sh', '-c', `if [ -f ${fixed} ] || [ "$GRID_ITEM" -lt 2 ]; then echo "$GRID_ITEM" >> ${log}; echo ok; else exit 3; fi`], { timeoutMs: 110_000 })
    expect(r.code).toBe(1)
    const id = /job (j\w+) failed/.exec(r.stdout)?.[1] as string
    const before = await n1.api.get<JobRecord>(`/jobs/${id}`)
    writeFileSync(fixed, '')
    const retry = await n2.ctl(['job', 'retry', id, '-o', 'json'])
    expect(retry.code).toBe(0)
    expect(JSON.parse(retry.stdout)).toEqual({ id, retrying: 2 })
    const done = await waitFor('the retried job to complete', async () => {
      const j = await n1.api.get<JobRecord>(`/jobs/${id}`)
      return j.status === 'completed' ? j : undefined
    })
    expect(done).toMatchObject({ succeeded: 4, failed: 0, driverName: 'n2' })
    expect(lines(log).sort()).toEqual(['0', '1', '2', '3'])
    // each item run again went to a node where it had not failed (GNU parallel's rule)
    for (const i of [2, 3]) expect(done.results?.[i]?.nodeName).not.toBe(before.results?.[i]?.nodeName)
    expect((await n1.ctl(['job', 'retry', id])).code).toBe(1)
  })

  it('draws a progress bar in place on a terminal, then the summary', async () => {
    const cmd = `${process.execPath} ${GRIDCTL} --socket ${n1.socket} distribute --count 5 --max-parallel 1 -- sh -c 'sleep 0.3; echo $GRID_ITEM'`
    const r = await runCommand('script', ['-qfec', cmd, '/dev/null'])
    expect(r.code).toBe(0)
    const redraws = r.stdout.match(/\r\x1b\[K\[[#-]{30}\] \d\/5 done, \d running, 0 failed, [\d.]+\/s/g) ?? []
    expect(redraws.length).toBeGreaterThanOrEqual(3)
    expect(r.stdout).toMatch(/completed: 5 succeeded, 0 failed, 0 cancelled of 5/)
    // no line per run on a terminal: the bar stands for them
    expect(r.stdout).not.toMatch(/\[\d\] n\d completed/)
  })

  it('cancels the job on Ctrl-C, exiting 130 with every run ended', async () => {
    const marker = join(c.root, 'ctrl-c')
    const p = spawn(process.execPath, [GRIDCTL, '--socket', n1.socket, 'distribute', '--count', '3', '--max-parallel', '3', '--', 'sh', '-c', `echo x >> ${marker}; sleep 100`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', d => { out += String(d) })
    await waitFor('the three runs to start', () => lines(marker).length === 3)
    p.kill('SIGINT')
    const code = await new Promise<number | null>(resolve => p.on('close', resolve))
    expect(code).toBe(130)
    const id = /job (j\w+) cancelled/.exec(out)?.[1] as string
    expect(out).toMatch(/cancelled: 0 succeeded, 0 failed, 3 cancelled of 3/)
    expect((await n1.api.get<JobRecord>(`/jobs/${id}`)).status).toBe('cancelled')
    await waitFor('every run\'s task to have ended', async () => (await n1.api.get<TaskRecord[]>('/tasks')).filter(t => t.id.startsWith(`${id}.`) && ['pending', 'running'].includes(t.status)).length === 0)
  })

  it('jobs, job and job cancel answer from another node; the cancel ends every run', async () => {
    const r = await n1.ctl(['distribute', '--detach', '--count', '3', '--max-parallel', '3', '--', 'sleep', '100'])
    expect(r.code).toBe(0)
    const id = r.stdout.trim()
    await waitFor('n2 to list the job running', async () => {
      const list = JSON.parse((await n2.ctl(['jobs', '-o', 'json'])).stdout) as JobRecord[]
      return list.find(j => j.id === id)?.running === 3
    })
    const table = await c.node('n3').ctl(['jobs', '--status', 'running'])
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+running\\s+least-loaded\\s+all-success\\s+0/3`))
    const cancel = await c.node('n3').ctl(['job', 'cancel', id])
    expect(cancel.code).toBe(0)
    expect(cancel.stdout).toMatch(/status:\s+cancelled/)
    const shown = JSON.parse((await n2.ctl(['job', id, '-o', 'json'])).stdout) as JobRecord
    expect(shown).toMatchObject({ id, status: 'cancelled', cancelled: 3, running: 0 })
    await waitFor('every run\'s task to have ended', async () => (await n2.api.get<TaskRecord[]>('/tasks')).filter(t => t.id.startsWith(`${id}.`) && ['pending', 'running'].includes(t.status)).length === 0)
    expect((await n2.ctl(['job', 'nope'])).code).toBe(1)
  })
})

describe('jobs - the origin dies mid-job', () => {
  let c: Cluster
  afterAll(async () => { await c?.destroy() })

  it('a successor finishes it: runs in flight are counted, the rest start, no succeeded item runs again', async () => {
    c = await Cluster.start(3, { args: i => i === 0 ? [] : ['--slots', '2', '--label', 'role=worker'] })
    await c.converged()
    await waitFor('labels to reach n1', async () => (await c.node('n1').nodes()).filter(n => n.labels.role === 'worker').length === 2)
    const gate = join(c.root, 'gate')
    const ran = (n: string): string => join(c.root, `ran-${n}`)
    // each run records its index in its node's file; runs 0-3 then wait for the gate, opened after the origin died
    const script = `echo "$GRID_ITEM_INDEX" >> ${join(c.root, 'ran')}-$GRID_NODE_NAME; if [ "$GRID_ITEM_INDEX" -lt 4 ]; then while [ ! -f ${gate} ]; do sleep 0.1; done; fi; echo "item $GRID_ITEM_INDEX"`
    const r = await c.node('n1').ctl(['distribute', '--detach', '--label', 'role=worker', '--count', '8', '--max-parallel', '4', '--', 'sh', '-c', script])
    expect(r.code).toBe(0)
    const id = r.stdout.trim()
    await waitFor('four runs to be running', () => lines(ran('n2')).length + lines(ran('n3')).length === 4)
    await c.node('n1').kill()
    writeFileSync(gate, '')
    const done = await waitFor('n2 to show the job completed', async () => {
      const j = await c.node('n2').api.get<JobRecord>(`/jobs/${id}`)
      return j.status === 'completed' ? j : undefined
    }, { timeoutMs: 100_000 })
    expect(done).toMatchObject({ total: 8, succeeded: 8, failed: 0, cancelled: 0, pending: 0, running: 0, status: 'completed' })
    expect(['n2', 'n3']).toContain(done.driverName)
    expect((done.results ?? []).map(x => x.stdout)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(i => `item ${i}\n`))
    // every item ran exactly once: none was lost, none that succeeded ran again
    const all = [...lines(ran('n2')), ...lines(ran('n3'))].map(Number).sort((a, b) => a - b)
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    const onN3 = JSON.parse((await c.node('n3').ctl(['job', id, '-o', 'json'])).stdout) as JobRecord
    expect(onN3.status).toBe('completed')
  })
})

describe('jobs - a warm-worker type', () => {
  let c: Cluster
  afterAll(async () => { await c?.destroy() })

  it('sends the items to the warm workers of the cluster as batched requests, each result its stdout', async () => {
    c = await Cluster.start(3, { args: () => ['--config', workerConfig(), '--slots', '4'] })
    await c.converged()
    // every node's registry entry (the worker types it hosts) has reached n1 once calls go round all three
    await waitFor('n1 to send worker calls to every node', async () => {
      const seen = new Set<string>()
      for (let i = 0; i < 3; i++) seen.add((await c.node('n1').api.post<{ nodeName: string }>('/call', { type: 'nodeecho', payload: i })).nodeName)
      return seen.size === 3
    })
    const file = join(c.root, 'items.json')
    const items = Array.from({ length: 250 }, (_, i) => ({ n: i }))
    writeFileSync(file, JSON.stringify(items))
    const { code, job } = await jobJson(c.node('n1'), ['--type', 'nodeecho', '--items', file])
    expect(code).toBe(0)
    expect(job).toMatchObject({ status: 'completed', total: 250, succeeded: 250, type: 'nodeecho' })
    const results = job.results ?? []
    expect(results.map(r => (JSON.parse(r.stdout) as { echo: unknown }).echo)).toEqual(items)
    // spread over the workers of the cluster (batches of 100 go round the hosts), and no task was made for them
    expect(new Set(results.map(r => r.nodeName)).size).toBeGreaterThanOrEqual(2)
    const tasks = await c.node('n1').api.get<TaskRecord[]>('/tasks')
    expect(tasks.filter(t => t.id.startsWith(`${job.id}.`))).toEqual([])
  })

  function workerConfig (): string {
    const file = join(tmpdir(), `grid-jobs-workers-${process.pid}.yaml`)
    writeFileSync(file, `tasks:\n  nodeecho:\n    command: [${process.execPath}, ${join(ROOT, 'examples/workers/echo_worker.mjs')}]\n    worker: {concurrency: 8, cpus: 0}\n`)
    return file
  }
})
