/**
 * bench/placement: head-of-line blocking and health-aware routing on 3 real daemons (2 slots each).
 *
 * 1. Head-of-line: N tasks of random length (50-500 ms, one seeded list) queued on one node of 3 (the others'
 *    queues paused while they are submitted, then resumed), with work stealing and without; makespan and mean wait
 *    (start - submit, from the task records) against an ideal join-shortest-queue schedule of the same list on the 6
 *    slots, computed here.
 * 2. Degraded: n3's fake nvidia-smi fails (n3 degraded, GPUs lost); M short tasks submitted at concurrency C through
 *    n1 and n2: the share that n3 received while the healthy nodes had room (goal: under 1 %).
 *
 *   npm run bench -- placement [--tasks 300] [--short 300] [--conc 4] [--seed 7]
 */
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent } from 'node:http'
import { parseArgs } from 'node:util'
import type { NodeEntry, TaskRecord } from '../proto/index.ts'
import { FAKE_NVIDIA_SMI } from '../tests/helpers/paths.ts'
import { type Cluster, type Gridd, call, fmt, startCluster, table, waitFor, withCluster } from './lib.ts'

const { values } = parseArgs({ options: { tasks: { type: 'string', default: '300' }, short: { type: 'string', default: '300' }, conc: { type: 'string', default: '4' }, seed: { type: 'string', default: '7' } } })
const N = Number(values.tasks)
const SHORT = Number(values.short)
const CONC = Number(values.conc)
const SLOTS_PER_NODE = 2
const NODES = 3

/** The same random lengths every run (Park-Miller). */
function lengths (n: number, seed: number): number[] {
  let s = seed
  return Array.from({ length: n }, () => { s = (s * 16807) % 2147483647; return 50 + Math.floor((s / 2147483647) * 451) })
}

/** Join-shortest-queue with perfect knowledge: every task, in order, to the slot that frees first. */
function ideal (ms: number[], slots: number): { makespanMs: number, meanWaitMs: number } {
  const free = new Array<number>(slots).fill(0)
  let wait = 0
  for (const d of ms) {
    let i = 0
    for (let j = 1; j < slots; j++) if ((free[j] as number) < (free[i] as number)) i = j
    wait += free[i] as number
    free[i] = (free[i] as number) + d
  }
  return { makespanMs: Math.max(...free), meanWaitMs: wait / ms.length }
}

async function ctl (n: Gridd, args: string[]): Promise<string> {
  const r = await n.ctl(args, { timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`gridctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}

async function records (n: Gridd, ids: string[]): Promise<TaskRecord[]> {
  return await waitFor('every task to end', async () => {
    const all = await Promise.all(ids.map(async id => await n.api.get<TaskRecord>(`/tasks/${id}`)))
    return all.every(t => t.status === 'completed') ? all : undefined
  }, { timeoutMs: 600_000, intervalMs: 1000 })
}

async function headOfLine (steal: boolean, ms: number[]): Promise<{ makespanMs: number, meanWaitMs: number, onN1: number }> {
  const c = await startCluster(NODES, { args: () => ['--slots', String(SLOTS_PER_NODE)], env: () => ({ GRID_STEAL: String(steal) }) })
  return await withCluster(c, async (c: Cluster) => {
    await c.converged()
    const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    for (const n of [n2, n3]) await ctl(n1, ['queue', 'pause', n.name])
    await waitFor('n1 to see n2 and n3 paused', async () => (await n1.api.get<NodeEntry[]>('/nodes')).filter(e => e.paused).length === 2)
    // submitted through the API at once (a few seconds for all), so the backlog builds on n1 before anyone can take it
    const agent = new Agent({ keepAlive: true, maxSockets: 16 })
    const ids = new Array<string>(ms.length)
    let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < ms.length) {
        const i = next++
        const r = await call(agent, n1.socket, 'POST', '/tasks', { command: ['sleep', ((ms[i] as number) / 1000).toFixed(3)], detach: true })
        ids[i] = (JSON.parse(r.text) as { id: string }).id
      }
    }))
    for (const n of [n2, n3]) await ctl(n1, ['queue', 'resume', n.name])
    const recs = await records(n1, ids)
    // from the first submission to the last exit; a task's wait is its start less its submission, as a user sees it
    const t0 = Math.min(...recs.map(r => Date.parse(r.createdAt)))
    const end = Math.max(...recs.map(r => Date.parse(r.finishedAt ?? r.createdAt)))
    const waits = recs.map(r => Math.max(0, Date.parse(r.startedAt ?? r.createdAt) - Date.parse(r.createdAt)))
    return { makespanMs: end - t0, meanWaitMs: waits.reduce((a, b) => a + b, 0) / waits.length, onN1: recs.filter(r => r.nodeName === 'n1').length }
  })
}

async function degraded (): Promise<{ total: number, onDegraded: number }> {
  const c = await startCluster(NODES, { args: () => ['--slots', String(SLOTS_PER_NODE), '--nvidia-smi', FAKE_NVIDIA_SMI], env: i => ({ FAKE_GPU_COUNT: '1', FAKE_GPU_NODE: `n${i + 1}`, FAKE_GPU_STATE_FILE: join(process.cwd(), `.bench-gpu-state-n${i + 1}`) }) })
  const state = join(process.cwd(), '.bench-gpu-state-n3')
  return await withCluster(c, async (c: Cluster) => {
    try {
      await c.converged()
      const [n1, n2] = c.nodes as [Gridd, Gridd, Gridd]
      writeFileSync(state, 'fail')
      await waitFor('n1 and n2 to see n3 degraded', async () => {
        for (const n of [n1, n2]) if ((await n.api.get<NodeEntry[]>('/nodes')).find(e => e.name === 'n3')?.health !== 'degraded') return false
        return true
      }, { timeoutMs: 60_000 })
      let next = 0
      const nodes: string[] = []
      await Promise.all(Array.from({ length: CONC }, async (_, w) => {
        const origin = w % 2 === 0 ? n1 : n2
        while (next < SHORT) {
          next++
          const out = await ctl(origin, ['run', '--', 'sh', '-c', 'sleep 0.05; echo $GRID_NODE_NAME'])
          nodes.push(out.trim().split('\n').at(-1) ?? '')
        }
      }))
      return { total: nodes.length, onDegraded: nodes.filter(n => n === 'n3').length }
    } finally {
      rmSync(state, { force: true })
    }
  })
}

const ms = lengths(N, Number(values.seed))
const best = ideal(ms, NODES * SLOTS_PER_NODE)
const withSteal = await headOfLine(true, ms)
const without = await headOfLine(false, ms)
table(`Head-of-line: ${N} tasks of 50-500 ms (total ${fmt(ms.reduce((a, b) => a + b, 0) / 1000, 1)} s of work) queued on n1 of 3 nodes x ${SLOTS_PER_NODE} slots`, ['', 'makespan s', 'mean wait s', 'ran on n1', 'mean wait / ideal'], [
  ['ideal join-shortest-queue', fmt(best.makespanMs / 1000), fmt(best.meanWaitMs / 1000), '-', '1.00'],
  ['with work stealing', fmt(withSteal.makespanMs / 1000), fmt(withSteal.meanWaitMs / 1000), withSteal.onN1, fmt(withSteal.meanWaitMs / best.meanWaitMs)],
  ['without', fmt(without.makespanMs / 1000), fmt(without.meanWaitMs / 1000), without.onN1, fmt(without.meanWaitMs / best.meanWaitMs)]
])
const d = await degraded()
table(`Degraded node: ${d.total} tasks at concurrency ${CONC} through n1 and n2, n3 degraded (GPUs lost)`, ['tasks', 'on n3', 'share'], [[String(d.total), String(d.onDegraded), `${fmt(d.onDegraded / Math.max(1, d.total) * 100, 2)} %`]])
