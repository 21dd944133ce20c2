import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DiscoverEntry, NodeEntry, PoolDetail, PoolEntry } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { finished } from '../helpers/tasks.ts'

async function detach (n: Gridd, args: string[]): Promise<string> {
  const r = await n.ctl(['run', '--detach', ...args])
  if (r.code !== 0) throw new Error(`run --detach failed (${r.code}): ${r.stderr}`)
  return r.stdout.trim()
}

describe('router nodes, pools and discover on real daemons', () => {
  let c: Cluster
  let r: Gridd, w1: Gridd, w2: Gridd
  beforeAll(async () => {
    c = new Cluster()
    await c.add('r', { args: ['--slots', '0'] })
    await c.add('w1', { args: ['--slots', '2', '--pool', 'gpu-a'] })
    await c.add('w2', { args: ['--slots', '1'] })
    ;[r, w1, w2] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('every node to know every other\'s load and pool', async () => {
      for (const n of c.nodes) {
        const nodes = await n.nodes()
        if (nodes.length !== 3 || nodes.some(e => e.load === null) || nodes.find(e => e.name === 'w1')?.labels.pool !== 'gpu-a') return false
      }
      return true
    })
  })
  afterAll(async () => { await c?.destroy() })

  it('a router (--slots 0) serves run and routes, and never runs a task itself', async () => {
    const nodes = await w1.api.get<NodeEntry[]>('/nodes')
    expect(nodes.find(n => n.name === 'r')).toMatchObject({ role: 'router', health: 'healthy' })
    expect(nodes.filter(n => n.name !== 'r').every(n => n.role === 'worker')).toBe(true)
    const run = await r.ctl(['run', '--', 'sh', '-c', 'echo ran on $GRID_NODE_NAME'])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/ran on w[12]/)
    const ids = await Promise.all(Array.from({ length: 6 }, async () => await detach(r, ['--', 'true'])))
    for (const id of ids) expect((await finished(r, id)).nodeName).not.toBe('r')
    const pinned = await r.ctl(['run', '--node', 'r', '--', 'true'])
    expect(pinned.code).toBe(2)
    expect(pinned.stderr).toContain('router')
  })

  it('pools sum what their nodes hold; run --pool places in that pool only', async () => {
    // the heartbeats that report the previous test's tasks as ended may still be on their way: wait for both pools idle
    const rows = await waitFor('pools to show both pools, idle', async () => {
      const p = JSON.parse((await w2.ctl(['pools', '-o', 'json'])).stdout) as PoolEntry[]
      return p.length === 2 && p.every(x => x.running === 0 && x.queued === 0) ? p : undefined
    })
    expect(rows).toEqual([
      { name: 'default', nodes: 2, alive: 2, slots: 1, freeSlots: 1, gpus: 0, freeGpus: 0, running: 0, queued: 0, healthy: 2, degraded: 0, unavailable: 0 },
      { name: 'gpu-a', nodes: 1, alive: 1, slots: 2, freeSlots: 2, gpus: 0, freeGpus: 0, running: 0, queued: 0, healthy: 1, degraded: 0, unavailable: 0 }
    ])
    const one = JSON.parse((await r.ctl(['pools', 'get', 'gpu-a', '-o', 'json'])).stdout) as PoolDetail
    expect(one.members.map(m => m.name)).toEqual(['w1'])
    expect((await r.ctl(['pools', 'get', 'nope'])).code).not.toBe(0)
    for (const [pool, node] of [['gpu-a', 'w1'], ['default', 'w2']] as const) {
      const ids = await Promise.all([0, 1, 2].map(async () => await detach(r, ['--pool', pool, '--', 'true'])))
      for (const id of ids) expect((await finished(r, id)).nodeName).toBe(node)
    }
    // distribute takes --pool as run does: every run of the job in that pool
    const job = await r.ctl(['distribute', '--pool', 'gpu-a', '--count', '4', '-o', 'json', '--', 'true'], { timeoutMs: 90_000 })
    expect(job.code, job.stderr).toBe(0)
    const doc = JSON.parse(job.stdout) as { status: string, results: Array<{ nodeName: string }> }
    expect(doc.status).toBe('completed')
    expect(doc.results.map(x => x.nodeName)).toEqual(['w1', 'w1', 'w1', 'w1'])
  })

  it('discover lists the peers the DHT rendezvous knows, as members and connected', async () => {
    const found = await waitFor('discover on w2 to list r and w1', async () => {
      const res = await w2.ctl(['discover', '-o', 'json'], { timeoutMs: 30_000 })
      const rows = JSON.parse(res.stdout) as DiscoverEntry[]
      return rows.some(x => x.id === r.id) && rows.some(x => x.id === w1.id) ? rows : undefined
    }, { timeoutMs: 60_000, intervalMs: 1000 })
    for (const e of found.filter(x => x.id === r.id || x.id === w1.id)) {
      expect(e).toMatchObject({ member: true, connected: true, source: 'dht' })
      expect(e.addrs.length).toBeGreaterThan(0)
    }
  })
})
