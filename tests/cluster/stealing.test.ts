import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RebalanceEntry } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { finished, task } from '../helpers/tasks.ts'

async function detach (n: Gridd, args: string[]): Promise<string> {
  const r = await n.ctl(['run', '--detach', ...args])
  if (r.code !== 0) throw new Error(`run --detach failed (${r.code}): ${r.stderr}`)
  return r.stdout.trim()
}

/** Each task appends its id to `file`: a task that ran twice shows twice. */
function appender (file: string, sleepS: number): string[] {
  return ['--', 'sh', '-c', `sleep ${sleepS}; echo $GRID_TASK_ID >> ${file}`]
}

function lines (file: string): string[] {
  try { return readFileSync(file, 'utf8').split('\n').filter(l => l !== '') } catch { return [] }
}

async function stolenTotal (n: Gridd): Promise<number> {
  const r = await n.ctl(['metrics'])
  const m = /^grid_tasks_stolen_total\S* (\d+)/m.exec(r.stdout)
  return m === null ? 0 : Number(m[1])
}

/** Pauses the other nodes' queues, queues `count` tasks on the one-slot n1, and resumes them. */
async function queueOnN1 (c: Cluster, count: number, file: string): Promise<string[]> {
  const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
  for (const n of [n2, n3]) expect((await n1.ctl(['queue', 'pause', n.name])).code).toBe(0)
  await waitFor('n1 to see n2 and n3 paused', async () => (await n1.nodes()).filter(e => e.paused).length === 2)
  const ids: string[] = []
  for (let i = 0; i < count; i++) ids.push(await detach(n1, appender(file, 1)))
  await waitFor('the tasks to wait in n1\'s queue', async () => (await task(n1, ids.at(-1) as string)).status === 'pending' && (await n1.status()) !== undefined)
  return ids
}

describe('work stealing - queued tasks move to idle peers, each run once', () => {
  let c: Cluster
  beforeAll(async () => {
    c = new Cluster()
    await c.add('n1', { args: ['--slots', '1'] })
    await c.add('n2', { args: ['--slots', '2'] })
    await c.add('n3', { args: ['--slots', '2'] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('tasks queued on a one-slot node move to idle peers after waiting, and each runs exactly once', async () => {
    const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    const file = join(c.root, 'ran-stolen')
    const ids = await queueOnN1(c, 8, file)
    // one pinned to n1 never moves
    const pinned = await detach(n1, ['--node', 'n1', ...appender(file, 0)])
    for (const n of [n2, n3]) expect((await n1.ctl(['queue', 'resume', n.name])).code).toBe(0)
    const records = await Promise.all([...ids, pinned].map(async id => await finished(n1, id, 90_000)))
    for (const r of records) expect(r.status).toBe('completed')
    expect(records.find(r => r.id === pinned)?.nodeName).toBe('n1')
    const elsewhere = records.filter(r => r.nodeName !== 'n1')
    expect(elsewhere.length).toBeGreaterThan(0)
    const ran = lines(file)
    expect(ran.length).toBe(ids.length + 1)
    expect(new Set(ran).size).toBe(ids.length + 1)
    expect(await stolenTotal(n1)).toBe(elsewhere.length)
  })
})

describe('rebalance - moves queued work at once, --dry-run only says what would move', () => {
  let c: Cluster
  beforeAll(async () => {
    c = new Cluster()
    // stealing off: only rebalance moves anything
    const env = { GRID_STEAL: 'false' }
    await c.add('n1', { args: ['--slots', '1'], env })
    await c.add('n2', { args: ['--slots', '2'], env })
    await c.add('n3', { args: ['--slots', '2'], env })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('rebalance --dry-run moves nothing; rebalance moves the queued tasks to n2 and n3 and prints where', async () => {
    const [n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    const file = join(c.root, 'ran-rebalanced')
    const ids = await queueOnN1(c, 5, file)
    for (const n of [n2, n3]) expect((await n1.ctl(['queue', 'resume', n.name])).code).toBe(0)
    await waitFor('n2 and n3 to be resumed everywhere', async () => (await n1.nodes()).every(e => !e.paused))
    const dry = await waitFor('rebalance --dry-run to see the queued tasks', async () => {
      const r = await n2.ctl(['rebalance', '--dry-run', '-o', 'json'])
      const rows = JSON.parse(r.stdout) as RebalanceEntry[]
      return rows.length > 0 ? rows : undefined
    })
    expect(dry.every(m => m.fromName === 'n1' && (m.toName === 'n2' || m.toName === 'n3'))).toBe(true)
    expect(await stolenTotal(n1)).toBe(0)
    const r = await n2.ctl(['rebalance', '-o', 'json'])
    expect(r.code).toBe(0)
    const moved = JSON.parse(r.stdout) as RebalanceEntry[]
    expect(moved.length).toBeGreaterThan(0)
    const records = await Promise.all(ids.map(async id => await finished(n1, id, 90_000)))
    for (const m of moved) expect(records.find(x => x.id === m.task)?.nodeName).toBe(m.toName)
    const ran = lines(file)
    expect(ran.length).toBe(ids.length)
    expect(new Set(ran).size).toBe(ids.length)
    expect(await stolenTotal(n1)).toBe(moved.length)
  })
})
