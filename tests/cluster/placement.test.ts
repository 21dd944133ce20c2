import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HealthDetail, NodeEntry, QueueEntry } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { FAKE_NVIDIA_SMI } from '../helpers/paths.ts'
import { finished, task } from '../helpers/tasks.ts'

async function detach (n: Gridd, args: string[]): Promise<string> {
  const r = await n.ctl(['run', '--detach', ...args])
  if (r.code !== 0) throw new Error(`run --detach failed (${r.code}): ${r.stderr}`)
  return r.stdout.trim()
}

async function entry (from: Gridd, name: string): Promise<NodeEntry> {
  const e = (await from.nodes()).find(n => n.name === name)
  if (e === undefined) throw new Error(`${from.name} does not know ${name}`)
  return e
}

describe('placement - health, circuit breaker, lost GPUs and queue control on real daemons', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd, n3: Gridd
  let gpuState: string, spawnFault: string
  beforeAll(async () => {
    c = new Cluster()
    gpuState = join(c.root, 'n1-gpu-state')
    spawnFault = join(c.root, 'n1-spawn-fault')
    const health = { GRID_HEALTH_EJECT_AFTER_FAILURES: '2', GRID_HEALTH_BASE_EJECTION: '3s' }
    // n1 has GPUs whose fake nvidia-smi fails on demand, spawns that fail on demand, and the only capability "only-n1"
    await c.add('n1', {
      args: ['--slots', '2', '--nvidia-smi', FAKE_NVIDIA_SMI, '--capability', 'only-n1'],
      env: { ...health, FAKE_GPU_COUNT: '2', FAKE_GPU_NODE: 'n1', FAKE_GPU_STATE_FILE: gpuState, GRID_TEST_SPAWN_FAULT_FILE: spawnFault }
    })
    await c.add('n2', { args: ['--slots', '2', '--nvidia-smi', FAKE_NVIDIA_SMI], env: { ...health, FAKE_GPU_COUNT: '2', FAKE_GPU_NODE: 'n2' } })
    await c.add('n3', { args: ['--slots', '2'], env: health })
    ;[n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('every node to see every other healthy, with its GPUs', async () => {
      for (const n of c.nodes) {
        const nodes = await n.nodes()
        if (nodes.length !== 3 || !nodes.every(e => e.health === 'healthy' && e.paused === false && e.role === 'worker')) return false
        if (nodes.find(e => e.name === 'n1')?.load?.gpus !== 2) return false
      }
      return true
    }, { timeoutMs: 60_000 })
  })
  afterAll(async () => { await c?.destroy() })

  it('a node whose nvidia-smi fails is degraded everywhere, loses its GPU tasks to a peer, and gets them back when it recovers', async () => {
    writeFileSync(gpuState, 'fail')
    for (const n of c.nodes) {
      await waitFor(`${n.name} to see n1 degraded for its GPUs`, async () => {
        const e = await entry(n, 'n1')
        return e.health === 'degraded' && e.healthReason.includes('GPUs lost') && e.load?.gpus === 0
      }, { timeoutMs: 30_000 })
    }
    const gpuTasks = await Promise.all([0, 1, 2].map(async () => await detach(n1, ['--gpus', '1', '--', 'sh', '-c', 'echo $CUDA_VISIBLE_DEVICES'])))
    for (const id of gpuTasks) {
      const t = await finished(n1, id)
      expect(t.status).toBe('completed')
      expect(t.nodeName).toBe('n2')
    }
    // the reason and since are the same on every node: the node's own verdict, gossiped
    const seen = await Promise.all(c.nodes.map(async n => await entry(n, 'n1')))
    expect(new Set(seen.map(e => e.healthSince)).size).toBe(1)

    rmSync(gpuState)
    await waitFor('n1 healthy again with its 2 GPUs', async () => {
      const e = await entry(n2, 'n1')
      return e.health === 'healthy' && e.load?.gpus === 2
    }, { timeoutMs: 30_000 })
    const back = await detach(n2, ['--gpus', '1', '--node', 'n1', '--', 'sh', '-c', 'echo $CUDA_VISIBLE_DEVICES'])
    const t = await finished(n2, back)
    expect(t).toMatchObject({ status: 'completed', nodeName: 'n1' })
    const d = await n3.api.get<HealthDetail>('/health/n1')
    expect(d.healthHistory.map(h => h.health)).toEqual(expect.arrayContaining(['degraded', 'healthy']))
  })

  it('routing avoids a degraded node while a healthy one fits, and uses it when only it fits', async () => {
    writeFileSync(gpuState, 'lost')
    await waitFor('n2 to see n1 degraded for a lost GPU', async () => {
      const e = await entry(n2, 'n1')
      return e.health === 'degraded' && /GPU 0 .* lost/.test(e.healthReason) && e.load?.gpus === 1
    }, { timeoutMs: 30_000 })
    const ids = await Promise.all(Array.from({ length: 6 }, async () => await detach(n1, ['--', 'true'])))
    for (const id of ids) expect((await finished(n1, id)).nodeName).not.toBe('n1')
    const only = await detach(n2, ['--require', 'only-n1', '--', 'echo', 'ran'])
    expect(await finished(n2, only)).toMatchObject({ status: 'completed', nodeName: 'n1' })
    rmSync(gpuState)
    await waitFor('n1 healthy again', async () => (await entry(n2, 'n1')).health === 'healthy', { timeoutMs: 30_000 })
  })

  it('consecutive spawn failures open n1\'s breaker; after the cool-down a trial closes it', async () => {
    writeFileSync(spawnFault, '')
    const failing = await detach(n2, ['--require', 'only-n1', '--retries', '1', '--', 'true'])
    const f = await finished(n2, failing)
    expect(f.status).toBe('failed')
    for (const n of c.nodes) {
      await waitFor(`${n.name} to see n1's breaker open`, async () => {
        const e = await entry(n, 'n1')
        return e.health === 'degraded' && e.breaker === 'open' && e.healthReason.includes('circuit breaker open')
      }, { timeoutMs: 20_000 })
    }
    rmSync(spawnFault)
    await waitFor('n1\'s breaker to go half-open after the 3 s cool-down', async () => (await entry(n1, 'n1')).breaker === 'half-open', { timeoutMs: 20_000 })
    const trial = await detach(n2, ['--require', 'only-n1', '--', 'echo', 'trial'])
    expect(await finished(n2, trial)).toMatchObject({ status: 'completed', nodeName: 'n1' })
    await waitFor('every node to see n1 healthy with its breaker closed', async () => {
      for (const n of c.nodes) {
        const e = await entry(n, 'n1')
        if (e.health !== 'healthy' || e.breaker !== 'closed') return false
      }
      return true
    }, { timeoutMs: 20_000 })
    const d = await n1.api.get<HealthDetail>('/health/n1')
    expect(d.healthHistory.slice(-2).map(h => h.health)).toEqual(['degraded', 'healthy'])
  })

  it('health NODE shows its last probes with round trips', async () => {
    const d = await waitFor('n1 to have probed n2', async () => {
      const h = await n1.api.get<HealthDetail>('/health/n2')
      return h.probes.length > 0 ? h : undefined
    }, { timeoutMs: 30_000 })
    expect(d.probes.length).toBeLessThanOrEqual(100)
    expect(d.probes[0]).toMatchObject({ at: expect.any(String), ok: true, rttMs: expect.any(Number) })
    const r = await n1.ctl(['health', 'n2'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/probes:\s+\d+ \(0 failed\), rtt min\/avg\/max/)
  })

  it('queue pause on one node: routing passes it by and pinned tasks wait; resume lets them run', async () => {
    const r = await n1.ctl(['queue', 'pause', 'n3', '-o', 'json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: 'n3', paused: true }])
    await waitFor('n1 to see n3 paused', async () => (await entry(n1, 'n3')).paused)
    const ids = await Promise.all(Array.from({ length: 6 }, async () => await detach(n1, ['--', 'true'])))
    for (const id of ids) expect((await finished(n1, id)).nodeName).not.toBe('n3')
    const v = await n1.ctl(['run', '-v', '--', 'true'])
    expect(v.code).toBe(0)
    expect(v.stderr).toContain('passed by n3 (paused)')
    const pinned = await detach(n1, ['--node', 'n3', '--', 'echo', 'pinned'])
    await waitFor('the pinned task to wait for n3, saying it is paused', async () => {
      const t = await task(n1, pinned)
      return t.status === 'pending' && (t.reason ?? '').includes('node n3 is paused')
    }, { timeoutMs: 20_000 })
    expect((await n1.ctl(['queue', 'resume', 'n3'])).code).toBe(0)
    expect(await finished(n1, pinned, 60_000)).toMatchObject({ status: 'completed', nodeName: 'n3' })
    expect((await entry(n1, 'n3')).paused).toBe(false)
  })

  it('queue pause --all: nothing starts anywhere until queue resume --all, and queue ls shows what waits', async () => {
    // something queued on n1 first: two slots held, a third task waits in its queue
    const holders = await Promise.all([0, 1].map(async () => await detach(n1, ['--node', 'n1', '--', 'sleep', '3'])))
    const queued = await detach(n1, ['--node', 'n1', '--priority', '70', '--', 'echo', 'queued'])
    const ls = await waitFor('queue ls to show the queued task', async () => {
      const r = await n2.ctl(['queue', '-o', 'json'])
      const rows = JSON.parse(r.stdout) as QueueEntry[]
      return rows.find(q => q.task === queued)
    })
    expect(ls).toMatchObject({ task: queued, node: n1.id, nodeName: 'n1', priority: 70, waitingMs: expect.any(Number) })
    const r = await n2.ctl(['queue', 'pause', '--all', '-o', 'json'])
    expect(r.code).toBe(0)
    expect((JSON.parse(r.stdout) as Array<{ paused: boolean }>).every(e => e.paused)).toBe(true)
    for (const h of holders) await finished(n1, h)
    const fresh = await detach(n2, ['--', 'echo', 'fresh'])
    await waitFor('a new task to wait while every queue is paused', async () => (await task(n2, fresh)).status === 'pending' && (await task(n2, fresh)).reason?.includes('paused'), { timeoutMs: 20_000 })
    // the queued one does not start on a paused node, though its slots are free now
    expect((await task(n1, queued)).status).toBe('pending')
    expect((await n2.ctl(['queue', 'resume', '--all'])).code).toBe(0)
    expect(await finished(n1, queued)).toMatchObject({ status: 'completed', nodeName: 'n1' })
    expect((await finished(n2, fresh)).status).toBe('completed')
  })
})
