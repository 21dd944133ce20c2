/**
 * A task's life across the mesh (shared/ARCHITECTURE.md, "A task's life").
 *
 * The origin checks the spec, asks routing for ranked candidates, records the task (pending) and coordinates it:
 * it offers the task to the first candidate, then the next if refused; streams the output back; retries with
 * exponential backoff and jitter when the executor dies (or the program fails and asked for retries on failure);
 * and gives a final verdict when the attempts run out. If the stream breaks while the executor is still alive, it
 * re-attaches rather than run the task twice. If the coordinator itself dies, the task runs on and its record
 * completes; a successor chosen by rendezvous hashing among the live nodes takes over the coordination. Cancel
 * works from any node. On the executor side, the RPC handlers hand tasks to the local executor and its state
 * changes become replicated records.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  FINAL_STATUSES, NodeDrain, TaskAttach, TaskCancel, TaskLogs, TaskRun,
  type CoordAspect, type ExecAspect, type TaskEvent, type TaskOffer, type TaskRecord, type TaskSpec, type TaskStatus,
  type WorkerOutcome
} from '../../proto/index.ts'
import {
  CancelledError, ConflictError, InvalidArgumentError, NotFoundError, UnsatisfiableError, toGridError,
  type NodeId, type Startable
} from '../interface/index.ts'
import type { Executor, Watcher, WorkerPool } from '../executor/index.ts'
import { exitCodeOf } from '../executor/index.ts'
import type { Membership, Transition } from '../membership/index.ts'
import type { Mesh, RpcContext } from '../mesh/index.ts'
import { route, type RouteResult } from '../routing/index.ts'
import type { ChangeEvent, NodeRegistry, Sessions, StateStore } from '../state/index.ts'
import { backoffMs, delay, repeat } from '../util/index.ts'
import { EventQueue } from './event-queue.ts'
import { TaskRecords, isFinalStatus, statusOf, type Aspects } from './records.ts'
import { normalizeSpec, type SubmitOptions } from './spec.ts'
import { successor } from './successor.ts'
import { candidates, resolveNode } from './view.ts'
import type { WorkerService } from './workers.ts'

/** A request to a warm worker without a timeout of its own: after this long the worker is deemed stuck. */
export const WORKER_DEFAULT_TIMEOUT_MS = 5 * 60_000

export interface TasksComponents {
  /** warm workers: typed tasks whose type has a worker go there instead of a new process */
  workers?: WorkerService
  mesh: Mesh
  membership: Membership
  store: StateStore
  nodeRegistry: NodeRegistry
  sessions: Sessions
  executor: Executor
  /** this node's warm workers: drained along with the executor */
  pool?: WorkerPool
  logger: Logger
  registry: Registry
}

export interface TasksInit {
  nodeName: string
  region: string
  retentionMs: number
  /** most finished task records this node keeps as a writer (the oldest go first) */
  maxRecords?: number
}

/** What the client of a submission sees, in order: accepted, placed, started, output…, retry…, exit. */
export type ClientEvent =
  | { type: 'accepted', id: string }
  | { type: 'placed', id: string, node: NodeId, nodeName: string, attempt: number, queued: boolean }
  | { type: 'started', id: string, node: NodeId, attempt: number, pid: number, gpus: string[] }
  | { type: 'output', stream: 1 | 2, data: Uint8Array, offset: number }
  | { type: 'gap', bytes: number }
  | { type: 'retry', id: string, attempt: number, reason: string, delayMs: number }
  | { type: 'waiting', id: string, reason: string, delayMs: number }
  | { type: 'exit', id: string, status: TaskStatus, exitCode: number | null, code: number, signal: string | null, error: string | null, node: NodeId | null, nodeName: string | null, attempts: number, result?: unknown }

type Outcome =
  | { kind: 'refused', reason: string }
  | { kind: 'done', result: ExecAspect }
  | { kind: 'retry', reason: string }

interface Coordinated {
  id: string
  spec: TaskSpec
  coord: CoordAspect
  sink?: EventQueue<ClientEvent>
  executor?: NodeId
  placed: boolean
  cancelRequested: boolean
  /** output bytes already forwarded (to re-attach from there) */
  offset: number
  submittedAt: number
  /** ends the current wait early (a cancel arrived) */
  waker?: () => void
  abort: AbortController
}

/** Tasks that end sooner leave one executor record (the final one) instead of two; `running` shows this much late. */
const EXEC_WRITE_DELAY_MS = 250
/** The routing view is rebuilt at most this often (recent dispatches correct it in between). */
const VIEW_TTL_MS = 100
const RETRY_BASE_MS = 100
const RETRY_CAP_MS = 30_000
/** No alive node can take the task now: it stays pending and is routed again, backing off up to 10 s... */
const ROUTE_RETRY_BASE_MS = 1_000
const ROUTE_RETRY_CAP_MS = 10_000
/** ...for at most this long; attempts count runs, so waiting for a node spends none of them. */
const ROUTE_WAIT_LIMIT_MS = 120_000
const REFUSED_RETRY_CAP_MS = 5_000
const RECENT_WINDOW_MS = 2_000
/** How long a broken stream's executor may stay suspect before the attempt counts as lost. */
const REATTACH_DEADLINE_MS = 30_000
/** A new coordinator waits this long for an executor's record still in flight before placing the task again. */
const TAKEOVER_GRACE_MS = 1_000
const ORPHAN_SWEEP_MS = 15_000
/** A run's RPC stream stays open this long past the task's own timeout (TERM, grace, KILL, last output). */
const RUN_DEADLINE_MARGIN_MS = 60_000
const MAX_TIMER_MS = 2_147_483_647
const CLIENT_HIGH_WATER = 1 << 20
const CLIENT_HARD_LIMIT = 32 << 20

export class TaskService implements Startable {
  readonly records: TaskRecords
  private readonly log: Logger
  private readonly coordinated = new Map<string, Coordinated>()
  private readonly recent = new Map<NodeId, number[]>()
  private readonly execWrites = new Map<string, NodeJS.Timeout>()
  private turn = 0
  private running = false
  private view?: { at: number, candidates: ReturnType<typeof candidates> }
  private sweep?: { stop: () => void }
  private readonly m: {
    submitted: Counter<'type'>
    completed: Counter<'status' | 'type'>
    started: Counter
    retried: Counter
    failedOver: Counter
    duration: Histogram
    dispatch: Histogram
    routing: Counter<'strategy' | 'outcome'>
  }

  constructor (private readonly c: TasksComponents, private readonly init: TasksInit) {
    this.log = c.logger
    this.records = new TaskRecords(c.store)
    const r = c.registry
    const executor = c.executor
    this.m = {
      submitted: new Counter({ name: 'grid_tasks_submitted_total', help: 'Tasks submitted on this node', labelNames: ['type'], registers: [r] }),
      completed: new Counter({ name: 'grid_tasks_completed_total', help: 'Tasks that reached a final status here (on their executor, or by their coordinator\'s verdict), by status and task type ("command" for a plain command)', labelNames: ['status', 'type'], registers: [r] }),
      started: new Counter({ name: 'grid_tasks_started_total', help: 'Task attempts started on this node', registers: [r] }),
      retried: new Counter({ name: 'grid_tasks_retried_total', help: 'Task attempts this node retried (executor died, or failure with retry-on-failure)', registers: [r] }),
      failedOver: new Counter({ name: 'grid_tasks_failed_over_total', help: 'Tasks whose coordination this node took over from a dead coordinator', registers: [r] }),
      duration: new Histogram({ name: 'grid_task_duration_seconds', help: 'Run time of task attempts on this node', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600], registers: [r] }),
      dispatch: new Histogram({ name: 'grid_task_dispatch_seconds', help: 'From submission on this node to an executor admitting the task', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers: [r] }),
      routing: new Counter({ name: 'grid_routing_decisions_total', help: 'Placement decisions by strategy and outcome', labelNames: ['strategy', 'outcome'], registers: [r] })
    }
    for (const status of FINAL_STATUSES) this.m.completed.inc({ status, type: 'command' }, 0)
    this.m.submitted.inc({ type: 'command' }, 0)
    new Gauge({ name: 'grid_active_tasks', help: 'Tasks running on this node', registers: [r], collect () { this.set(executor.usage().running) } })
    new Gauge({ name: 'grid_tasks_queued', help: 'Tasks waiting in this node\'s queue for resources', registers: [r], collect () { this.set(executor.usage().queued) } })
    const coordinated = this.coordinated
    new Gauge({ name: 'grid_tasks_coordinating', help: 'Unfinished tasks this node coordinates', registers: [r], collect () { this.set(coordinated.size) } })

    c.mesh.rpc.handle(TaskRun, async (req, ctx) => await this.serveRun(req, ctx))
    c.mesh.rpc.handle(TaskAttach, async (req, ctx) => await this.serveAttach(req.id, req.attempt, req.from, ctx))
    c.mesh.rpc.handle(TaskCancel, req => ({ found: this.c.executor.cancel(req.id), status: this.c.executor.get(req.id)?.state.status ?? 'unknown' }))
    c.mesh.rpc.handle(TaskLogs, async (req, ctx) => await this.serveLogs(req.id, req.follow, ctx))
    c.mesh.rpc.handle(NodeDrain, req => this.setDraining(req.drain))
    c.executor.on('task:state', (id, state) => { this.onExecState(id, state) })
    c.store.setCollector('tasks', (_key, entry, now) => this.collectable(entry.v, now))
  }

  /** Marks what this node ran before a restart as lost, and resumes coordinating what it coordinated. */
  async start (): Promise<void> {
    this.running = true
    const self = this.c.mesh.peerId
    for (const [id, a] of this.records.all()) {
      const own = this.records.own(id).e
      if (own !== undefined && !isFinalStatus(own.status) && this.c.executor.get(id) === undefined) {
        this.records.writeExec(id, { ...own, status: 'failed', lost: true, error: `executor ${this.init.nodeName} restarted while the task ran`, finishedAt: Date.now() })
      }
      if (a.coord?.aspect.coordinator === self && !isFinalStatus(statusOf(a))) void this.resume(id)
    }
    this.c.membership.on('member:state', this.onMember)
    this.c.store.on('change', this.onChange)
    this.sweep = repeat(() => { this.adoptOrphans() }, ORPHAN_SWEEP_MS, err => { this.log.error({ err }, 'orphan sweep failed') }, { jitter: 0.3 })
  }

  async stop (): Promise<void> {
    this.running = false
    this.sweep?.stop()
    this.c.membership.off('member:state', this.onMember)
    this.c.store.off('change', this.onChange)
    for (const co of this.coordinated.values()) { co.abort.abort(new CancelledError('node is stopping')); co.waker?.() }
  }

  // ---- the API's operations ----

  /** Checks, routes and records a task, and starts coordinating it. Unsatisfiable specs fail here, before any record. */
  submit (body: unknown): { id: string, opts: SubmitOptions, events?: EventQueue<ClientEvent> } {
    const { spec, opts } = normalizeSpec(body, nameOrId => {
      const id = resolveNode(this.c.membership.view(), this.c.nodeRegistry, nameOrId)
      if (id === undefined) throw new NotFoundError(`no node with id or name ${nameOrId}`)
      return id
    })
    if (spec.type !== undefined && this.c.workers?.isWorkerType(spec.type) === true) return this.submitToWorker(spec, opts)
    const routed = this.route(spec)
    if (!routed.ok) throw new UnsatisfiableError(`no node can run this task: ${routed.reason}`)
    const self = this.c.mesh.peerId
    const id = newTaskId()
    const coord: CoordAspect = { spec, origin: self, originName: this.init.nodeName, coordinator: self, attempt: 1, createdAt: Date.now() }
    this.records.writeCoord(id, coord)
    this.m.submitted.inc({ type: spec.type ?? 'command' })
    const co = this.track(id, coord)
    if (!opts.detach) {
      co.sink = new EventQueue<ClientEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, e => (e.type === 'output' ? e.data.byteLength + 64 : 128))
      co.sink.push({ type: 'accepted', id })
    }
    void this.drive(co, routed)
    return co.sink === undefined ? { id, opts } : { id, opts, events: co.sink }
  }

  /** A typed task whose type has warm workers: one request to a worker, answered in the same event stream. */
  private submitToWorker (spec: TaskSpec, opts: SubmitOptions): { id: string, opts: SubmitOptions, events: EventQueue<ClientEvent> } {
    if (opts.detach) throw new InvalidArgumentError(`${spec.type ?? ''} is served by warm workers: its requests are answered at once and cannot be detached`)
    const workers = this.c.workers as WorkerService
    const id = `w${newTaskId().slice(1)}`
    const q = new EventQueue<ClientEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, () => 256)
    q.push({ type: 'accepted', id })
    const req = {
      type: spec.type as string,
      payloads: [spec.payload ?? null],
      timeoutMs: spec.timeoutMs ?? WORKER_DEFAULT_TIMEOUT_MS,
      priority: spec.priority,
      retries: spec.retries,
      ...(spec.session === undefined ? {} : { session: spec.session }),
      ...(spec.node === undefined ? {} : { node: spec.node })
    }
    workers.call(req).then(res => {
      q.push({ type: 'placed', id, node: res.node, nodeName: res.nodeName, attempt: 1, queued: false })
      const o = res.results[0] as WorkerOutcome
      if (o.ok) q.push({ type: 'exit', id, status: 'completed', exitCode: 0, code: 0, signal: null, error: null, node: res.node, nodeName: res.nodeName, attempts: 1, result: o.result })
      else q.push({ type: 'exit', id, status: o.code === 'TIMEOUT' ? 'timeout' : 'failed', exitCode: null, code: o.code === 'TIMEOUT' ? 124 : 1, signal: null, error: `${o.code}: ${o.error}`, node: res.node, nodeName: res.nodeName, attempts: 1 })
      q.close()
    }, (err: unknown) => {
      q.close(toGridError(err))
    })
    return { id, opts, events: q }
  }

  get (id: string): TaskRecord {
    const r = this.records.get(id)
    if (r === undefined) throw new NotFoundError(`no task ${id}`)
    return r
  }

  list (filter: { status?: string, node?: string } = {}): TaskRecord[] {
    let node: NodeId | undefined
    if (filter.node !== undefined) node = resolveNode(this.c.membership.view(), this.c.nodeRegistry, filter.node) ?? filter.node
    return this.records.list().filter(r => (filter.status === undefined || r.status === filter.status) && (node === undefined || r.node === node || r.nodeName === filter.node))
  }

  /** Cancels a task wherever it runs. */
  async cancel (id: string): Promise<{ id: string, status: TaskStatus }> {
    const a = this.records.aspects(id)
    if (a.coord === undefined && a.exec === undefined) throw new NotFoundError(`no task ${id}`)
    const status = statusOf(a)
    if (isFinalStatus(status)) throw new ConflictError(`task ${id} already ${status}`)
    this.records.writeCancel(id)
    const co = this.coordinated.get(id)
    if (co !== undefined) { co.cancelRequested = true; co.waker?.() }
    const node = a.exec?.aspect.lost === true ? undefined : a.exec?.aspect.node
    if (node !== undefined) await this.cancelOn(node, id)
    return { id, status: 'cancelled' }
  }

  /** The executor's copy of a task's output: all of it, then (follow) what comes until it ends. */
  logs (id: string, follow: boolean, signal: AbortSignal): AsyncIterable<TaskEvent> {
    const a = this.records.aspects(id)
    const e = a.exec?.aspect ?? a.execs[0]?.aspect
    if (a.coord === undefined && e === undefined) throw new NotFoundError(`no task ${id}`)
    if (e === undefined) throw new NotFoundError(`task ${id} has not started anywhere yet`)
    const q = new EventQueue<TaskEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, ev => (ev.k === 'out' ? ev.d.byteLength + 64 : 64))
    if (e.node === this.c.mesh.peerId) {
      const watcher: Watcher = {
        primary: false,
        event: ev => { if (!q.push(ev, true)) { /* a follower that falls behind skips ahead */ } return true },
        drain: async () => {},
        done: () => { q.close() }
      }
      if (follow) {
        if (!this.c.executor.watch(id, 0, watcher)) throw new NotFoundError(`this node no longer keeps the output of task ${id}`)
        signal.addEventListener('abort', () => { this.c.executor.unwatch(id, watcher); q.close() }, { once: true })
      } else {
        if (!this.c.executor.watch(id, 0, { ...watcher, done: () => {} })) throw new NotFoundError(`this node no longer keeps the output of task ${id}`)
        this.c.executor.unwatch(id, watcher)
        q.close()
      }
      return q
    }
    const state = this.c.membership.detector.state(e.node)
    if (state === 'dead' || state === 'left') throw new NotFoundError(`the output of task ${id} was on ${e.nodeName}, which is ${state}`)
    void this.c.mesh.rpc.request(e.node, TaskLogs, { id, follow }, {
      timeoutMs: follow ? MAX_TIMER_MS : 30_000,
      signal,
      onEvent: ev => { q.push(ev, true) }
    }).then(r => {
      q.close(r.found ? undefined : new NotFoundError(`${e.nodeName} no longer keeps the output of task ${id}`))
    }, (err: unknown) => { q.close(signal.aborted ? undefined : toGridError(err)) })
    return q
  }

  /** Drains (or undrains) a node: it takes no new tasks; what runs or waits there goes on. */
  async drain (node: NodeId, drain: boolean): Promise<{ running: number, queued: number }> {
    if (node === this.c.mesh.peerId) return this.setDraining(drain)
    return await this.c.mesh.rpc.request(node, NodeDrain, { drain }, { timeoutMs: 10_000 })
  }

  setDraining (drain: boolean): { running: number, queued: number } {
    this.c.executor.setDraining(drain)
    this.c.pool?.setDraining(drain)
    this.c.membership.setSelfState(drain ? 'draining' : 'alive')
    const u = this.c.executor.usage()
    const busyWorkers = (this.c.pool?.list() ?? []).filter(w => w.inflight > 0).length
    return { running: u.running + busyWorkers, queued: u.queued }
  }

  // ---- coordination ----

  private track (id: string, coord: CoordAspect): Coordinated {
    const co: Coordinated = {
      id,
      spec: coord.spec,
      coord,
      placed: false,
      cancelRequested: false,
      offset: 0,
      submittedAt: Date.now(),
      abort: new AbortController()
    }
    this.coordinated.set(id, co)
    return co
  }

  private route (spec: TaskSpec): RouteResult {
    const sessionOwner = spec.session === undefined ? undefined : (this.c.sessions.get(spec.session)?.owner ?? null)
    const now = Date.now()
    if (this.view === undefined || now - this.view.at > VIEW_TTL_MS) this.view = { at: now, candidates: candidates(this.c.membership.view(), this.c.nodeRegistry) }
    const r = route(this.view.candidates, {
      cpus: spec.cpus,
      gpus: spec.gpus,
      memory: spec.memory,
      require: spec.require,
      labels: spec.labels,
      region: spec.region,
      type: spec.type,
      strategy: spec.strategy,
      node: spec.node
    }, {
      origin: { id: this.c.mesh.peerId, region: this.init.region },
      sessionOwner,
      recentlySent: id => this.recentCount(id),
      random: Math.random,
      turn: this.turn++
    })
    this.m.routing.inc({ strategy: spec.node !== undefined ? 'node' : spec.strategy, outcome: r.ok ? 'placed' : 'unsatisfiable' })
    return r
  }

  /** Runs attempts until the task ends or the attempts run out. `first` is the route the submission computed. */
  private async drive (co: Coordinated, first?: RouteResult, pending?: Outcome): Promise<void> {
    let routed = first
    let refusals = 0
    let misses = 0
    let waitingSince = 0
    try {
      for (;;) {
        if (!this.running) return
        let outcome = pending
        pending = undefined
        if (outcome === undefined) {
          if (co.cancelRequested) { this.finalize(co, 'cancelled', 'cancelled before it started'); return }
          routed ??= this.route(co.spec)
          if (!routed.ok) {
            // the nodes that could run it are dead, suspect or draining right now (a failover while another is
            // briefly suspect): the task stays pending and is routed again; it fails only after waiting a long while
            const reason = `no node can run it now: ${routed.reason}`
            routed = undefined
            if (misses === 0) waitingSince = Date.now()
            if (Date.now() - waitingSince >= ROUTE_WAIT_LIMIT_MS) {
              this.finalize(co, 'failed', `${reason} (waited ${Math.round((Date.now() - waitingSince) / 1000)} s)`)
              return
            }
            const wait = backoffMs(misses++, ROUTE_RETRY_BASE_MS, ROUTE_RETRY_CAP_MS)
            if (misses === 1) this.log.info({ task: co.id, reason, attempt: co.coord.attempt }, 'task waits for a node that can run it')
            co.sink?.push({ type: 'waiting', id: co.id, reason, delayMs: wait })
            await this.wait(co, wait)
            continue
          }
          misses = 0
          if (routed.rehome !== undefined && co.spec.session !== undefined) this.rehome(co.spec.session, routed.rehome)
          for (const node of routed.candidates) {
            outcome = await this.attempt(co, node)
            if (outcome.kind !== 'refused') break
          }
          routed = undefined
        }
        if (outcome === undefined || outcome.kind === 'refused') {
          // every candidate refused (queues full, draining): the task stays pending and routing runs again
          await this.wait(co, backoffMs(refusals++, 250, REFUSED_RETRY_CAP_MS))
          continue
        }
        refusals = 0
        if (outcome.kind === 'done') { this.complete(co, outcome.result); return }
        if (co.cancelRequested) { this.finalize(co, 'cancelled', `cancelled (${outcome.reason})`); return }
        if (co.coord.attempt >= co.spec.retries + 1) {
          this.finalize(co, 'failed', `gave up after ${co.coord.attempt} attempt${co.coord.attempt === 1 ? '' : 's'}: ${outcome.reason}`)
          return
        }
        const wait = backoffMs(co.coord.attempt - 1, RETRY_BASE_MS, RETRY_CAP_MS)
        co.coord = { ...co.coord, attempt: co.coord.attempt + 1 }
        co.placed = false
        co.offset = 0
        this.records.writeCoord(co.id, co.coord)
        this.m.retried.inc()
        this.log.info({ task: co.id, attempt: co.coord.attempt, reason: outcome.reason, delayMs: wait }, 'retrying task')
        co.sink?.push({ type: 'retry', id: co.id, attempt: co.coord.attempt, reason: outcome.reason, delayMs: wait })
        await this.wait(co, wait)
      }
    } catch (err) {
      this.log.error({ err, task: co.id }, 'task coordination failed')
      co.sink?.close(toGridError(err))
    } finally {
      if (this.coordinated.get(co.id) === co) this.coordinated.delete(co.id)
    }
  }

  /** One offer: local or remote; ends when the attempt ends (or the offer is refused). */
  private async attempt (co: Coordinated, node: NodeId): Promise<Outcome> {
    const offer: TaskOffer = { id: co.id, spec: co.spec, attempt: co.coord.attempt, origin: co.coord.origin, coordinator: this.c.mesh.peerId }
    this.noteSent(node)
    if (node === this.c.mesh.peerId) {
      return await new Promise<Outcome>(resolve => {
        const watcher: Watcher = {
          primary: true,
          event: ev => this.forward(co, node, ev),
          drain: async () => { await co.sink?.drained() },
          done: result => { resolve(this.classify(co, result)) }
        }
        try {
          const { queued } = this.c.executor.admit({ id: offer.id, spec: offer.spec, attempt: offer.attempt, origin: offer.origin, coordinator: offer.coordinator }, watcher)
          this.placed(co, node, this.init.nodeName, queued)
        } catch (err) {
          resolve({ kind: 'refused', reason: toGridError(err).message })
        }
      })
    }
    let admitted = false
    try {
      const result = await this.c.mesh.rpc.request(node, TaskRun, offer, {
        timeoutMs: runDeadline(co.spec),
        signal: co.abort.signal,
        onEvent: ev => {
          if (ev.k === 'admitted') { admitted = true; this.placed(co, node, ev.nodeName, ev.queued); return }
          this.forward(co, node, ev)
        }
      })
      return this.classify(co, result)
    } catch (err) {
      const e = toGridError(err)
      if (!admitted) return { kind: 'refused', reason: e.message }
      if (!this.running) return { kind: 'retry', reason: 'coordinator stopping' }
      return await this.reattach(co, node)
    }
  }

  /** The stream to a running task broke: watch it again if its executor lives, else the attempt is lost. */
  private async reattach (co: Coordinated, node: NodeId): Promise<Outcome> {
    const deadline = Date.now() + REATTACH_DEADLINE_MS
    const name = (): string => this.c.nodeRegistry.get(node)?.value.name ?? node
    while (this.running && Date.now() < deadline) {
      const state = this.c.membership.detector.state(node)
      if (state === 'dead' || state === 'left') return { kind: 'retry', reason: `node ${name()} ${state === 'dead' ? 'died' : 'left'} while the task ran` }
      if (state === 'alive') {
        try {
          const result = await this.c.mesh.rpc.request(node, TaskAttach, { id: co.id, attempt: co.coord.attempt, from: co.offset }, {
            timeoutMs: runDeadline(co.spec),
            signal: co.abort.signal,
            onEvent: ev => { this.forward(co, node, ev) }
          })
          return this.classify(co, result)
        } catch (err) {
          const e = toGridError(err)
          if (e.code === 'NOT_FOUND') return { kind: 'retry', reason: `node ${name()} lost the task` }
          if (e.code === 'CANCELLED') return { kind: 'retry', reason: 'coordinator stopping' }
        }
      }
      await delay(200)
    }
    return { kind: 'retry', reason: `node ${name()} stopped answering while the task ran` }
  }

  private classify (co: Coordinated, result: ExecAspect): Outcome {
    if (result.lost === true) return { kind: 'retry', reason: result.error ?? `node ${result.nodeName} lost the task` }
    if ((result.status === 'failed' || result.status === 'timeout') && co.spec.retryOnFailure && !co.cancelRequested) {
      return co.coord.attempt >= co.spec.retries + 1 ? { kind: 'done', result } : { kind: 'retry', reason: result.error ?? result.status }
    }
    return { kind: 'done', result }
  }

  private placed (co: Coordinated, node: NodeId, nodeName: string, queued: boolean): void {
    co.executor = node
    co.placed = true
    this.log.debug({ task: co.id, peer: node, nodeName, attempt: co.coord.attempt, queued }, 'task placed')
    if (co.coord.attempt === 1) this.m.dispatch.observe((Date.now() - co.submittedAt) / 1000)
    co.sink?.push({ type: 'placed', id: co.id, node, nodeName, attempt: co.coord.attempt, queued })
    // a cancel that arrived while the offer was in flight
    if (co.cancelRequested) void this.cancelOn(node, co.id)
  }

  /** Passes a task event to the client; false makes a local task slow down. */
  private forward (co: Coordinated, node: NodeId, ev: TaskEvent): boolean {
    if (ev.k === 'out') {
      co.offset = ev.o + ev.d.byteLength
      return co.sink?.push({ type: 'output', stream: ev.s, data: ev.d, offset: ev.o }, true) ?? true
    }
    if (ev.k === 'started') co.sink?.push({ type: 'started', id: co.id, node, attempt: co.coord.attempt, pid: ev.pid, gpus: ev.gpus })
    else if (ev.k === 'gap') co.sink?.push({ type: 'gap', bytes: ev.bytes })
    return true
  }

  private complete (co: Coordinated, result: ExecAspect): void {
    if (co.sink !== undefined && co.sink.dropped > 0) co.sink.push({ type: 'gap', bytes: co.sink.dropped })
    const exit: ClientEvent = {
      type: 'exit',
      id: co.id,
      status: result.status,
      exitCode: result.exitCode ?? null,
      code: exitCodeOf(result),
      signal: result.signal ?? null,
      error: result.error ?? null,
      node: result.node,
      nodeName: result.nodeName,
      attempts: co.coord.attempt
    }
    if (result.result !== undefined) exit.result = result.result
    co.sink?.push(exit)
    co.sink?.close()
    // the executor records the result; if its record does not arrive (it died just after answering), write it here
    setTimeout(() => {
      const a = this.records.aspects(co.id)
      if (!isFinalStatus(statusOf(a)) && a.coord?.aspect.coordinator === this.c.mesh.peerId) {
        this.records.writeCoord(co.id, { ...co.coord, final: result.status as CoordAspect['final'] & string, exitCode: result.exitCode ?? null, ...(result.error === undefined ? {} : { error: result.error }), finishedAt: result.finishedAt ?? Date.now() })
      }
    }, 3_000).unref()
  }

  /** The coordinator's own verdict: retries exhausted, cancelled before it ran. */
  private finalize (co: Coordinated, status: 'failed' | 'cancelled', error: string): void {
    co.coord = { ...co.coord, final: status, error, finishedAt: Date.now() }
    this.records.writeCoord(co.id, co.coord)
    this.m.completed.inc({ status, type: co.spec.type ?? 'command' })
    this.log.info({ task: co.id, status, error }, 'task ended by its coordinator')
    co.sink?.push({ type: 'exit', id: co.id, status, exitCode: null, code: status === 'cancelled' ? 130 : 1, signal: null, error, node: null, nodeName: null, attempts: co.coord.attempt })
    co.sink?.close()
  }

  /** Waits `ms`, or less if a cancel wakes the task. */
  private async wait (co: Coordinated, ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(done, ms)
      co.waker = done
      function done (): void { clearTimeout(t); resolve() }
    })
    co.waker = undefined
  }

  private async cancelOn (node: NodeId, id: string): Promise<void> {
    try {
      if (node === this.c.mesh.peerId) this.c.executor.cancel(id)
      else await this.c.mesh.rpc.request(node, TaskCancel, { id, by: this.c.mesh.peerId }, { timeoutMs: 5_000 })
    } catch (err) {
      // the cancel mark in the replicated record reaches the executor anyway
      this.log.debug({ task: id, node, err: (err as Error).message }, 'cancel request did not reach the executor')
    }
  }

  private rehome (session: string, owner: NodeId): void {
    const s = this.c.sessions.get(session)
    this.c.sessions.put(session, s?.value ?? null, { owner })
    this.log.info({ session, owner, previous: s?.owner ?? null }, 'session re-homed')
  }

  // ---- taking over and recovering ----

  /** Resumes coordinating a task this node is (now) the coordinator of. */
  private async resume (id: string): Promise<void> {
    if (this.coordinated.has(id) || !this.running) return
    const a = this.records.aspects(id)
    if (a.coord === undefined || isFinalStatus(statusOf(a))) return
    const co = this.track(id, { ...a.coord.aspect, coordinator: this.c.mesh.peerId })
    co.cancelRequested = a.cancelRequested
    let e = a.exec?.aspect
    if (e === undefined) {
      // the executor's record may still be on its way
      await delay(TAKEOVER_GRACE_MS)
      e = this.records.aspects(id).exec?.aspect
    }
    let pending: Outcome | undefined
    if (e !== undefined && e.lost !== true && isFinalStatus(e.status)) pending = this.classify(co, e)
    else if (e !== undefined && e.lost === true) pending = { kind: 'retry', reason: e.error ?? 'executor lost the task' }
    else if (e !== undefined) {
      co.executor = e.node
      co.placed = true
      pending = await this.reattach(co, e.node)
    }
    if (pending?.kind === 'done') {
      // already over: make sure the record says so, then stop
      if (!isFinalStatus(statusOf(this.records.aspects(id)))) this.complete(co, pending.result)
      this.coordinated.delete(id)
      return
    }
    await this.drive(co, undefined, pending)
  }

  private readonly onMember = (t: Transition): void => {
    if (t.to !== 'dead' && t.to !== 'left') return
    this.adoptOrphans(t.id)
  }

  /** Takes over the unfinished tasks whose coordinator is dead or gone, where this node is their successor. */
  private adoptOrphans (deadNode?: NodeId): void {
    if (!this.running) return
    const self = this.c.mesh.peerId
    const view = this.c.membership.view()
    const alive = view.filter(v => v.state === 'alive').map(v => v.id)
    const gone = (id: NodeId): boolean => {
      if (id === deadNode) return true
      const s = this.c.membership.detector.state(id)
      return s === 'dead' || s === 'left' || (s === undefined && id !== self && this.c.nodeRegistry.get(id) === undefined)
    }
    for (const [id, a] of this.records.all()) {
      const coord = a.coord?.aspect
      if (coord === undefined || coord.coordinator === self || this.coordinated.has(id)) continue
      if (!gone(coord.coordinator) || isFinalStatus(statusOf(a))) continue
      if (successor(id, alive.filter(n => n !== coord.coordinator)) !== self) continue
      this.records.writeCoord(id, { ...coord, coordinator: self })
      this.m.failedOver.inc()
      this.log.warn({ task: id, previous: coord.coordinator }, 'took over the coordination of a task whose coordinator is gone')
      void this.resume(id)
    }
  }

  private readonly onChange = (e: ChangeEvent): void => {
    if (e.collection !== 'tasks' || e.local) return
    const id = e.key
    const co = this.coordinated.get(id)
    const running = this.c.executor.get(id)
    if (co === undefined && (running === undefined || isFinalStatus(running.state.status))) return
    const a = this.records.aspects(id)
    if (!a.cancelRequested) return
    if (co !== undefined && !co.cancelRequested) { co.cancelRequested = true; co.waker?.() }
    if (running !== undefined && !isFinalStatus(running.state.status)) this.c.executor.cancel(id)
  }

  // ---- the executor side ----

  private async serveRun (offer: TaskOffer, ctx: RpcContext): Promise<ExecAspect> {
    return await new Promise<ExecAspect>((resolve, reject) => {
      const early: TaskEvent[] = []
      let ready = false
      const watcher: Watcher = {
        primary: true,
        event: ev => { if (!ready) { early.push(ev); return true } return ctx.emit(ev) },
        drain: async () => { await ctx.drain() },
        done: resolve
      }
      let queued: boolean
      try {
        ({ queued } = this.c.executor.admit({ id: offer.id, spec: offer.spec, attempt: offer.attempt, origin: offer.origin, coordinator: offer.coordinator }, watcher))
      } catch (err) {
        reject(err)
        return
      }
      ctx.emit({ k: 'admitted', queued, node: this.c.mesh.peerId, nodeName: this.init.nodeName })
      ready = true
      for (const ev of early) ctx.emit(ev)
      ctx.signal.addEventListener('abort', () => {
        // the origin went away: the task runs on; its record will tell
        this.c.executor.unwatch(offer.id, watcher)
        reject(new CancelledError('the origin stopped watching'))
      }, { once: true })
    })
  }

  private async serveAttach (id: string, attempt: number, from: number, ctx: RpcContext): Promise<ExecAspect> {
    const job = this.c.executor.get(id)
    if (job === undefined || job.state.attempt !== attempt) throw new NotFoundError(`this node has no attempt ${attempt} of task ${id}`)
    return await new Promise<ExecAspect>((resolve, reject) => {
      const watcher: Watcher = { primary: true, event: ev => ctx.emit(ev), drain: async () => { await ctx.drain() }, done: resolve }
      this.c.executor.watch(id, from, watcher)
      ctx.signal.addEventListener('abort', () => { this.c.executor.unwatch(id, watcher); reject(new CancelledError('the watcher went away')) }, { once: true })
    })
  }

  private async serveLogs (id: string, follow: boolean, ctx: RpcContext): Promise<{ found: boolean, truncatedBytes: number }> {
    const job = this.c.executor.get(id)
    if (job === undefined) return { found: false, truncatedBytes: 0 }
    await new Promise<void>(resolve => {
      const watcher: Watcher = {
        primary: false,
        event: ev => { try { ctx.emit(ev) } catch {} return true },
        drain: async () => {},
        done: () => { resolve() }
      }
      this.c.executor.watch(id, 0, watcher)
      if (!follow) { this.c.executor.unwatch(id, watcher); resolve(); return }
      ctx.signal.addEventListener('abort', () => { this.c.executor.unwatch(id, watcher); resolve() }, { once: true })
    })
    return { found: true, truncatedBytes: job.truncatedBytes }
  }

  /** Executor state → the replicated record: final states at once, others after a short delay (often never). */
  private onExecState (id: string, state: ExecAspect): void {
    if (state.status === 'running' && state.startedAt !== undefined) {
      this.m.started.inc()
      this.log.debug({ task: id, attempt: state.attempt, pid: state.pid, gpus: state.gpus }, 'task started')
    }
    if (FINAL_STATUSES.has(state.status)) this.log.debug({ task: id, attempt: state.attempt, status: state.status, exitCode: state.exitCode, durationMs: state.startedAt === undefined || state.finishedAt === undefined ? null : state.finishedAt - state.startedAt, error: state.error }, 'task finished')
    if (FINAL_STATUSES.has(state.status)) {
      clearTimeout(this.execWrites.get(id))
      this.execWrites.delete(id)
      this.records.writeExec(id, state)
      if (state.lost !== true) this.m.completed.inc({ status: state.status, type: this.c.executor.typeOf(id) ?? 'command' })
      if (state.startedAt !== undefined && state.finishedAt !== undefined) this.m.duration.observe((state.finishedAt - state.startedAt) / 1000)
      return
    }
    if (this.execWrites.has(id)) return
    this.execWrites.set(id, setTimeout(() => {
      this.execWrites.delete(id)
      const now = this.c.executor.get(id)?.state
      if (now !== undefined && !FINAL_STATUSES.has(now.status)) this.records.writeExec(id, now)
    }, EXEC_WRITE_DELAY_MS))
  }

  /** This node's own task entries that may go: finished longer ago than the retention period. */
  private collectable (value: unknown, now: number): boolean {
    const v = value as { c?: CoordAspect, e?: ExecAspect }
    const finished = v.e?.finishedAt ?? v.c?.finishedAt
    if (finished === undefined) return false
    const finalHere = (v.e !== undefined && FINAL_STATUSES.has(v.e.status)) || v.c?.final !== undefined
    return finalHere && now - finished > this.init.retentionMs
  }

  private noteSent (node: NodeId): void {
    const now = Date.now()
    const list = this.recent.get(node) ?? []
    list.push(now)
    while (list.length > 0 && now - (list[0] as number) > RECENT_WINDOW_MS) list.shift()
    this.recent.set(node, list)
  }

  private recentCount (node: NodeId): number {
    const list = this.recent.get(node)
    if (list === undefined) return 0
    const now = Date.now()
    while (list.length > 0 && now - (list[0] as number) > RECENT_WINDOW_MS) list.shift()
    // a task sent a moment ago weighs fully; one sent 2 s ago is in the heartbeats by now
    return list.reduce((s, t) => s + (1 - (now - t) / RECENT_WINDOW_MS), 0)
  }
}

function runDeadline (spec: TaskSpec): number {
  return spec.timeoutMs === undefined ? MAX_TIMER_MS : Math.min(MAX_TIMER_MS, spec.timeoutMs + RUN_DEADLINE_MARGIN_MS)
}

/** Time-ordered, unique task ids: `t` + 9 base32 characters of milliseconds + 8 random ones. */
export function newTaskId (now = Date.now()): string {
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz'
  let t = ''
  let n = now
  for (let i = 0; i < 9; i++) { t = alphabet[n % 32] + t; n = Math.floor(n / 32) }
  const r = randomBytes(5)
  let rnd = ''
  let bits = 0
  let acc = 0
  for (const b of r) {
    acc = (acc << 8) | b
    bits += 8
    while (bits >= 5) { rnd += alphabet[(acc >> (bits - 5)) & 31]; bits -= 5 }
  }
  return `t${t}${rnd}`
}
