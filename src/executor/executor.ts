/**
 * Runs admitted tasks as local processes.
 *
 * - Admission: a task that fits now starts; one that could fit later waits in a bounded priority queue (higher
 *   priority first, arrival order within a priority; smaller tasks may start past a blocked bigger one); one that
 *   can never run here, or arrives at a full queue or a draining node, is refused (the origin tries the next node).
 * - Execution: each task gets a process group of its own, its slots, memory and GPUs (exclusively, by UUID in
 *   CUDA_VISIBLE_DEVICES), GRID_* variables, a timeout (TERM, then KILL after a grace period), and a bounded log of
 *   its output. Watchers get the output as it comes; the first watcher (the origin) slows the task down when it
 *   cannot keep up, later ones (logs -f) skip ahead instead.
 * - Every state change is an event (`task:state`): the tasks module turns them into replicated records.
 */
import { EventEmitter } from 'node:events'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import type { Logger } from 'pino'
import { TASK_RESULT_MAX_BYTES, type ExecAspect, type TaskEvent, type TaskSpec } from '../../proto/index.ts'
import { InvalidArgumentError, UnavailableError, UnsatisfiableError, type GpuInfo, type NodeId, type Startable } from '../interface/index.ts'
import { OutputLog } from './output-log.ts'
import { Spawner, type SpawnerEvent } from './spawner.ts'

export interface TaskTypeConfig {
  command: string[]
  env?: Record<string, string>
  cwd?: string
}

export interface ExecutorInit {
  nodeId: NodeId
  nodeName: string
  /** CPU slots to hand out (default: the number of CPUs) */
  slots: number
  /** memory to hand out, bytes */
  memoryBytes: number
  queueLimit: number
  killGraceMs: number
  /** output kept per task */
  maxLogBytes: number
  /** output kept for finished tasks, all together */
  maxRetainedLogBytes: number
  taskTypes: Record<string, TaskTypeConfig>
  /** environment every task starts from */
  baseEnv: NodeJS.ProcessEnv
}

/** How long after a spawner crash it is started again (doubling up to SPAWNER_RESTART_CAP_MS). */
const SPAWNER_RESTART_BASE_MS = 100
const SPAWNER_RESTART_CAP_MS = 10_000

export interface ExecutorComponents {
  logger: Logger
  /** the node's GPUs right now */
  gpus: () => GpuInfo[]
}

/** A task handed to the executor by the tasks module. */
export interface ExecTask {
  id: string
  attempt: number
  spec: TaskSpec
  origin: NodeId
  coordinator: NodeId
}

/** Someone who wants the task's events: the origin's stream, or a `logs -f`. */
export interface Watcher {
  /** false: the watcher's buffer is full */
  event(ev: TaskEvent): boolean
  drain(): Promise<void>
  /** the task ended */
  done(result: ExecAspect): void
  /** the origin's stream: its backpressure pauses the task's output */
  primary: boolean
}

interface Job {
  task: ExecTask
  argv: string[]
  cwd: string | undefined
  env: Record<string, string>
  stdin: string | undefined
  typed: boolean
  seq: number
  state: ExecAspect
  log: OutputLog
  watchers: Set<Watcher>
  /** the spawner's handle for the process, while it runs */
  slot?: number
  pid?: number
  gpus: string[]
  timeout?: NodeJS.Timeout
  kill?: NodeJS.Timeout
  /** why the task is being stopped */
  stopping?: 'timeout' | 'cancelled' | 'shutdown'
  paused: number
  finishedAt?: number
}

export interface ExecutorEvents {
  'task:state': [id: string, state: ExecAspect]
}

export interface Usage { running: number, queued: number, freeSlots: number, freeGpus: number, freeMemoryBytes: number, done: number, failed: number }

export class Executor extends EventEmitter<ExecutorEvents> implements Startable {
  private readonly jobs = new Map<string, Job>()
  private readonly queue: Job[] = []
  private readonly running = new Set<Job>()
  private readonly assignedGpus = new Set<string>()
  private usedSlots = 0
  private usedMemory = 0
  private doneCount = 0
  private failedCount = 0
  private seq = 0
  private draining = false
  private stopped = false
  private retainedBytes = 0
  private readonly finished: Job[] = []
  private readonly log: Logger
  private readonly spawner = new Spawner()
  private readonly bySlot = new Map<number, Job>()
  private nextSlot = 1
  private spawnerRestarts = 0
  private readonly baseEnv: Record<string, string>

  constructor (private readonly components: ExecutorComponents, private readonly init: ExecutorInit) {
    super()
    this.log = components.logger
    // a plain copy: reading process.env key by key is slow, and tasks are spawned often
    this.baseEnv = Object.fromEntries(Object.entries(init.baseEnv).filter((e): e is [string, string] => e[1] !== undefined))
    this.spawner.on('event', e => { this.onSpawnerEvent(e) })
    this.spawner.on('exit', code => { this.onSpawnerExit(code) })
  }

  start (): void {
    const reaped = reapOrphans(this.init.nodeId)
    if (reaped > 0) this.log.warn({ processes: reaped }, 'killed task processes left behind by an earlier run of this node')
    this.spawner.start(this.baseEnv)
  }

  /** Stops every task (TERM, KILL after the grace period); their attempts are reported lost, so they run elsewhere. */
  async stop (): Promise<void> {
    this.stopped = true
    for (const job of [...this.queue]) {
      this.queue.splice(this.queue.indexOf(job), 1)
      this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} stopped before the task started` })
    }
    const running = [...this.running]
    for (const job of running) this.terminate(job, 'shutdown')
    await Promise.all(running.map(async job => await new Promise<void>(resolve => {
      if (!this.running.has(job)) { resolve(); return }
      const check = (): void => { if (!this.running.has(job)) { this.off('task:state', check); resolve() } }
      this.on('task:state', check)
    })))
    this.spawner.stop()
  }

  setDraining (draining: boolean): void {
    this.draining = draining
  }

  isDraining (): boolean { return this.draining }

  usage (): Usage {
    const gpus = this.components.gpus()
    return {
      running: this.running.size,
      queued: this.queue.length,
      freeSlots: Math.max(0, this.init.slots - this.usedSlots),
      freeGpus: gpus.filter(g => !this.assignedGpus.has(g.uuid)).length,
      freeMemoryBytes: Math.max(0, this.init.memoryBytes - this.usedMemory),
      done: this.doneCount,
      failed: this.failedCount
    }
  }

  get slots (): number { return this.init.slots }
  get memoryBytes (): number { return this.init.memoryBytes }
  taskTypes (): string[] { return Object.keys(this.init.taskTypes) }

  /**
   * Takes a task: starts it now or queues it, and adds the watcher. Throws UnavailableError (draining, queue full)
   * or UnsatisfiableError (can never run here) to refuse it.
   */
  admit (task: ExecTask, watcher?: Watcher): { queued: boolean } {
    const existing = this.jobs.get(task.id)
    if (existing !== undefined && existing.state.attempt === task.attempt) {
      // the origin offered again after a broken stream: same attempt, same job
      if (watcher !== undefined) this.watch(task.id, 0, watcher)
      return { queued: existing.state.status === 'pending' }
    }
    if (this.stopped || this.draining) throw new UnavailableError(`node ${this.init.nodeName} is ${this.stopped ? 'stopping' : 'draining'}`)
    const why = this.cannotEverRun(task.spec)
    if (why !== undefined) throw new UnsatisfiableError(`node ${this.init.nodeName} cannot run it: ${why}`)
    if (this.queue.length >= this.init.queueLimit && !this.fitsNow(task.spec)) throw new UnavailableError(`node ${this.init.nodeName}'s queue is full (${this.init.queueLimit} tasks)`)
    const job = this.prepare(task)
    if (watcher !== undefined) job.watchers.add(watcher)
    this.jobs.set(task.id, job)
    this.insertQueued(job)
    this.dispatch()
    const queued = this.queue.includes(job)
    // a task that waits here is recorded as pending on this node (one that started reports when it spawns)
    if (queued) this.emitState(job)
    return { queued }
  }

  /**
   * Reserves resources for something long-lived that is not a task (a warm worker): slots, memory and GPUs are
   * taken from what tasks can use until `unreserve`. Undefined when they are not free now.
   */
  reserve (need: { cpus: number, gpus: number, memory: number }): { gpus: string[] } | undefined {
    if (this.stopped) return undefined
    const free = this.components.gpus().filter(g => !this.assignedGpus.has(g.uuid)).sort((a, b) => a.index - b.index)
    if (this.init.slots - this.usedSlots < need.cpus || free.length < need.gpus || this.init.memoryBytes - this.usedMemory < need.memory) return undefined
    const gpus = free.slice(0, need.gpus).map(g => g.uuid)
    for (const g of gpus) this.assignedGpus.add(g)
    this.usedSlots += need.cpus
    this.usedMemory += need.memory
    return { gpus }
  }

  unreserve (held: { cpus: number, gpus: string[], memory: number }): void {
    for (const g of held.gpus) this.assignedGpus.delete(g)
    this.usedSlots -= held.cpus
    this.usedMemory -= held.memory
    this.dispatch()
  }

  /** Could this node ever hold these resources (with nothing else running)? Undefined when yes, else why not. */
  cannotEverHold (need: { cpus: number, gpus: number, memory: number }): string | undefined {
    return this.cannotEverRun({ ...need, type: undefined } as unknown as TaskSpec)
  }

  /** Adds a watcher to a task from an output offset; false when the task is unknown here. */
  watch (id: string, from: number, watcher: Watcher): boolean {
    const job = this.jobs.get(id)
    if (job === undefined) return false
    const { chunks, missed } = job.log.read(from)
    if (missed > 0) watcher.event({ k: 'gap', bytes: missed })
    for (const c of chunks) watcher.event({ k: 'out', s: c.stream, d: c.data, o: c.offset })
    if (isFinal(job.state)) { watcher.done(job.state); return true }
    job.watchers.add(watcher)
    return true
  }

  unwatch (id: string, watcher: Watcher): void {
    const job = this.jobs.get(id)
    if (job === undefined) return
    job.watchers.delete(watcher)
    if (watcher.primary && job.paused > 0) this.resume(job)
  }

  /** The task type of a task this executor has (undefined for a plain command or an unknown task). */
  typeOf (id: string): string | undefined {
    return this.jobs.get(id)?.task.spec.type
  }

  /** The state of a task this executor has (or had, while its log is retained). */
  get (id: string): { state: ExecAspect, truncatedBytes: number } | undefined {
    const job = this.jobs.get(id)
    return job === undefined ? undefined : { state: job.state, truncatedBytes: job.log.dropped }
  }

  /** Cancels a queued or running task; false when it is unknown or already over. */
  cancel (id: string): boolean {
    const job = this.jobs.get(id)
    if (job === undefined || isFinal(job.state)) return false
    const q = this.queue.indexOf(job)
    if (q >= 0) {
      this.queue.splice(q, 1)
      this.finish(job, { status: 'cancelled', error: 'cancelled before it started' })
      return true
    }
    this.terminate(job, 'cancelled')
    return true
  }

  // ---- internals ----

  private cannotEverRun (spec: TaskSpec): string | undefined {
    const gpus = this.components.gpus().length
    if (spec.gpus > gpus) return `it has ${gpus} GPU${gpus === 1 ? '' : 's'}, the task needs ${spec.gpus}`
    if (spec.cpus > this.init.slots) return `it has ${this.init.slots} CPU slots, the task needs ${spec.cpus}`
    if (spec.memory > this.init.memoryBytes) return `it has ${Math.floor(this.init.memoryBytes / 1048576)} MiB for tasks, the task needs ${Math.ceil(spec.memory / 1048576)} MiB`
    if (spec.type !== undefined && this.init.taskTypes[spec.type] === undefined) return `it has no task type ${spec.type} (types: ${this.taskTypes().join(', ') || 'none'})`
    return undefined
  }

  private fitsNow (spec: TaskSpec): boolean {
    const u = this.usage()
    return u.freeSlots >= spec.cpus && u.freeGpus >= spec.gpus && u.freeMemoryBytes >= spec.memory
  }

  private prepare (task: ExecTask): Job {
    const spec = task.spec
    let argv: string[]
    let cwd = spec.cwd
    let env: Record<string, string> = {}
    let stdin: string | undefined
    if (spec.type !== undefined) {
      const t = this.init.taskTypes[spec.type] as TaskTypeConfig
      argv = [...t.command, ...(spec.command ?? [])]
      cwd ??= t.cwd
      env = { ...t.env }
      stdin = JSON.stringify(spec.payload ?? null) + '\n'
    } else if (spec.command !== undefined) {
      argv = spec.command
    } else {
      throw new InvalidArgumentError('task has neither a command nor a type')
    }
    const now = Date.now()
    return {
      task,
      argv,
      cwd,
      // the task's additions to the base environment (the spawner holds the base)
      env: { ...env, ...spec.env, GRID_TASK_ID: task.id, GRID_NODE_ID: this.init.nodeId, GRID_NODE_NAME: this.init.nodeName, GRID_ATTEMPT: String(task.attempt) },
      stdin,
      typed: spec.type !== undefined,
      seq: this.seq++,
      state: { attempt: task.attempt, node: this.init.nodeId, nodeName: this.init.nodeName, status: 'pending', queuedAt: now },
      log: new OutputLog(this.init.maxLogBytes),
      watchers: new Set(),
      gpus: [],
      paused: 0
    }
  }

  private insertQueued (job: Job): void {
    const p = job.task.spec.priority
    let i = this.queue.length
    while (i > 0 && (this.queue[i - 1] as Job).task.spec.priority < p) i--
    this.queue.splice(i, 0, job)
  }

  /** Starts queued tasks that fit, highest priority first; a smaller task may start past a blocked bigger one. */
  private dispatch (): void {
    if (this.stopped) return
    for (let i = 0; i < this.queue.length;) {
      const job = this.queue[i] as Job
      if (this.fitsNow(job.task.spec)) {
        this.queue.splice(i, 1)
        this.startJob(job)
      } else {
        i++
      }
    }
  }

  private startJob (job: Job): void {
    const spec = job.task.spec
    const free = this.components.gpus().filter(g => !this.assignedGpus.has(g.uuid)).sort((a, b) => a.index - b.index)
    job.gpus = free.slice(0, spec.gpus).map(g => g.uuid)
    for (const g of job.gpus) this.assignedGpus.add(g)
    this.usedSlots += spec.cpus
    this.usedMemory += spec.memory
    this.running.add(job)
    if (this.components.gpus().length > 0 || spec.gpus > 0) {
      // a task sees exactly its GPUs (none, when it asked for none)
      job.env.CUDA_VISIBLE_DEVICES = job.gpus.join(',')
      job.env.CUDA_DEVICE_ORDER = 'PCI_BUS_ID'
    }
    if (job.cwd !== undefined && !isDirectory(job.cwd)) {
      this.release(job)
      this.finish(job, { status: 'failed', exitCode: 126, error: `cannot start ${job.argv[0] ?? ''}: working directory ${job.cwd} does not exist` })
      this.dispatch()
      return
    }
    if (!this.spawner.running) {
      this.release(job)
      this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} cannot start processes right now (its spawner is restarting)` })
      return
    }
    const slot = this.nextSlot++
    job.slot = slot
    this.bySlot.set(slot, job)
    const req: { op: 'spawn', slot: number, argv: string[], env: Record<string, string>, cwd?: string, stdin?: string } = { op: 'spawn', slot, argv: job.argv, env: job.env }
    if (job.cwd !== undefined) req.cwd = job.cwd
    if (job.stdin !== undefined) req.stdin = job.stdin
    this.spawner.send(req)
  }

  private onSpawnerEvent (e: SpawnerEvent): void {
    const job = this.bySlot.get(e.slot)
    if (job === undefined) return
    switch (e.ev) {
      case 'spawned': {
        job.pid = e.pid
        job.state = { ...job.state, status: 'running', startedAt: Date.now(), pid: e.pid, gpus: job.gpus }
        this.emitState(job)
        this.broadcast(job, { k: 'started', at: job.state.startedAt as number, pid: e.pid, gpus: job.gpus })
        if (job.task.spec.timeoutMs !== undefined) job.timeout = setTimeout(() => { this.terminate(job, 'timeout') }, job.task.spec.timeoutMs)
        // a cancel or timeout that came before the process existed
        if (job.stopping !== undefined) this.spawner.send({ op: 'kill', slot: e.slot, signal: 'SIGTERM' })
        return
      }
      case 'out': this.output(job, e.stream, e.data); return
      case 'error': this.exited(job, null, null, { code: e.code, message: e.message }); return
      case 'exit': this.exited(job, e.code, e.signal as NodeJS.Signals | null); return
    }
  }

  /** The spawner died (killed, out of memory): its tasks died with it; start a new one. */
  private onSpawnerExit (code: number | null): void {
    if (this.stopped) return
    this.log.error({ code, tasks: this.bySlot.size }, 'the task spawner exited; its tasks are lost and will be retried elsewhere')
    for (const job of [...this.bySlot.values()]) this.exited(job, null, null, undefined, 'the task spawner of this node died')
    const wait = Math.min(SPAWNER_RESTART_CAP_MS, SPAWNER_RESTART_BASE_MS * 2 ** this.spawnerRestarts++)
    setTimeout(() => {
      if (this.stopped) return
      this.spawner.start(this.baseEnv)
      setTimeout(() => { this.spawnerRestarts = 0 }, 60_000).unref()
    }, wait).unref()
  }

  private output (job: Job, stream: 1 | 2, data: Buffer): void {
    const chunk = job.log.append(stream, data)
    this.broadcast(job, { k: 'out', s: stream, d: data, o: chunk.offset })
  }

  private broadcast (job: Job, ev: TaskEvent): void {
    for (const w of job.watchers) {
      let ok: boolean
      try {
        ok = w.event(ev)
      } catch {
        job.watchers.delete(w)
        continue
      }
      if (ok) continue
      if (w.primary) {
        // the origin cannot keep up: pause the task's output (it blocks on its next write) until the stream drains
        this.pause(job)
        void w.drain().catch(() => {}).finally(() => { this.resume(job) })
      }
    }
  }

  private pause (job: Job): void {
    if (job.paused++ === 0 && job.slot !== undefined) this.spawner.send({ op: 'pause', slot: job.slot })
  }

  private resume (job: Job): void {
    if (job.paused > 0 && --job.paused === 0 && job.slot !== undefined) this.spawner.send({ op: 'resume', slot: job.slot })
  }

  private terminate (job: Job, why: NonNullable<Job['stopping']>): void {
    if (job.stopping !== undefined || job.slot === undefined) return
    job.stopping = why
    clearTimeout(job.timeout)
    const slot = job.slot
    if (job.pid !== undefined) this.spawner.send({ op: 'kill', slot, signal: 'SIGTERM' })
    job.kill = setTimeout(() => { if (this.bySlot.get(slot) === job) this.spawner.send({ op: 'kill', slot, signal: 'SIGKILL' }) }, this.init.killGraceMs)
  }

  private exited (job: Job, code: number | null, signal: NodeJS.Signals | null, spawnError?: { code: string, message: string }, lostReason?: string): void {
    if (!this.running.has(job)) return
    this.release(job)
    if (job.slot !== undefined) this.bySlot.delete(job.slot)
    clearTimeout(job.timeout)
    clearTimeout(job.kill)
    const patch: Partial<ExecAspect> = { exitCode: code, signal }
    if (lostReason !== undefined) {
      patch.status = 'failed'
      patch.lost = true
      patch.error = lostReason
    } else if (spawnError !== undefined) {
      const notFound = spawnError.code === 'ENOENT'
      patch.status = 'failed'
      patch.exitCode = notFound ? 127 : 126
      patch.error = `cannot start ${job.argv[0] ?? ''}: ${notFound ? 'command not found' : spawnError.message}`
    } else if (job.stopping === 'timeout') {
      patch.status = 'timeout'
      patch.error = `timed out after ${job.task.spec.timeoutMs ?? 0}ms`
    } else if (job.stopping === 'cancelled') {
      patch.status = 'cancelled'
      patch.error = 'cancelled'
    } else if (job.stopping === 'shutdown') {
      patch.status = 'failed'
      patch.lost = true
      patch.error = `executor ${this.init.nodeName} stopped while the task ran`
    } else if (code === 0) {
      patch.status = 'completed'
    } else {
      patch.status = 'failed'
      patch.error = code !== null ? `exited with code ${code}` : `killed by ${signal ?? 'a signal'}`
    }
    if (job.typed && patch.status === 'completed') {
      const text = job.log.text(1, TASK_RESULT_MAX_BYTES)
      if (text !== undefined) {
        try {
          patch.result = JSON.parse(text) as unknown
        } catch {
          patch.result = text
        }
      }
    }
    this.finish(job, patch)
    this.dispatch()
  }

  private release (job: Job): void {
    if (!this.running.delete(job)) return
    for (const g of job.gpus) this.assignedGpus.delete(g)
    this.usedSlots -= job.task.spec.cpus
    this.usedMemory -= job.task.spec.memory
  }

  private finish (job: Job, patch: Partial<ExecAspect>): void {
    const now = Date.now()
    job.finishedAt = now
    job.state = { ...job.state, ...patch, finishedAt: now }
    if (job.state.status === 'completed') this.doneCount++
    else if (job.state.lost !== true && (job.state.status === 'failed' || job.state.status === 'timeout')) this.failedCount++
    this.emitState(job)
    for (const w of job.watchers) {
      try { w.done(job.state) } catch {}
    }
    job.watchers.clear()
    this.retain(job)
  }

  /** Keeps finished tasks' logs for `logs`, within a total budget (oldest go first). */
  private retain (job: Job): void {
    this.finished.push(job)
    this.retainedBytes += job.log.size
    while (this.retainedBytes > this.init.maxRetainedLogBytes || this.finished.length > 10_000) {
      const old = this.finished.shift()
      if (old === undefined) break
      this.retainedBytes -= old.log.size
      if (this.jobs.get(old.task.id) === old) this.jobs.delete(old.task.id)
    }
  }

  private emitState (job: Job): void {
    try {
      this.emit('task:state', job.task.id, job.state)
    } catch (err) {
      this.log.error({ err, task: job.task.id }, 'task:state listener failed')
    }
  }
}

function isFinal (s: ExecAspect): boolean {
  return s.status !== 'pending' && s.status !== 'running'
}

function isDirectory (path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * Kills the process groups of tasks an earlier run of this node left behind (its spawner was killed along with it):
 * every process whose environment says GRID_NODE_ID=<this node>. Linux only (/proc); elsewhere it does nothing.
 */
export function reapOrphans (nodeId: string): number {
  if (!existsSync('/proc/self/environ')) return 0
  const marker = Buffer.from(`\0GRID_NODE_ID=${nodeId}\0`)
  const groups = new Set<number>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    if (pid === process.pid || pid === process.ppid) continue
    let env: Buffer
    try { env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]) } catch { continue }
    if (env.indexOf(marker) < 0) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
      groups.add(pgid > 1 ? pgid : pid)
    } catch {}
  }
  for (const g of groups) {
    try { process.kill(-g, 'SIGKILL') } catch { try { process.kill(g, 'SIGKILL') } catch {} }
  }
  return groups.size
}

/** The shell's convention for a process killed by a signal: 128 + the signal's number. */
export function exitCodeOf (state: Pick<ExecAspect, 'exitCode' | 'signal' | 'status'>): number {
  if (state.status === 'timeout') return 124
  if (state.status === 'cancelled') return 130
  if (typeof state.exitCode === 'number') return state.exitCode
  const n = state.signal === null || state.signal === undefined ? undefined : osConstants.signals[state.signal as NodeJS.Signals]
  return n === undefined ? 1 : 128 + n
}
