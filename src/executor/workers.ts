/**
 * Warm workers: long-lived processes of a task type that answer JSON requests on stdin/stdout (proto/worker.ts), so
 * a model loaded once serves many requests.
 *
 * - A worker holds its slots, memory and GPUs (reserved from the executor) for its whole life, and takes at most
 *   `concurrency` requests at once; the others wait in a bounded priority queue.
 * - A session's requests go to the session's own worker, started on first use; requests without a session go to
 *   any worker of the type (a new one is started while resources and `maxWorkers` allow).
 * - A worker that crashes fails (or, when the request allows, retries) the requests it held, and is started again
 *   with backoff; one that stops answering is killed at the request's timeout; an idle one ends after `idleTimeout`;
 *   one that has served `maxTasks` requests is recycled; draining ends them once their requests are done.
 * - Bad output (not JSON, an unknown id, an endless line) is an error for the request it belongs to, never more.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { WORKER_REPLY_MAX_BYTES, type WorkerOutcome } from '../../proto/index.ts'
import { UnavailableError, UnsatisfiableError, type NodeId, type Startable } from '../interface/index.ts'
import { LogLimiter } from '../util/index.ts'

export interface WorkerTypeConfig {
  command: string[]
  env?: Record<string, string>
  cwd?: string
  cpus: number
  gpus: number
  memory: number
  /** recycle a worker after this many requests (0: never) */
  maxTasks: number
  idleTimeoutMs: number
  concurrency: number
  /** most workers of this type without a session on this node */
  maxWorkers: number
}

export interface WorkerPoolComponents {
  logger: Logger
  reserve: (need: { cpus: number, gpus: number, memory: number }) => { gpus: string[] } | undefined
  unreserve: (held: { cpus: number, gpus: string[], memory: number }) => void
  cannotEverHold: (need: { cpus: number, gpus: number, memory: number }) => string | undefined
}

export interface WorkerPoolInit {
  nodeId: NodeId
  nodeName: string
  types: Record<string, WorkerTypeConfig>
  baseEnv: Record<string, string>
  queueLimit: number
  killGraceMs: number
}

export interface WorkerInfo {
  type: string
  session: string | null
  pid: number
  gpus: string[]
  served: number
  inflight: number
  startedAt: number
  lastUsedAt: number
}

export interface WorkerRequest {
  type: string
  session?: string
  payload: unknown
  timeoutMs: number
  priority: number
  /** times to send it again when its worker crashes under it */
  retries: number
}

interface Pending {
  req: WorkerRequest
  resolve: (o: WorkerOutcome) => void
  seq: number
  attempts: number
  timer?: NodeJS.Timeout
}

interface Proc {
  key: string
  type: string
  session: string | null
  child: ChildProcess
  held: { cpus: number, gpus: string[], memory: number }
  inflight: Map<string, Pending>
  nextId: number
  served: number
  startedAt: number
  lastUsedAt: number
  retiring: boolean
  idle?: NodeJS.Timeout
  parts: Buffer[]
  partBytes: number
  overflow: boolean
}

interface Group {
  key: string
  type: string
  session: string | null
  queue: Pending[]
  procs: Set<Proc>
  crashes: number
  nextStartAt: number
  retryTimer?: NodeJS.Timeout
}

export interface WorkerPoolEvents {
  'worker:state': [WorkerInfo & { running: boolean }]
}

const RESTART_BASE_MS = 250
const RESTART_CAP_MS = 30_000

export class WorkerPool extends EventEmitter<WorkerPoolEvents> implements Startable {
  private readonly groups = new Map<string, Group>()
  private draining = false
  private stopped = false
  private seq = 0
  private readonly limiter = new LogLimiter(10_000)

  constructor (private readonly c: WorkerPoolComponents, private readonly init: WorkerPoolInit) { super() }

  start (): void {}

  async stop (): Promise<void> {
    this.stopped = true
    const procs = [...this.groups.values()].flatMap(g => [...g.procs])
    for (const g of this.groups.values()) for (const p of g.queue.splice(0)) p.resolve(fail('UNAVAILABLE', `node ${this.init.nodeName} is stopping`))
    await Promise.all(procs.map(async p => { await this.retire(p, true) }))
  }

  types (): string[] { return Object.keys(this.init.types) }

  has (type: string): boolean { return this.init.types[type] !== undefined }

  list (): WorkerInfo[] {
    return [...this.groups.values()].flatMap(g => [...g.procs].map(p => info(p)))
  }

  /** No new workers; idle ones end now, busy ones when their requests are done. */
  setDraining (draining: boolean): void {
    this.draining = draining
    if (!draining) return
    for (const g of this.groups.values()) for (const p of g.procs) if (p.inflight.size === 0) void this.retire(p, false)
  }

  /** Ends a session's workers (gridctl sessions close); returns how many. */
  async closeSession (session: string): Promise<number> {
    let n = 0
    for (const g of this.groups.values()) {
      if (g.session !== session) continue
      for (const p of g.queue.splice(0)) p.resolve(fail('CANCELLED', `session ${session} was closed`))
      for (const p of g.procs) { n++; await this.retire(p, false) }
    }
    return n
  }

  /** Sends one request to a worker of the type (the session's own, when given); resolves with its outcome. */
  async request (req: WorkerRequest): Promise<WorkerOutcome> {
    const t = this.init.types[req.type]
    if (t === undefined) throw new UnsatisfiableError(`node ${this.init.nodeName} has no worker type ${req.type} (types: ${this.types().join(', ') || 'none'})`)
    if (this.stopped || this.draining) throw new UnavailableError(`node ${this.init.nodeName} is ${this.stopped ? 'stopping' : 'draining'}`)
    const why = this.c.cannotEverHold(t)
    if (why !== undefined) throw new UnsatisfiableError(`node ${this.init.nodeName} cannot host a ${req.type} worker: ${why}`)
    const key = `${req.type}\u0000${req.session ?? ''}`
    let g = this.groups.get(key)
    if (g === undefined) {
      g = { key, type: req.type, session: req.session ?? null, queue: [], procs: new Set(), crashes: 0, nextStartAt: 0 }
      this.groups.set(key, g)
    }
    if (g.queue.length >= this.init.queueLimit) throw new UnavailableError(`node ${this.init.nodeName}'s queue for ${req.type} workers is full (${this.init.queueLimit} requests)`)
    return await new Promise<WorkerOutcome>(resolve => {
      const p: Pending = { req, resolve, seq: this.seq++, attempts: 0 }
      this.enqueue(g, p)
      this.pump(g)
    })
  }

  private enqueue (g: Group, p: Pending): void {
    let i = g.queue.length
    while (i > 0 && (g.queue[i - 1] as Pending).req.priority < p.req.priority) i--
    g.queue.splice(i, 0, p)
  }

  /** Hands queued requests to workers with room, starting workers while resources allow. */
  private pump (g: Group): void {
    const t = this.init.types[g.type] as WorkerTypeConfig
    while (g.queue.length > 0) {
      let best: Proc | undefined
      for (const p of g.procs) {
        if (p.retiring || p.inflight.size >= t.concurrency) continue
        if (best === undefined || p.inflight.size < best.inflight.size) best = p
      }
      if (best === undefined) {
        const canGrow = !this.draining && !this.stopped && (g.session !== null ? g.procs.size === 0 : [...g.procs].filter(p => !p.retiring).length < t.maxWorkers)
        if (!canGrow) return
        if (Date.now() < g.nextStartAt) { this.retryLater(g, g.nextStartAt - Date.now()); return }
        const proc = this.startWorker(g, t)
        if (proc === undefined) { this.retryLater(g, 200); return }
        best = proc
      }
      this.send(best, g.queue.shift() as Pending, t)
    }
  }

  private retryLater (g: Group, ms: number): void {
    if (g.retryTimer !== undefined) return
    g.retryTimer = setTimeout(() => { g.retryTimer = undefined; this.pump(g) }, ms)
  }

  private startWorker (g: Group, t: WorkerTypeConfig): Proc | undefined {
    const held = this.c.reserve(t)
    if (held === undefined) return undefined
    const env: Record<string, string> = {
      ...this.init.baseEnv,
      ...t.env,
      GRID_WORKER_TYPE: g.type,
      GRID_NODE_ID: this.init.nodeId,
      GRID_NODE_NAME: this.init.nodeName
    }
    if (g.session !== null) env.GRID_SESSION = g.session
    if (held.gpus.length > 0 || t.gpus > 0) {
      env.CUDA_VISIBLE_DEVICES = held.gpus.join(',')
      env.CUDA_DEVICE_ORDER = 'PCI_BUS_ID'
    }
    const heldAll = { cpus: t.cpus, gpus: held.gpus, memory: t.memory }
    let child: ChildProcess
    try {
      child = spawn(t.command[0] as string, t.command.slice(1), { cwd: t.cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
    } catch (err) {
      this.c.unreserve(heldAll)
      this.crashed(g, `cannot start ${t.command[0] ?? ''}: ${(err as Error).message}`)
      return undefined
    }
    const now = Date.now()
    const proc: Proc = { key: g.key, type: g.type, session: g.session, child, held: heldAll, inflight: new Map(), nextId: 1, served: 0, startedAt: now, lastUsedAt: now, retiring: false, parts: [], partBytes: 0, overflow: false }
    g.procs.add(proc)
    child.stdin?.on('error', () => {})
    child.stdout?.on('data', (d: Buffer) => { this.onStdout(proc, d) })
    child.stderr?.on('data', (d: Buffer) => { this.onStderr(proc, d) })
    child.once('error', err => { this.c.logger.warn({ type: g.type, session: g.session, err: err.message }, 'worker failed to start') })
    child.once('exit', (code, signal) => { this.onExit(g, proc, code, signal) })
    this.c.logger.info({ type: g.type, session: g.session, pid: child.pid, gpus: held.gpus }, 'worker started')
    this.emitState(proc, true)
    return proc
  }

  private send (proc: Proc, p: Pending, t: WorkerTypeConfig): void {
    const id = String(proc.nextId++)
    proc.inflight.set(id, p)
    clearTimeout(proc.idle)
    p.attempts++
    p.timer = setTimeout(() => {
      // a worker that does not answer in time is stuck: kill it; its requests fail (or retry) as after a crash
      proc.inflight.delete(id)
      p.resolve(fail('TIMEOUT', `the ${proc.type} worker did not answer within ${p.req.timeoutMs}ms; it was restarted`))
      this.kill(proc)
    }, p.req.timeoutMs)
    const line = JSON.stringify({ id, payload: p.req.payload, session: proc.session, type: proc.type }) + '\n'
    proc.child.stdin?.write(line)
    if (t.maxTasks > 0 && proc.served + proc.inflight.size >= t.maxTasks) proc.retiring = true
  }

  private onStdout (proc: Proc, d: Buffer): void {
    let start = 0
    for (let nl = d.indexOf(10); nl >= 0; nl = d.indexOf(10, start)) {
      const piece = d.subarray(start, nl)
      start = nl + 1
      if (proc.overflow) {
        proc.overflow = false
        this.protocolError(proc, `a reply line was longer than the ${WORKER_REPLY_MAX_BYTES}-byte limit`)
        continue
      }
      const line = proc.parts.length === 0 ? piece : Buffer.concat([...proc.parts, piece])
      proc.parts = []
      proc.partBytes = 0
      this.onLine(proc, line)
    }
    const rest = d.subarray(start)
    if (rest.byteLength === 0 || proc.overflow) return
    proc.partBytes += rest.byteLength
    if (proc.partBytes > WORKER_REPLY_MAX_BYTES) {
      // too long: drop it up to its end, keep memory bounded
      proc.parts = []
      proc.partBytes = 0
      proc.overflow = true
      return
    }
    proc.parts.push(Buffer.from(rest))
  }

  private onLine (proc: Proc, line: Buffer): void {
    if (line.byteLength === 0) return
    let reply: { id?: unknown, result?: unknown, error?: unknown }
    try {
      reply = JSON.parse(line.toString('utf8')) as typeof reply
    } catch {
      this.protocolError(proc, `the worker wrote a line that is not JSON: ${JSON.stringify(line.toString('utf8').slice(0, 120))}`)
      return
    }
    if (reply === null || typeof reply !== 'object' || typeof reply.id !== 'string' || (!('result' in reply) && typeof reply.error !== 'string')) {
      this.protocolError(proc, `the worker wrote a reply without a string id and a result or error: ${JSON.stringify(line.toString('utf8').slice(0, 120))}`)
      return
    }
    const p = proc.inflight.get(reply.id)
    if (p === undefined) {
      this.protocolError(proc, `the worker replied to an unknown request id ${JSON.stringify(reply.id.slice(0, 40))}`)
      return
    }
    proc.inflight.delete(reply.id)
    clearTimeout(p.timer)
    proc.served++
    proc.lastUsedAt = Date.now()
    p.resolve(typeof reply.error === 'string' ? fail('WORKER_ERROR', reply.error) : { ok: true, result: reply.result })
    this.afterRequest(proc)
  }

  /** A reply that cannot be used: it fails the request it belongs to when that can be told (one in flight). */
  private protocolError (proc: Proc, message: string): void {
    if (this.limiter.allow(`${proc.key}:protocol`)) this.c.logger.warn({ type: proc.type, session: proc.session, pid: proc.child.pid, problem: message }, 'worker broke the protocol')
    if (proc.inflight.size !== 1) return
    const [id, p] = [...proc.inflight.entries()][0] as [string, Pending]
    proc.inflight.delete(id)
    clearTimeout(p.timer)
    p.resolve(fail('PROTOCOL', message))
    this.afterRequest(proc)
  }

  private afterRequest (proc: Proc): void {
    const g = this.groups.get(proc.key)
    const t = this.init.types[proc.type] as WorkerTypeConfig
    if (proc.retiring && proc.inflight.size === 0) { void this.retire(proc, false); if (g !== undefined) this.pump(g); return }
    if (g !== undefined) this.pump(g)
    if (proc.inflight.size === 0 && !proc.retiring) {
      clearTimeout(proc.idle)
      proc.idle = setTimeout(() => { if (proc.inflight.size === 0) void this.retire(proc, false) }, t.idleTimeoutMs)
      if (this.draining) void this.retire(proc, false)
    }
  }

  private onStderr (proc: Proc, d: Buffer): void {
    if (!this.limiter.allow(`${proc.key}:stderr:${Math.floor(Date.now() / 100)}`)) return
    for (const line of d.toString('utf8').split('\n')) {
      if (line.trim() !== '') this.c.logger.info({ type: proc.type, session: proc.session, pid: proc.child.pid, line: line.slice(0, 2000) }, 'worker stderr')
    }
  }

  /** Ends a worker: politely (stdin closed, TERM after a grace period, KILL after another) or at once. */
  private async retire (proc: Proc, hard: boolean): Promise<void> {
    proc.retiring = true
    clearTimeout(proc.idle)
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
    const exited = new Promise<void>(resolve => proc.child.once('exit', () => { resolve() }))
    proc.child.stdin?.end()
    const term = setTimeout(() => { killGroup(proc.child, 'SIGTERM') }, hard ? 0 : 2_000)
    const kill = setTimeout(() => { killGroup(proc.child, 'SIGKILL') }, (hard ? 0 : 2_000) + this.init.killGraceMs)
    await exited
    clearTimeout(term)
    clearTimeout(kill)
  }

  private kill (proc: Proc): void {
    proc.retiring = true
    killGroup(proc.child, 'SIGKILL')
  }

  private onExit (g: Group, proc: Proc, code: number | null, signal: NodeJS.Signals | null): void {
    g.procs.delete(proc)
    this.c.unreserve(proc.held)
    clearTimeout(proc.idle)
    killGroup(proc.child, 'SIGKILL')
    this.emitState(proc, false)
    const expected = proc.retiring && proc.inflight.size === 0
    if (!expected) {
      const why = `the ${proc.type} worker ${signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? '?'}`}`
      for (const [, p] of proc.inflight) {
        clearTimeout(p.timer)
        if (p.attempts <= p.req.retries && !this.stopped) this.enqueue(g, p)
        else p.resolve(fail('WORKER_CRASHED', `${why} while it held this request`))
      }
      proc.inflight.clear()
      if (!proc.retiring) this.crashed(g, why)
    } else {
      this.c.logger.info({ type: proc.type, session: proc.session, pid: proc.child.pid, served: proc.served }, 'worker ended')
      g.crashes = 0
    }
    if (g.procs.size === 0 && g.queue.length === 0) { this.groups.delete(g.key); return }
    this.pump(g)
  }

  private crashed (g: Group, why: string): void {
    const wait = Math.min(RESTART_CAP_MS, RESTART_BASE_MS * 2 ** g.crashes++)
    g.nextStartAt = Date.now() + wait
    this.c.logger.warn({ type: g.type, session: g.session, reason: why, restartInMs: wait }, 'worker crashed')
  }

  private emitState (proc: Proc, running: boolean): void {
    try {
      this.emit('worker:state', { ...info(proc), running })
    } catch (err) {
      this.c.logger.error({ err }, 'worker:state listener failed')
    }
  }
}

function info (p: Proc): WorkerInfo {
  return { type: p.type, session: p.session, pid: p.child.pid ?? 0, gpus: p.held.gpus, served: p.served, inflight: p.inflight.size, startedAt: p.startedAt, lastUsedAt: p.lastUsedAt }
}

function fail (code: string, error: string): WorkerOutcome {
  return { ok: false, code, error }
}

function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try { process.kill(-child.pid, signal) } catch { try { child.kill(signal) } catch {} }
}
