import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { WorkerOutcome } from '../../proto/index.ts'
import { WorkerPool, type WorkerInfo, type WorkerRequest, type WorkerTypeConfig } from '../../src/executor/index.ts'
import { gpu, quietLogger, recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

const ECHO = [process.execPath, join(import.meta.dirname, '../../examples/workers/echo_worker.mjs')]

interface Echo { echo: unknown, pid: number, served: number, session: string | null, gpus: string }

function type (over: Partial<WorkerTypeConfig> = {}): WorkerTypeConfig {
  return { command: ECHO, cpus: 0, gpus: 0, memory: 0, maxTasks: 0, idleTimeoutMs: 60_000, concurrency: 4, maxWorkers: 2, ...over }
}

function ppid (pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1])
}

function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

async function until (what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('warm workers - through the spawner', () => {
  let t: TestExecutor | undefined
  let pool: WorkerPool | undefined
  const states: Array<WorkerInfo & { running: boolean }> = []
  afterEach(async () => {
    await pool?.stop()
    await t?.executor.stop()
    pool = undefined
    t = undefined
    states.length = 0
  })

  /** An executor (for resources) and a pool; `shared`: the pool starts workers through the executor's spawner. */
  function setUp (types: Record<string, WorkerTypeConfig>, opts: { shared?: boolean, gpus?: number } = {}): WorkerPool {
    t = testExecutor({}, Array.from({ length: opts.gpus ?? 0 }, (_, i) => gpu(i, `GPU-${i}`)))
    t.executor.start()
    const ex = t.executor
    pool = new WorkerPool({
      logger: quietLogger(),
      reserve: need => ex.reserve(need),
      unreserve: held => { ex.unreserve(held) },
      cannotEverHold: need => ex.cannotEverHold(need),
      ...(opts.shared === true ? { processes: ex.processes } : {})
    }, { nodeId: 'test-node', nodeName: 'unit', types, baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, queueLimit: 16, killGraceMs: 300 })
    pool.on('worker:state', s => { states.push(s) })
    pool.start()
    return pool
  }

  async function call (p: WorkerPool, payload: unknown, over: Partial<WorkerRequest> = {}): Promise<WorkerOutcome> {
    return await p.request({ type: 'echo', payload, timeoutMs: 10_000, priority: 0, retries: 0, ...over })
  }

  async function echo (p: WorkerPool, payload: unknown, session?: string): Promise<Echo> {
    const r = await call(p, payload, session === undefined ? {} : { session })
    if (!r.ok) throw new Error(`${r.code}: ${r.error}`)
    return r.result as Echo
  }

  it('serves a session from one warm worker, a child of the spawner rather than of the daemon', async () => {
    const p = setUp({ echo: type() })
    const first = await echo(p, 1, 's1')
    const second = await echo(p, 2, 's1')
    expect(second).toMatchObject({ pid: first.pid, served: 2, echo: 2, session: 's1' })
    const parent = ppid(first.pid)
    expect(parent).not.toBe(process.pid)
    expect(readFileSync(`/proc/${parent}/cmdline`, 'utf8')).toMatch(/spawnerMain/)
    await until('the worker to be announced with its pid', () => states.some(s => s.running && s.pid === first.pid))
    expect(p.list()).toMatchObject([{ type: 'echo', session: 's1', pid: first.pid, served: 2 }])
  })

  it('starts workers through the executor\'s own spawner when handed it', async () => {
    const p = setUp({ echo: type() }, { shared: true })
    const worker = await echo(p, 'x')
    const w = recorder()
    t?.executor.admit(task('ppid', { command: ['sh', '-c', 'echo $PPID'] }), w)
    await w.result
    expect(ppid(worker.pid)).toBe(Number(w.stdout().trim()))
  })

  it('restarts a killed worker, and the session goes on', async () => {
    const p = setUp({ echo: type() })
    const before = await echo(p, 'a', 'crashy')
    process.kill(before.pid, 'SIGKILL')
    await until('the pool to notice the worker died', () => states.some(s => !s.running && s.pid === before.pid))
    const after = await echo(p, 'b', 'crashy')
    expect(after.pid).not.toBe(before.pid)
    expect(after).toMatchObject({ session: 'crashy', served: 1 })
  })

  it('fails a request whose worker crashes under it, and serves the next', async () => {
    const p = setUp({ echo: type() })
    const r = await call(p, { crash: true }, { session: 'crash-once' })
    expect(r).toMatchObject({ ok: false, code: 'WORKER_CRASHED', error: expect.stringMatching(/exited with code 3 while it held this request/) })
    expect((await echo(p, 'next', 'crash-once')).echo).toBe('next')
  })

  it('kills a worker that does not answer at the request\'s timeout', async () => {
    const p = setUp({ echo: type({ command: ['sh', '-c', 'echo started >&2; exec cat >/dev/null'] }) })
    const r = await call(p, 'hello', { timeoutMs: 200 })
    expect(r).toMatchObject({ ok: false, code: 'TIMEOUT' })
    await until('the stuck worker to be gone', () => states.some(s => !s.running))
    const pid = (states.find(s => s.running) as WorkerInfo).pid
    expect(alive(pid)).toBe(false)
  })

  it('fails a request for a worker whose command cannot start, instead of hanging', async () => {
    const p = setUp({ echo: type({ command: ['/nonexistent/grid-no-such-worker'] }) })
    const r = await call(p, 'x')
    expect(r).toMatchObject({ ok: false, code: 'WORKER_CRASHED', error: expect.stringMatching(/cannot start the echo worker .*command not found/) })
    expect(t?.executor.usage().freeSlots).toBe(2)
  })

  it('gives a GPU worker its own GPU, and gives it back when the worker ends', async () => {
    const p = setUp({ echo: type({ gpus: 1 }) }, { gpus: 2 })
    const a = await echo(p, 1, 'gpu-a')
    const b = await echo(p, 2, 'gpu-b')
    expect(new Set([a.gpus, b.gpus])).toEqual(new Set(['GPU-0', 'GPU-1']))
    expect(t?.executor.usage().freeGpus).toBe(0)
    expect(await p.closeSession('gpu-a')).toBe(1)
    await until('the GPU to be free again', () => t?.executor.usage().freeGpus === 1)
    expect(alive(a.pid)).toBe(false)
  })

  it('ends its workers when it stops', async () => {
    const p = setUp({ echo: type() })
    const { pid } = await echo(p, 1, 's')
    await p.stop()
    pool = undefined
    expect(alive(pid)).toBe(false)
  })
})
