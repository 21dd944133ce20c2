import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { WorkerOutcome } from '../../proto/index.ts'
import { WorkerPool, type WorkerInfo, type WorkerRequest, type WorkerTypeConfig } from '../../src/executor/index.ts'
import { gpu, quietLogger, recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

const ECHO = [process.execPath, join(import.meta.dirname, '../../examples/workers/echo_worker.mjs')]

interface Echo { echo: unknown, pid: number, served: number, session: string | null, gpus: string }

/**
 * A worker that never answers 'hang'; on EOF it writes the file EOF_MARK (when set) and exits, or with IGNORE_EOF
 * runs on; with IGNORE_TERM it ignores SIGTERM.
 */
const STUBBORN = [process.execPath, '-e', `
const { createInterface } = require('node:readline')
const { writeFileSync } = require('node:fs')
if (process.env.IGNORE_TERM) process.on('SIGTERM', () => {})
createInterface({ input: process.stdin }).on('line', line => {
  const req = JSON.parse(line)
  if (req.payload !== 'hang') process.stdout.write(JSON.stringify({ id: req.id, result: { pid: process.pid } }) + '\\n')
}).on('close', () => {
  if (process.env.EOF_MARK) writeFileSync(process.env.EOF_MARK, 'eof')
  if (process.env.IGNORE_EOF) setInterval(() => {}, 1000)
  else process.exit(0)
})
`]

function fdLink (pid: number, fd: number): string {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`)
  } catch {
    return ''
  }
}

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

async function until (what: string, ok: () => boolean, timeoutMs = 25_000): Promise<void> {
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

  it('connects a worker\'s stdin and stdout straight to the daemon: it serves while the spawner is stopped', async () => {
    const p = setUp({ echo: type() })
    const { pid } = await echo(p, 1, 'direct')
    // one socket for both, and a stopped spawner relays nothing: the request and reply cannot pass through it
    expect(fdLink(pid, 0)).toMatch(/^socket:\[\d+\]$/)
    expect(fdLink(pid, 1)).toBe(fdLink(pid, 0))
    const spawner = ppid(pid)
    process.kill(spawner, 'SIGSTOP')
    try {
      expect(await call(p, 2, { session: 'direct', timeoutMs: 5_000 })).toMatchObject({ ok: true, result: { pid, served: 2, echo: 2 } })
    } finally {
      process.kill(spawner, 'SIGCONT')
    }
  })

  it('gives a worker EOF on its stdin when it retires politely, and it exits by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'grid-pool-test-'))
    try {
      const mark = join(dir, 'eof')
      const p = setUp({ echo: type({ command: STUBBORN, env: { EOF_MARK: mark } }) })
      const r = await call(p, 'x', { session: 'polite' })
      expect(r.ok).toBe(true)
      const { pid } = (r as { result: { pid: number } }).result
      expect(await p.closeSession('polite')).toBe(1)
      // SIGTERM (after the grace period) would have ended it without the mark
      expect(readFileSync(mark, 'utf8')).toBe('eof')
      await until('the worker to be gone', () => !alive(pid))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('fails a request whose worker is killed while it holds it, and the session gets a new worker', async () => {
    const p = setUp({ echo: type({ command: STUBBORN }) })
    const first = await call(p, 'x', { session: 'killed' })
    const { pid } = (first as { result: { pid: number } }).result
    const held = call(p, 'hang', { session: 'killed' })
    await until('the request to be in flight', () => p.list()[0]?.inflight === 1)
    process.kill(pid, 'SIGKILL')
    expect(await held).toMatchObject({ ok: false, code: 'WORKER_CRASHED', error: expect.stringMatching(/was killed by SIGKILL while it held this request/) })
    const next = await call(p, 'y', { session: 'killed' })
    expect(next.ok).toBe(true)
    expect((next as { result: { pid: number } }).result.pid).not.toBe(pid)
  })

  it('has its workers killed when the spawner\'s stdin closes (as when the daemon dies), though they ignore EOF and TERM', async () => {
    const p = setUp({ echo: type({ command: STUBBORN, env: { IGNORE_EOF: '1', IGNORE_TERM: '1' } }) }, { shared: true })
    const r = await call(p, 'x')
    const { pid } = (r as { result: { pid: number } }).result
    expect(existsSync(t?.executor.processes.stdioPath as string)).toBe(true)
    t?.executor.processes.stop()
    await until('the worker to be gone', () => !alive(pid))
    await until('the pool to hear it is gone', () => states.some(s => !s.running && s.pid === pid))
  })

  it('ends its workers when it stops', async () => {
    const p = setUp({ echo: type() })
    const { pid } = await echo(p, 1, 's')
    await p.stop()
    pool = undefined
    expect(alive(pid)).toBe(false)
  })
})
