import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SessionEntry, SessionWorkerInfo } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { FAKE_NVIDIA_SMI, ROOT } from '../helpers/paths.ts'

interface Echo { echo: unknown, pid: number, served: number, session: string | null, gpus: string }
interface CallReply { node: string, nodeName: string, result?: unknown, error?: { code: string, message: string } }

function config (dir: string): string {
  const file = join(dir, 'workers.yaml')
  const ex = join(ROOT, 'examples/workers')
  writeFileSync(file, `
tasks:
  pyecho:
    command: [python3, ${ex}/echo_worker.py]
    worker: {concurrency: 1, idleTimeout: 2m}
  nodeecho:
    command: [${process.execPath}, ${ex}/echo_worker.mjs]
    worker: {concurrency: 8, cpus: 0}
  short:
    command: [python3, ${ex}/echo_worker.py]
    worker: {idleTimeout: 2s, maxTasks: 3, cpus: 0}
  bad:
    command: [python3, ${join(ROOT, 'tests/helpers/bad_worker.py')}]
    worker: {cpus: 0}
  gpuecho:
    command: [python3, ${ex}/echo_worker.py]
    worker: {gpus: 1, cpus: 0}
`)
  return file
}

async function call (n: Gridd, body: Record<string, unknown>): Promise<CallReply> {
  return await n.api.post<CallReply>('/call', body)
}

async function echo (n: Gridd, type: string, payload: unknown, session?: string): Promise<Echo & { nodeName: string }> {
  const r = await call(n, { type, payload, ...(session === undefined ? {} : { session }) })
  if (r.error !== undefined) throw new Error(`${r.error.code}: ${r.error.message}`)
  return { ...(r.result as Echo), nodeName: r.nodeName }
}

async function session (n: Gridd, id: string): Promise<SessionEntry> {
  return await n.api.get<SessionEntry>(`/sessions/${id}`)
}

describe('warm workers - sessions that keep a process warm, on real daemons', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd, n3: Gridd
  beforeAll(async () => {
    c = new Cluster()
    const cfg = config(c.root)
    await c.add('n1', { args: ['--config', cfg, '--slots', '4'] })
    await c.add('n2', { args: ['--config', cfg, '--slots', '4', '--nvidia-smi', FAKE_NVIDIA_SMI], env: { FAKE_GPU_COUNT: '2', FAKE_GPU_NODE: 'n2' } })
    await c.add('n3', { args: ['--config', cfg, '--slots', '4'] })
    ;[n1, n2, n3] = c.nodes as [Gridd, Gridd, Gridd]
    await c.converged()
    await waitFor('every node to see the worker types', async () => {
      const nodes = await n1.nodes()
      return nodes.length === 3 && nodes.every(n => n.load !== null)
    })
  })
  afterAll(async () => { await c?.destroy() })

  it('serves a session from one warm Python worker, whichever node the requests come from', async () => {
    const first = await echo(n1, 'pyecho', { i: 0 }, 'py-1')
    expect(first.echo).toEqual({ i: 0 })
    expect(first.session).toBe('py-1')
    for (let i = 1; i < 30; i++) {
      const from = [n1, n2, n3][i % 3] as Gridd
      const r = await echo(from, 'pyecho', { i }, 'py-1')
      expect(r).toMatchObject({ pid: first.pid, nodeName: first.nodeName, served: i + 1, echo: { i } })
    }
    await waitFor('the session record to show its worker', async () => {
      const s = await session(n3, 'py-1')
      const w = s.worker as SessionWorkerInfo | null
      return w !== null && w?.pid === first.pid && s.ownerName === first.nodeName
    })
    const ls = JSON.parse((await n2.ctl(['sessions', 'ls', '-o', 'json'])).stdout) as SessionEntry[]
    expect(ls.find(s => s.id === 'py-1')?.worker).toMatchObject({ pid: first.pid, type: 'pyecho' })
    const table = (await n2.ctl(['sessions', 'ls'])).stdout
    expect(table).toMatch(/^ID\s+OWNER\s+WORKER PID\s+GPUS\s+SERVED\s+IDLE/)
  })

  it('serves through gridctl run --type with a session, printing the result', async () => {
    const r = await n3.ctl(['run', '--type', 'nodeecho', '--session', 'node-1', '--payload', '{"hello":"world"}'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as Echo
    expect(out).toMatchObject({ echo: { hello: 'world' }, session: 'node-1' })
    const again = JSON.parse((await n1.ctl(['run', '--type', 'nodeecho', '--session', 'node-1', '--payload', '2'])).stdout) as Echo
    expect(again.pid).toBe(out.pid)
    const failed = await n1.ctl(['run', '--type', 'nodeecho', '--payload', '{"fail":"bad input"}'])
    expect(failed.code).toBe(1)
    expect(failed.stderr).toMatch(/WORKER_ERROR: bad input/)
  })

  it('answers batches of requests in one call', async () => {
    const r = await n1.api.post<{ results: Array<{ ok: boolean, result: Echo }> }>('/call', { type: 'nodeecho', payloads: Array.from({ length: 50 }, (_, i) => i) })
    expect(r.results.map(x => x.ok && (x.result.echo as number))).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it('restarts a killed worker, and the session goes on', async () => {
    const before = await echo(n2, 'pyecho', 'a', 'crashy')
    process.kill(before.pid, 'SIGKILL')
    const after = await waitFor('a new worker to answer', async () => {
      const r = await echo(n1, 'pyecho', 'b', 'crashy')
      return r.pid !== before.pid ? r : undefined
    }, { timeoutMs: 30_000 })
    expect(after).toMatchObject({ nodeName: before.nodeName, session: 'crashy', served: 1 })
  })

  it('fails a request whose worker crashes under it, and serves the next', async () => {
    const r = await call(n1, { type: 'pyecho', payload: { crash: true }, session: 'crash-once' })
    expect(r.error).toMatchObject({ code: 'WORKER_CRASHED', message: expect.stringMatching(/exited with code 3 while it held this request/) })
    expect((await echo(n1, 'pyecho', 'next', 'crash-once')).echo).toBe('next')
  })

  it('makes bad output an error for that request only', async () => {
    for (const [mode, code, message] of [
      ['notjson', 'PROTOCOL', /not JSON/],
      ['wrongid', 'PROTOCOL', /unknown request id "nope"/],
      ['huge', 'PROTOCOL', /longer than the 16777216-byte limit/]
    ] as const) {
      const r = await call(n1, { type: 'bad', payload: { mode }, session: 'bad-1' })
      expect(r.error, mode).toMatchObject({ code, message: expect.stringMatching(message) })
      const ok = await call(n1, { type: 'bad', payload: { mode: 'ok' }, session: 'bad-1' })
      expect(ok.result, mode).toMatchObject({ pid: expect.any(Number) })
    }
    for (const n of c.nodes) expect(n.exited).toBe(false)
  })

  it('kills a worker that stops answering at the request\'s timeout', async () => {
    const ok = await call(n1, { type: 'bad', payload: { mode: 'ok' }, session: 'hangs' })
    const r = await call(n1, { type: 'bad', payload: { mode: 'hang' }, session: 'hangs', timeout: '1s' })
    expect(r.error).toMatchObject({ code: 'TIMEOUT' })
    const next = await call(n1, { type: 'bad', payload: { mode: 'ok' }, session: 'hangs' })
    expect((next.result as { pid: number }).pid).not.toBe((ok.result as { pid: number }).pid)
  })

  it('recycles a worker after maxTasks requests, and ends an idle one after idleTimeout', async () => {
    const pids = []
    for (let i = 0; i < 4; i++) pids.push((await echo(n3, 'short', i, 'recycled')).pid)
    expect(pids[0]).toBe(pids[2])
    expect(pids[3]).not.toBe(pids[2])
    await waitFor('the idle worker to end and leave the session record', async () => (await session(n1, 'recycled')).worker === null, { timeoutMs: 30_000 })
  })

  it('gives each GPU worker its own GPU, only on a node with GPUs', async () => {
    const a = await echo(n1, 'gpuecho', 1, 'gpu-a')
    const b = await echo(n3, 'gpuecho', 2, 'gpu-b')
    expect(a.nodeName).toBe('n2')
    expect(b.nodeName).toBe('n2')
    expect(new Set([a.gpus, b.gpus])).toEqual(new Set(['GPU-n2-0000', 'GPU-n2-0001']))
    await waitFor('the session to list its GPU', async () => ((await session(n1, 'gpu-a')).worker as SessionWorkerInfo | null)?.gpus[0] === a.gpus)
    // both GPUs are held by warm workers: a GPU task waits for one
    const closed = await n1.ctl(['sessions', 'close', 'gpu-a', '-o', 'json'])
    expect(JSON.parse(closed.stdout)).toMatchObject({ id: 'gpu-a', 'closed': 1 })
    const task = await n1.ctl(['run', '--gpus', '1', '--', 'sh', '-c', 'echo $CUDA_VISIBLE_DEVICES'])
    expect(task.stdout.trim()).toBe(a.gpus)
  })

  it('moves a session when its owner node dies, and serves it again', async () => {
    const first = await echo(n1, 'pyecho', 'x', 'mover')
    const owner = c.node(first.nodeName)
    const survivor = c.nodes.find(n => n !== owner && n.name !== 'n2') ?? n2
    await owner.kill()
    await c.allSee(owner.name, 'dead')
    const moved = await echo(survivor, 'pyecho', 'y', 'mover')
    expect(moved.nodeName).not.toBe(owner.name)
    expect(moved).toMatchObject({ echo: 'y', served: 1 })
    expect((await session(survivor, 'mover')).ownerName).toBe(moved.nodeName)
  })
})
