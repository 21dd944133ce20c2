/**
 * bench/workflows: DAGs of `true` on 3 real daemons. A wide layer (a start, W jobs, an end) and a chain (C jobs, each
 * needing the one before): the makespan, and the scheduling overhead per job (makespan minus the critical path's task
 * time, over the jobs on it: the chain's jobs, or the wide DAG's 3 levels). Then a chain of 200 ms jobs whose origin is
 * killed half-way: the extra makespan against the same chain with no failure, and how often any job ran.
 *
 * First, in the same run, the same DAGs on the peers of --peers (default all: dask and slurm have a DAG script; none
 * for none): bench/peers/workflows.ts. Slurm's chain is --slurm-chain long (default 20; it starts a dependent job at its
 * scheduler's pace), its wide layer --slurm-wide (default --wide).
 *
 *   npm run bench -- workflows [--wide N] [--chain N] [--failover-chain N] [--peers LIST] [--slurm-chain N] [--slurm-wide N] [--distribute-chain N]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { WorkflowRecord } from '../proto/index.ts'
import { fmt, startCluster, table, waitFor, withCluster, type Gridd } from './lib.ts'
import { parsePeers } from './peer.ts'
import { dagFigures, printWorkflowPeers, workflowPeers, type DagFigures } from './peers/workflows.ts'

const { values } = parseArgs({ options: { wide: { type: 'string', default: '990' }, chain: { type: 'string', default: '100' }, 'failover-chain': { type: 'string', default: '20' }, peers: { type: 'string', default: 'all' }, 'slurm-chain': { type: 'string', default: '20' }, 'slurm-wide': { type: 'string' }, 'distribute-chain': { type: 'string', default: '0' } } })
const W = Number(values.wide)
const C = Number(values.chain)
const F = Number(values['failover-chain'])
const D = Number(values['distribute-chain'])

const chainJobs = (n: number, cmd: (i: number) => string[]): Record<string, unknown> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`j${i}`, { command: cmd(i), ...(i === 0 ? {} : { needs: [`j${i - 1}`] }) }]))

/** Task time of a job (its start to its end, as the driver recorded it), in seconds. */
const taskSecs = (j: WorkflowRecord['jobs'][number]): number => j.startedAt === null || j.endedAt === null ? 0 : (Date.parse(j.endedAt) - Date.parse(j.startedAt)) / 1000

async function run (n: Gridd, root: string, name: string, wf: unknown): Promise<{ secs: number, w: WorkflowRecord }> {
  const f = join(root, `${name}.json`)
  writeFileSync(f, JSON.stringify(wf))
  const t0 = performance.now()
  const r = await n.ctl(['workflow', 'run', f, '-o', 'json'], { timeoutMs: 1_800_000 })
  const secs = (performance.now() - t0) / 1000
  if (r.code !== 0) throw new Error(`workflow run exit ${r.code}: ${r.stderr.slice(-500)}`)
  return { secs, w: JSON.parse(r.stdout) as WorkflowRecord }
}

async function main (): Promise<void> {
  const peers = await workflowPeers(parsePeers(values.peers), { wide: W, chain: C, slurmWide: Number(values['slurm-wide'] ?? W), slurmChain: Number(values['slurm-chain']) })
  const gridDags: { wide?: DagFigures, chain?: DagFigures } = {}
  const c = await startCluster(3, { args: () => ['--slots', '8'] })
  await withCluster(c, async () => {
    await c.converged()
    const n1 = c.node('n1')
    const rows: Array<Array<string | number>> = []
    if (W > 0) {
      const jobs: Record<string, unknown> = { start: { command: ['true'] } }
      for (let i = 0; i < W; i++) jobs[`w${i}`] = { needs: ['start'], command: ['true'] }
      jobs.end = { needs: Array.from({ length: W }, (_, i) => `w${i}`), command: ['true'] }
      const { secs, w } = await run(n1, c.root, 'wide', { name: 'wide', jobs })
      const byName = new Map(w.jobs.map(j => [j.name, j]))
      const wideStart = Math.min(...w.jobs.filter(j => j.name.startsWith('w')).map(j => Date.parse(j.startedAt ?? '')))
      const wideEnd = Math.max(...w.jobs.filter(j => j.name.startsWith('w')).map(j => Date.parse(j.endedAt ?? '')))
      const critical = taskSecs(byName.get('start') as WorkflowRecord['jobs'][number]) + Math.max(...w.jobs.filter(j => j.name.startsWith('w')).map(taskSecs)) + taskSecs(byName.get('end') as WorkflowRecord['jobs'][number])
      rows.push([`wide: start, ${W}, end`, w.status, fmt(secs), fmt(((secs - critical) / (W + 2)) * 1000, 1), `${fmt(W / ((wideEnd - wideStart) / 1000), 0)} jobs/s in the layer`])
      gridDags.wide = dagFigures(W + 2, secs, ((secs - critical) / (W + 2)) * 1000, W / ((wideEnd - wideStart) / 1000))
    }
    if (C > 0) {
      const { secs, w } = await run(n1, c.root, 'chain', { name: 'chain', jobs: chainJobs(C, () => ['true']) })
      const critical = w.jobs.reduce((s, j) => s + taskSecs(j), 0)
      // the same without gridctl's start-up: from the workflow's record to its end, as its driver wrote them
      const r = await n1.api.get<WorkflowRecord>(`/workflows/${w.id}`)
      const driven = r.finishedAt === null || r.finishedAt === undefined || r.createdAt === undefined ? secs : (Date.parse(r.finishedAt) - Date.parse(r.createdAt)) / 1000
      rows.push([`chain of ${C}`, w.status, fmt(secs), fmt(((secs - critical) / C) * 1000, 1), `task time ${fmt(critical)} s; ${fmt(((driven - critical) / C) * 1000, 1)} ms/job from submit to end`])
      gridDags.chain = dagFigures(C, secs, ((secs - critical) / C) * 1000)
    }
    if (D > 0) {
      // distribute jobs (count 1) in a chain: each job's end is heard from its stream, not at the driver's next look
      const jobs = Object.fromEntries(Array.from({ length: D }, (_, i) => [`d${i}`, { count: 1, command: ['true'], ...(i === 0 ? {} : { needs: [`d${i - 1}`] }) }]))
      const { secs, w } = await run(n1, c.root, 'dchain', { name: 'dchain', jobs })
      const critical = w.jobs.reduce((s, j) => s + taskSecs(j), 0)
      rows.push([`chain of ${D} distribute jobs`, w.status, fmt(secs), fmt(((secs - critical) / D) * 1000, 1), `job time ${fmt(critical)} s (each job's start to its verdict)`])
    }
    table('workflows of true (3 nodes on one machine)', ['DAG', 'status', 'makespan s', 'overhead ms/job', 'note'], rows)
    printWorkflowPeers(peers, gridDags)

    if (F === 0) return
    // the origin killed half-way through a chain of 200 ms jobs on n2
    const ran = join(c.root, 'fo-ran')
    const cmd = (i: number): string[] => ['sh', '-c', `echo ${i} >> ${ran}-$GRID_NODE_NAME; sleep 0.2`]
    const calm = await run(c.node('n2'), c.root, 'calm', { name: 'calm', jobs: chainJobs(F, () => ['sh', '-c', 'sleep 0.2']) })
    const f = join(c.root, 'fo.json')
    const jobs = chainJobs(F, cmd)
    for (const j of Object.values(jobs)) (j as Record<string, unknown>).node = 'n2'
    writeFileSync(f, JSON.stringify({ name: 'fo', jobs }))
    const t0 = performance.now()
    const r = await n1.ctl(['workflow', 'run', f, '--detach'])
    if (r.code !== 0) throw new Error(`workflow run --detach exit ${r.code}: ${r.stderr}`)
    const id = r.stdout.trim()
    const lines = (): string[] => ['n2', 'n3'].flatMap(n => existsSync(`${ran}-${n}`) ? readFileSync(`${ran}-${n}`, 'utf8').split('\n').filter(l => l !== '') : [])
    await waitFor('half the chain to run', () => lines().length >= F / 2, { timeoutMs: 600_000 })
    await n1.kill()
    const done = await waitFor('the workflow to end on n2', async () => {
      const w = await c.node('n2').api.get<WorkflowRecord>(`/workflows/${id}`)
      return w.status === 'running' ? undefined : w
    }, { timeoutMs: 600_000, intervalMs: 100 })
    const secs = (performance.now() - t0) / 1000
    const counts = new Map<string, number>()
    for (const l of lines()) counts.set(l, (counts.get(l) ?? 0) + 1)
    table(`a chain of ${F} jobs of 200 ms, the origin killed half-way`, ['run', 'makespan s', 'status', 'jobs run', 'run twice'], [
      ['no failure', fmt(calm.secs), calm.w.status, String(F), '0'],
      ['origin n1 killed', fmt(secs), done.status, String(counts.size), String([...counts.values()].filter(n => n > 1).length)]
    ])
  })
}

await main()
