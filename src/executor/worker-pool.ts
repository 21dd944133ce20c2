/**
 * Warm workers: long-lived processes of a task type that answer JSON requests on stdin/stdout (proto/worker.ts), so
 * a model loaded once serves many requests.
 *
 * - A worker holds its slots, memory and GPUs (reserved from the executor) for its whole life, and takes at most
 *   `concurrency` requests at once; the others wait in a bounded priority queue.
 * - A session's requests go to the session's own worker, started on first use; requests without a session go to
 *   any worker of the type (a new one is started while resources and `maxWorkers` allow).
 * - A worker that crashes (or cannot start) fails (or, when the request allows, retries) the requests it held, and is
 *   started again with backoff; one that stops answering is killed at the request's timeout; an idle one ends after
 *   `idleTimeout`; one that has served `maxTasks` requests is recycled; draining ends them once their requests are done.
 * - Bad output (not JSON, an unknown id, an endless line) is an error for the request it belongs to, never more.
 * - Workers are children of the spawner like tasks, so they die with the daemon, even by kill -9; their stdin and
 *   stdout are a socket straight to the daemon (direct stdio), not relayed by the spawner.
 */
import { EventEmitter } from 'node:events'
import { WORKER_REPLY_MAX_BYTES, type WorkerOutcome } from '../../proto/index.ts'
import { UnavailableError, UnsatisfiableError, type Startable } from '../interface/index.ts'
import { LogLimiter } from '../util/index.ts'
import { AdmissionQueue } from './admission-queue.ts'
import { WORKER_START_RETRY_MS } from './constants.ts'
import { ProcessHost } from './process-host.ts'
import { parseReply, workerFailure as fail } from './worker-replies.ts'
import type { WorkerInfo, WorkerPoolComponents, WorkerPoolEvents, WorkerPoolInit, WorkerRequest, WorkerTypeConfig, WorkerWait } from './index.ts'
import { crashBackoffMs, flushRequests, startWorker, stopWorker, workerInfo, type Pending, type Proc, type WorkerEnd } from './worker-process.ts'
import { blockedBy, queuedReason, startingReason } from './worker-waits.ts'

interface Group {
  key: string
  type: string
  session: string | null
  queue: AdmissionQueue<Pending>
  procs: Set<Proc>
  crashes: number
  nextStartAt: number
  retryTimer?: NodeJS.Timeout
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> implements Startable {
  private readonly groups = new Map<string, Group>()
  private draining = false
  private stopped = false
  private readonly limiter = new LogLimiter(10_000)
  private readonly processes: ProcessHost
  /** the pool started `processes` itself (it was not handed one) */
  private readonly ownsProcesses: boolean

  constructor (private readonly c: WorkerPoolComponents, private readonly init: WorkerPoolInit) {
    super()
    this.ownsProcesses = c.processes === undefined
    this.processes = c.processes ?? new ProcessHost({ logger: c.logger }, init.baseEnv)
    if (this.ownsProcesses) {
      this.processes.on('spawner:exit', (code, workers) => {
        if (!this.stopped) this.c.logger.error({ code, workers }, 'the worker spawner exited; its workers are lost and will be started again')
      })
    }
  }

  /** Says which worker types this node can host and why not the others; starts its own spawner, when it has one. */
  start (): void {
    const hostable = this.types().filter(t => this.cannotHost(t) === undefined)
    if (this.types().length > 0) this.c.logger.info({ types: hostable }, 'worker types this node can host')
    for (const type of this.types()) {
      const reason = this.cannotHost(type)
      if (reason !== undefined) this.c.logger.warn({ type, reason }, 'worker type disabled on this node: it cannot host its workers')
    }
    if (this.ownsProcesses && this.types().length > 0) this.processes.start()
  }

  async stop (): Promise<void> {
    this.stopped = true
    const procs = [...this.groups.values()].flatMap(g => [...g.procs])
    for (const g of this.groups.values()) for (const p of g.queue.clear()) p.resolve(fail('UNAVAILABLE', `node ${this.init.nodeName} is stopping`))
    await Promise.all(procs.map(async p => { await this.retire(p, true) }))
    if (this.ownsProcesses) this.processes.stop()
  }

  types (): string[] { return Object.keys(this.init.types) }

  has (type: string): boolean { return this.init.types[type] !== undefined }

  /** What one worker of the type holds, as this node's configuration says (undefined for a type it does not define). */
  need (type: string): { cpus: number, gpus: number, memory: number } | undefined {
    const t = this.init.types[type]
    return t === undefined ? undefined : { cpus: t.cpus, gpus: t.gpus, memory: t.memory }
  }

  /** Why this node can never host a worker of the type (undefined when it can). */
  cannotHost (type: string): string | undefined {
    const t = this.init.types[type]
    if (t === undefined) return `it defines no worker type ${type}`
    return this.c.cannotEverHold(t)
  }

  list (): WorkerInfo[] {
    return [...this.groups.values()].flatMap(g => [...g.procs].map(p => workerInfo(p)))
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
      for (const p of g.queue.clear()) p.resolve(fail('CANCELLED', `session ${session} was closed`))
      for (const p of g.procs) { n++; await this.retire(p, false) }
    }
    return n
  }

  /**
   * Sends one request to a worker of the type (the session's own, when given); resolves with its outcome. When it
   * cannot go to a worker that has answered before (it is queued, or its worker is new), `onWaiting` gets a handle
   * that says why it waits; a request a warm worker takes at once costs nothing more.
   */
  async request (req: WorkerRequest, onWaiting?: (w: WorkerWait) => void): Promise<WorkerOutcome> {
    const t = this.init.types[req.type]
    if (t === undefined) throw new UnsatisfiableError(`node ${this.init.nodeName} has no worker type ${req.type} (types: ${this.types().join(', ') || 'none'})`)
    if (this.stopped || this.draining) throw new UnavailableError(`node ${this.init.nodeName} is ${this.stopped ? 'stopping' : 'draining'}`)
    const why = this.c.cannotEverHold(t)
    if (why !== undefined) throw new UnsatisfiableError(`node ${this.init.nodeName} cannot host a ${req.type} worker: ${why}`)
    const key = `${req.type}\u0000${req.session ?? ''}`
    let g = this.groups.get(key)
    if (g === undefined) {
      g = { key, type: req.type, session: req.session ?? null, queue: new AdmissionQueue(this.init.queueLimit), procs: new Set(), crashes: 0, nextStartAt: 0 }
      this.groups.set(key, g)
    }
    if (g.queue.full) throw new UnavailableError(`node ${this.init.nodeName}'s queue for ${req.type} workers is full (${this.init.queueLimit} requests)`)
    const group = g
    return await new Promise<WorkerOutcome>(resolve => {
      const p: Pending = { req, priority: req.priority, resolve, attempts: 0 }
      group.queue.push(p)
      this.pump(group)
      if (onWaiting !== undefined && (p.proc === undefined || p.proc.served === 0)) onWaiting({ reason: () => this.whyWaits(group, p) })
    })
  }

  /** Why a request waits now (undefined when it does not: a worker that has answered before has it, or it is done). */
  private whyWaits (g: Group, p: Pending): string | undefined {
    const ahead = g.queue.ahead(p)
    if (ahead < 0) {
      const proc = p.proc
      if (proc === undefined || ![...proc.inflight.values()].includes(p)) return undefined
      return startingReason(proc, this.init.nodeName, Date.now())
    }
    const t = this.init.types[g.type] as WorkerTypeConfig
    const free = this.c.free?.()
    const blocked = blockedBy({ procs: g.procs, session: g.session, draining: this.draining || this.stopped, nextStartAt: g.nextStartAt, spawnerRunning: this.processes.running, free }, t)
    const procs = [...this.groups.values()].flatMap(x => [...x.procs])
    return queuedReason({ nodeName: this.init.nodeName, type: g.type, session: g.session, config: t, ahead, blocked, procs, ...(free === undefined ? {} : { free }) })
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
        if (proc === undefined) { this.retryLater(g, WORKER_START_RETRY_MS); return }
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
    // the spawner is restarting after a crash: try again shortly
    if (!this.processes.running) return undefined
    const held = this.c.reserve(t)
    if (held === undefined) return undefined
    const proc = startWorker(this.processes, { key: g.key, type: g.type, session: g.session, config: t, held: { cpus: t.cpus, gpus: held.gpus, memory: t.memory }, nodeId: this.init.nodeId, nodeName: this.init.nodeName }, {
      spawned: () => {
        this.c.logger.info({ type: g.type, session: g.session, pid: proc.child.pid, gpus: held.gpus }, 'worker started')
        this.emitState(proc, true)
      },
      line: line => { this.onLine(proc, line) },
      overflow: () => { this.protocolError(proc, `a reply line was longer than the ${WORKER_REPLY_MAX_BYTES}-byte limit`) },
      stderr: d => { this.onStderr(proc, d) },
      ended: end => { this.onExit(g, proc, end) }
    })
    g.procs.add(proc)
    return proc
  }

  private send (proc: Proc, p: Pending, t: WorkerTypeConfig): void {
    const id = String(proc.nextId++)
    proc.inflight.set(id, p)
    p.proc = proc
    clearTimeout(proc.idle)
    p.attempts++
    p.timer = setTimeout(() => {
      // a worker that does not answer in time is stuck: kill it; its requests fail (or retry) as after a crash
      proc.inflight.delete(id)
      p.resolve(fail('TIMEOUT', `the ${proc.type} worker did not answer within ${p.req.timeoutMs}ms; it was restarted`))
      proc.retiring = true
      proc.child.kill('SIGKILL')
    }, p.req.timeoutMs)
    // the requests sent in one go (a batch, the room a reply made) leave in one write, not one write each
    proc.outbox.push(JSON.stringify({ id, payload: p.req.payload, session: proc.session, type: proc.type }))
    if (proc.outbox.length === 1) queueMicrotask(() => { flushRequests(proc) })
    if (t.maxTasks > 0 && proc.served + proc.inflight.size >= t.maxTasks) proc.retiring = true
  }

  private onLine (proc: Proc, line: string): void {
    const reply = parseReply(line)
    if (reply === undefined) return
    if ('problem' in reply) { this.protocolError(proc, reply.problem); return }
    const p = proc.inflight.get(reply.id)
    if (p === undefined) {
      this.protocolError(proc, `the worker replied to an unknown request id ${JSON.stringify(reply.id.slice(0, 40))}`)
      return
    }
    proc.inflight.delete(reply.id)
    clearTimeout(p.timer)
    proc.served++
    proc.lastUsedAt = Date.now()
    p.resolve(reply.outcome)
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

  private async retire (proc: Proc, hard: boolean): Promise<void> {
    await stopWorker(proc, hard, this.init.killGraceMs)
  }

  private onExit (g: Group, proc: Proc, end: WorkerEnd): void {
    g.procs.delete(proc)
    this.c.unreserve(proc.held)
    clearTimeout(proc.idle)
    if (proc.announced) this.emitState(proc, false)
    const expected = proc.retiring && proc.inflight.size === 0
    if (!expected) {
      const why = end.kind !== 'exit' ? end.why : `the ${proc.type} worker ${end.signal !== null ? `was killed by ${end.signal}` : `exited with code ${end.code ?? '?'}`}`
      const error = end.kind === 'failed' ? why : `${why} while it held this request`
      for (const [, p] of proc.inflight) {
        clearTimeout(p.timer)
        if (p.attempts <= p.req.retries && !this.stopped) g.queue.push(p)
        else p.resolve(fail('WORKER_CRASHED', error))
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
    const wait = crashBackoffMs(g.crashes++)
    g.nextStartAt = Date.now() + wait
    this.c.logger.warn({ type: g.type, session: g.session, reason: why, restartInMs: wait }, 'worker crashed')
  }

  private emitState (proc: Proc, running: boolean): void {
    try {
      this.emit('worker:state', { ...workerInfo(proc), running })
    } catch (err) {
      this.c.logger.error({ err }, 'worker:state listener failed')
    }
  }
}
