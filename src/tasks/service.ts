/**
 * tasks' facade: the operations the control API offers (submit, get, list, cancel, logs, drain), built on the
 * coordinator (an origin's side of a task), the executor side (RPC handlers and execution records) and takeover
 * (successors and restarts). A task's life: shared/ARCHITECTURE.md and docs/architecture.md, "A task's life".
 */
import type { Logger } from 'pino'
import {
  NodeDrain, TaskLogs, type CoordAspect, type ExecAspect, type TaskEvent, type TaskRecord, type TaskSpec, type TaskStatus, type WorkerOutcome
} from '../../proto/index.ts'
import {
  ConflictError, InvalidArgumentError, NotFoundError, UnsatisfiableError, toGridError,
  type NodeId, type Startable
} from '../interface/index.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Watcher } from '../executor/index.ts'
import type { RouteResult } from '../routing/index.ts'
import type { TasksComponents, TasksInit } from './components.ts'
import { Coordinator, type ClientEvent } from './coordinator.ts'
import { readDrainMark, writeDrainMark } from './drain-mark.ts'
import { EventQueue } from './event-queue.ts'
import { ExecutorSide } from './executor-side.ts'
import { TaskRecords, isFinalStatus, statusOf } from './records.ts'
import { normalizeSpec, type SubmitOptions } from './spec.ts'
import { StartFence } from './start-fence.ts'
import { CutOffs } from './cut-offs.ts'
import { Standby } from './standby.ts'
import { StdinRelay, type StdinWrite } from './stdin-relay.ts'
import { Takeover } from './takeover.ts'
import { newTaskId } from './task-ids.ts'
import { taskMetrics } from './task-metrics.ts'
import { requireNode, resolveNode } from './view.ts'

export type { TasksComponents, TasksInit } from './components.ts'
export type { ClientEvent } from './coordinator.ts'

/** A request to a warm worker without a timeout of its own: after this long the worker is deemed stuck. */
export const WORKER_DEFAULT_TIMEOUT_MS = 5 * 60_000

const CLIENT_HIGH_WATER = 1 << 20
const CLIENT_HARD_LIMIT = 32 << 20
const MAX_TIMER_MS = 2_147_483_647
/** How often `logs -f` of a task not started yet looks for its first execution. */
const LOGS_START_POLL_MS = 200

export class TaskService implements Startable {
  readonly records: TaskRecords
  private readonly log: Logger
  private readonly coordinator: Coordinator
  private readonly takeover: Takeover
  private readonly executorSide: ExecutorSide
  private readonly stdin: StdinRelay
  private readonly fence: StartFence
  private readonly cutOffs: CutOffs
  private readonly metrics: ReturnType<typeof taskMetrics>

  constructor (private readonly c: TasksComponents, private readonly init: TasksInit) {
    this.log = c.logger
    this.records = new TaskRecords(c.store)
    const m = taskMetrics(c.registry, { running: () => c.executor.usage().running, queued: () => c.executor.usage().queued, coordinating: () => this.coordinator.coordinated.size })
    this.metrics = m
    this.cutOffs = new CutOffs(c.members)
    // a coordinator others may have taken for dead asks its would-be successor before an attempt starts
    const standby = new Standby(c, this.records, this.cutOffs, this.log, init.nodeName)
    this.coordinator = new Coordinator(c, init, this.records, m, this.log, standby)
    this.takeover = new Takeover(c, this.coordinator, this.records, m, this.log, standby)
    // registers the executor-side RPC handlers and turns executor state into records
    this.executorSide = new ExecutorSide(c, init, this.records, m, this.log, drain => this.setDraining(drain))
    // an attempt starts only while it is its coordinator's current one (queued, or around a stall: it asks)
    this.fence = new StartFence(c, this.records, this.cutOffs, this.log, async (id, attempt, executor) => await this.coordinator.live.notCurrent(id, attempt, executor))
    c.executor.setStartGate(this.fence.gate)
    this.stdin = new StdinRelay(c, this.coordinator.coordinated, id => { const a = this.records.aspects(id); return a.coord !== undefined || a.exec !== undefined })
    // before membership starts: the first heartbeat and registration already say draining
    const mark = init.drainMarkPath === undefined ? undefined : readDrainMark(init.drainMarkPath)
    if (mark !== undefined) {
      this.applyDraining(true)
      this.log.warn({ since: mark.since }, 'started draining: this node was drained before it stopped; gridctl undrain gives it tasks again')
    }
  }

  /** Marks what this node ran before a restart as lost, and resumes coordinating what it coordinated. */
  async start (): Promise<void> {
    this.coordinator.running = true
    this.c.members.on('member:state', this.coordinator.deaths.onMember)
    this.cutOffs.start()
    this.executorSide.markLostAfterRestart()
    this.takeover.start()
  }

  async stop (): Promise<void> {
    this.coordinator.running = false
    this.c.members.off('member:state', this.coordinator.deaths.onMember)
    this.cutOffs.stop()
    this.takeover.stop()
    this.coordinator.stopAll()
    this.executorSide.stop()
  }

  /** Checks, routes and records a task, and starts coordinating it. Unsatisfiable specs fail here, before any record. */
  submit (body: unknown): { id: string, opts: SubmitOptions, events?: EventQueue<ClientEvent> } {
    const { spec, opts } = normalizeSpec(body, nameOrId => this.namedNode(nameOrId))
    if (spec.type !== undefined && this.c.workers?.isWorkerType(spec.type) === true) {
      // a worker type goes to a warm worker, never to a one-shot process of the worker's program
      const why = spec.node === undefined ? this.c.workers.cannotServe(spec.type) : undefined
      if (why !== undefined) throw new UnsatisfiableError(why)
      return this.submitToWorker(spec, opts)
    }
    const { id, events } = this.submitSpec(spec, newTaskId(), opts.detach)
    return events === undefined ? { id, opts } : { id, opts, events }
  }

  /**
   * Records and coordinates a task whose spec is complete and checked (submit's, or a job's run, src/jobs): the same
   * routing, records and coordination. `id` names it; unless `detach`, its events come back as a task stream.
   */
  submitSpec (spec: TaskSpec, id: string, detach: boolean): { id: string, events?: EventQueue<ClientEvent> } {
    const routed = this.coordinator.route(spec)
    // a task that a draining, suspect or dead node could run waits for it (the coordinator says why); one that no
    // node known to the cluster could ever run fails here
    if (!routed.ok && routed.wait !== true) throw new UnsatisfiableError(`no node can run this task: ${routed.reason}`)
    const self = this.c.peerId
    const coord: CoordAspect = { spec, origin: self, originName: this.init.nodeName, coordinator: self, attempt: 1, createdAt: Date.now() }
    this.records.writeCoord(id, coord)
    this.metrics.submitted.inc({ type: spec.type ?? 'command' })
    const co = this.coordinator.track(id, coord)
    if (!detach) {
      co.sink = new EventQueue<ClientEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, e => (e.type === 'output' ? e.data.byteLength + 64 : 128))
      co.sink.push({ type: 'accepted', id })
    }
    void this.coordinator.drive(co, routed)
    return co.sink === undefined ? { id } : { id, events: co.sink }
  }

  /** Where a spec could run now, ranked by its strategy (every eligible alive node), or why no node can. */
  eligible (spec: TaskSpec): RouteResult {
    return this.coordinator.route(spec)
  }

  /** A typed task whose type has warm workers: one request to a worker, answered in the same event stream. */
  private submitToWorker (spec: TaskSpec, opts: SubmitOptions): { id: string, opts: SubmitOptions, events: EventQueue<ClientEvent> } {
    if (opts.detach) throw new InvalidArgumentError(`${spec.type ?? ''} is served by warm workers: its requests are answered at once and cannot be detached`)
    const workers = this.c.workers as NonNullable<TasksComponents['workers']>
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
    // a request that waits (for a GPU, behind others, for a new worker) says why, in the task stream's words
    workers.call(req, { onWaiting: reason => { q.push({ type: 'waiting', id, reason, delayMs: 0 }) } }).then(res => {
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
    if (filter.node !== undefined) node = resolveNode(this.c.members.view(), this.c.nodeRegistry, filter.node) ?? filter.node
    const list = this.records.list()
    // a node nobody knows (and no record names): a mistake, not an empty answer
    if (filter.node !== undefined && node === filter.node && !list.some(r => r.node === node || r.nodeName === filter.node)) {
      this.namedNode(filter.node)
    }
    return list.filter(r => (filter.status === undefined || r.status === filter.status) && (node === undefined || r.node === node || r.nodeName === filter.node))
  }

  /** The node a user named; an unknown or ambiguous name is the user's mistake (INVALID_ARGUMENT, exit 2). */
  private namedNode (nameOrId: string): NodeId {
    try {
      return requireNode(this.c.members.view(), this.c.nodeRegistry, nameOrId)
    } catch (err) {
      if (err instanceof NotFoundError) throw new InvalidArgumentError(err.message, { cause: err })
      throw err
    }
  }

  /**
   * The client of a task's stream went away before the task ended (as ssh does when its connection drops): the task
   * is cancelled, so it does not wait or run for nobody. Detached tasks never get here.
   */
  async abandoned (id: string): Promise<void> {
    // coordination over (the exit is on its way to the client, which may close first), or a warm worker's request
    // (it keeps no record and ends with its call): nothing to cancel
    if (!this.coordinator.coordinated.has(id)) return
    const a = this.records.aspects(id)
    if ((a.coord === undefined && a.exec === undefined) || isFinalStatus(statusOf(a))) return
    this.log.info({ task: id }, 'the client of a task went away; cancelling the task')
    try {
      await this.cancel(id)
    } catch (err) {
      if (!(err instanceof ConflictError)) this.log.warn({ err, task: id }, 'cancelling an abandoned task failed')
    }
  }

  /** Bytes for the stdin of a task submitted here with `stdin: true` (stdin-relay.ts); `open` false: it takes no more. */
  async writeStdin (id: string, w: StdinWrite, signal?: AbortSignal): Promise<{ id: string, open: boolean }> {
    return { id, ...(await this.stdin.write(id, w, signal)) }
  }

  /** Cancels a task wherever it runs. */
  async cancel (id: string): Promise<{ id: string, status: TaskStatus }> {
    const a = this.records.aspects(id)
    if (a.coord === undefined && a.exec === undefined) throw new NotFoundError(`no task ${id}`)
    const status = statusOf(a)
    if (isFinalStatus(status)) throw new ConflictError(`task ${id} already ${status}`)
    this.records.writeCancel(id)
    const co = this.coordinator.coordinated.get(id)
    if (co !== undefined) { co.cancelRequested = true; co.waker?.() }
    const node = a.exec?.aspect.lost === true ? undefined : a.exec?.aspect.node
    if (node !== undefined) await this.coordinator.cancelOn(node, id)
    return { id, status: 'cancelled' }
  }

  /** The executor's copy of a task's output: all of it, then (follow) what comes until it ends, as task-stream events. */
  logs (id: string, follow: boolean, signal: AbortSignal): AsyncIterable<ClientEvent> {
    const a = this.records.aspects(id)
    const e = a.exec?.aspect ?? a.execs[0]?.aspect
    if (a.coord === undefined && e === undefined) throw new NotFoundError(`no task ${id}`)
    if (e === undefined) {
      if (!follow || a.coord?.aspect.final !== undefined) throw new NotFoundError(`task ${id} has not started anywhere yet`)
      return this.logsOnceStarted(id, signal)
    }
    return this.logsOf(id, e, follow, signal)
  }

  /**
   * `logs -f` of a task no node has started yet (just submitted with --detach, or queued for placement): waits for its
   * first execution, then follows it; a task that ends without starting (cancelled, unplaceable) ends the stream.
   */
  private async * logsOnceStarted (id: string, signal: AbortSignal): AsyncIterable<ClientEvent> {
    while (!signal.aborted) {
      const a = this.records.aspects(id)
      const e = a.exec?.aspect ?? a.execs[0]?.aspect
      if (e !== undefined) { yield * this.logsOf(id, e, true, signal); return }
      if (a.coord === undefined) throw new NotFoundError(`no task ${id}`)
      if (a.coord.aspect.final !== undefined) throw new NotFoundError(`task ${id} ended (${a.coord.aspect.final}) without starting anywhere`)
      await sleep(LOGS_START_POLL_MS, undefined, { signal }).catch(() => {})
    }
  }

  private logsOf (id: string, e: ExecAspect, follow: boolean, signal: AbortSignal): AsyncIterable<ClientEvent> {
    const q = new EventQueue<ClientEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, ev => (ev.type === 'output' ? ev.data.byteLength + 64 : 64))
    // a follower that falls behind skips ahead (the queue counts what it dropped)
    const push = (ev: TaskEvent): void => { q.push(logEvent(id, e.node, e.attempt, ev), true) }
    if (e.node === this.c.peerId) {
      const watcher: Watcher = { primary: false, event: ev => { push(ev); return true }, drain: async () => {}, done: () => { q.close() } }
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
    const state = this.c.members.state(e.node)
    if (state === 'dead' || state === 'left') throw new NotFoundError(`the output of task ${id} was on ${e.nodeName}, which is ${state}`)
    void this.c.rpc.request(e.node, TaskLogs, { id, follow }, {
      timeoutMs: follow ? MAX_TIMER_MS : 30_000,
      signal,
      onEvent: push
    }).then(r => {
      q.close(r.found ? undefined : new NotFoundError(`${e.nodeName} no longer keeps the output of task ${id}`))
    }, (err: unknown) => { q.close(signal.aborted ? undefined : toGridError(err)) })
    return q
  }

  /** Drains (or undrains) a node: it takes no new tasks; what runs or waits there goes on. */
  async drain (node: NodeId, drain: boolean): Promise<{ running: number, queued: number }> {
    if (node === this.c.peerId) return this.setDraining(drain)
    return await this.c.rpc.request(node, NodeDrain, { drain }, { timeoutMs: 10_000 })
  }

  setDraining (drain: boolean): { running: number, queued: number } {
    // kept before it takes effect: a drain acknowledged to the user survives a restart that follows at once
    if (this.init.drainMarkPath !== undefined) writeDrainMark(this.init.drainMarkPath, drain)
    return this.applyDraining(drain)
  }

  private applyDraining (drain: boolean): { running: number, queued: number } {
    this.c.executor.setDraining(drain)
    this.c.pool?.setDraining(drain)
    this.c.members.setSelfState(drain ? 'draining' : 'alive')
    const u = this.c.executor.usage()
    const busyWorkers = (this.c.pool?.list() ?? []).filter(w => w.inflight > 0).length
    return { running: u.running + busyWorkers, queued: u.queued }
  }
}

/** An executor's event for a task, as the task stream shows it. */
function logEvent (id: string, node: NodeId, attempt: number, ev: TaskEvent): ClientEvent {
  switch (ev.k) {
    case 'out': return { type: 'output', stream: ev.s === 1 ? 'stdout' : 'stderr', offset: ev.o, data: ev.d }
    case 'gap': return { type: 'gap', bytes: ev.bytes }
    case 'started': return { type: 'started', id, node, attempt, pid: ev.pid, gpus: ev.gpus }
    case 'admitted': return { type: 'placed', id, node: ev.node, nodeName: ev.nodeName, attempt, queued: ev.queued, ...(ev.reason === undefined ? {} : { reason: ev.reason }) }
  }
}
