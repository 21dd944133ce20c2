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
import { existsSync } from 'node:fs'
import type { Logger } from 'pino'
import { TASK_REASON_MAX_CHARS, TASK_RESULT_MAX_BYTES, type ExecAspect, type TaskSpec } from '../../proto/index.ts'
import { InvalidConfigError, NotFoundError, UnavailableError, UnsatisfiableError, type Startable } from '../interface/index.ts'
import { AdmissionQueue } from './admission-queue.ts'
import { isFinal, prepareJob, type ExecTask, type Job } from './job.ts'
import { ResourceLedger, type ResourceHold, type ResourceNeed } from './ledger.ts'
import { outcomeOf, parseResult, type ProcessEnd } from './outcome.ts'
import { ProcessHost } from './process-host.ts'
import { reapOrphans } from './reaper.ts'
import { TaskCgroups, type LimitsStatus } from './cgroup.ts'
import { RetainedJobs } from './retained-jobs.ts'
import { makeScratch, markScratchEnded, prepareScratchRoot, scratchPath, sweepScratch } from './scratch.ts'
import { userCanEnter } from './task-user.ts'
import { QUEUE_REASON_REFRESH_MS, SCRATCH_SWEEP_INTERVAL_MS, STDIN_BUFFER_MAX_BYTES } from './constants.ts'
import { armTimeout, clearTaskTimers, exposeGpus, isDirectory, spawnTask, stopTask } from './task-process.ts'
import type { Watcher } from './watchers.ts'
import type { ExecutorComponents, ExecutorEvents, ExecutorInit, ExecutorUsage, StartGate } from './index.ts'

export class Executor extends EventEmitter<ExecutorEvents> implements Startable {
  /** the children of this node (tasks; warm workers too when the pool is handed it) */
  readonly processes: ProcessHost
  private readonly jobs = new Map<string, Job>()
  private readonly queue: AdmissionQueue<Job>
  private readonly running = new Set<Job>()
  private readonly ledger: ResourceLedger
  private readonly retained: RetainedJobs<Job>
  private doneCount = 0
  private failedCount = 0
  private draining = false
  /** queue control (issue 12): takes no new tasks and starts none of its queued ones; running ones go on */
  private paused = false
  private stopped = false
  private started = false
  private sweeper?: NodeJS.Timeout
  private reasonTimer?: NodeJS.Timeout
  /** the scratch sweep in progress, if any */
  private sweeping?: Promise<void>
  private readonly sweepAbort = new AbortController()
  private readonly log: Logger
  /** each task's cgroup with its limits (none without `cgroupRoot`) */
  private readonly cgroups?: TaskCgroups
  /** asked before each start whether the attempt may still start (the tasks module's fence) */
  private gate?: StartGate

  constructor (private readonly components: ExecutorComponents, private readonly init: ExecutorInit) {
    super()
    this.log = components.logger
    if (init.cgroupRoot !== undefined) this.cgroups = new TaskCgroups(components.logger, { nodeName: init.nodeName, root: init.cgroupRoot })
    this.queue = new AdmissionQueue(init.queueLimit)
    this.ledger = new ResourceLedger(components.gpus, { slots: init.slots, memoryBytes: init.memoryBytes })
    this.retained = new RetainedJobs(init.maxRetainedLogBytes, job => { if (this.jobs.get(job.task.id) === job) this.jobs.delete(job.task.id) })
    // a plain copy: reading process.env key by key is slow, and tasks are spawned often
    const baseEnv = Object.fromEntries(Object.entries(init.baseEnv).filter((e): e is [string, string] => e[1] !== undefined))
    this.processes = new ProcessHost({ logger: components.logger }, baseEnv, init.taskUser === undefined ? {} : { user: init.taskUser })
    this.processes.on('spawner:exit', code => {
      if (this.stopped) return
      const tasks = [...this.running].filter(j => j.child !== undefined && !j.child.ended).length
      this.log.error({ code, tasks }, 'the task spawner exited; its tasks are lost and will be retried elsewhere')
    })
  }

  start (): void {
    this.started = true
    const reaped = reapOrphans(this.init.nodeId)
    if (reaped > 0) this.log.warn({ processes: reaped }, 'killed task processes left behind by an earlier run of this node')
    this.cgroups?.setup()
    this.processes.start()
    const root = this.init.scratchDir
    const user = this.init.taskUser
    if (root !== undefined && user !== undefined) {
      try {
        prepareScratchRoot(root, user.gid)
      } catch (err) {
        throw new InvalidConfigError([`executor.taskUser: cannot make ${root}, where ${user.name}'s tasks' scratch directories go, in its group: ${(err as Error).message}`], { cause: err })
      }
      if (!userCanEnter(user, root)) throw new InvalidConfigError([`executor.taskUser: ${user.name} cannot enter ${root}, where its tasks' scratch directories go (a directory above it is closed to it): open the way (chmod o+x), or move the data dir`])
    }
    if (root !== undefined) {
      this.sweepScratch(root)
      this.sweeper = setInterval(() => { this.sweepScratch(root) }, SCRATCH_SWEEP_INTERVAL_MS).unref()
    }
  }

  /** Stops every task (TERM, KILL after the grace period); their attempts are reported lost, so they run elsewhere. */
  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.sweeper)
    clearTimeout(this.reasonTimer)
    this.reasonTimer = undefined
    this.sweepAbort.abort()
    for (let job = this.queue.shift(); job !== undefined; job = this.queue.shift()) {
      this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} stopped before the task started` })
    }
    const running = [...this.running]
    for (const job of running) {
      if (job.gated === true) job.stopping ??= 'shutdown'
      else stopTask(job, 'shutdown', this.init.killGraceMs)
    }
    await Promise.all(running.map(async job => await new Promise<void>(resolve => {
      if (!this.running.has(job)) { resolve(); return }
      const check = (): void => { if (!this.running.has(job)) { this.off('task:state', check); resolve() } }
      this.on('task:state', check)
    })))
    this.processes.stop()
    this.cgroups?.close()
    // the directory being removed now goes to the end; none after it
    await this.sweeping
  }

  /** Removes expired scratch directories in the background; one sweep at a time (a slow one is not doubled). */
  private sweepScratch (root: string): void {
    if (this.sweeping !== undefined || this.stopped) return
    const keep = (name: string): boolean => [...this.jobs.keys()].some(id => scratchPath('', id) === name)
    this.sweeping = sweepScratch(root, this.init.scratchRetentionMs ?? 0, keep, { signal: this.sweepAbort.signal })
      .then(removed => { if (removed > 0) this.log.info({ removed }, 'expired scratch directories removed') })
      .catch((err: unknown) => { this.log.warn({ err }, 'scratch sweep failed') })
      .finally(() => { this.sweeping = undefined })
  }

  /** The fence asked before each start (tasks: is this attempt still its coordinator's current one?). */
  setStartGate (gate: StartGate): void {
    this.gate = gate
  }

  setDraining (draining: boolean): void {
    this.draining = draining
  }

  isDraining (): boolean { return this.draining }

  /** Pauses (or resumes) this node's queue: a paused node admits nothing and starts none of its queued tasks. */
  setPaused (paused: boolean): { running: number, queued: number } {
    const was = this.paused
    this.paused = paused
    if (was !== paused) this.log.info({ paused, queued: this.queue.length, running: this.running.size }, paused ? 'queue paused' : 'queue resumed')
    if (!paused) this.dispatch()
    return { running: this.running.size, queued: this.queue.length }
  }

  isPaused (): boolean { return this.paused }

  /** Started, not stopping, and its spawner is not running: it cannot run anything now. */
  spawnerDown (): boolean { return this.started && !this.stopped && !this.processes.running }

  /** The tasks waiting in this node's queue, in queue order (gridctl queue ls, work stealing). */
  queuedTasks (): Array<{ id: string, priority: number, queuedAt: number, spec: TaskSpec, origin: string, coordinator: string, stdin: boolean }> {
    return this.queue.list().map(j => ({ id: j.task.id, priority: j.task.spec.priority, queuedAt: j.state.queuedAt ?? 0, spec: j.task.spec, origin: j.task.origin, coordinator: j.task.coordinator, stdin: j.stdin !== undefined }))
  }

  /**
   * Work stealing: takes a queued task out of the queue for another node to run, before it ever starts here; its
   * watchers hear it ended with `movedTo`, so its coordinator offers it there. False when it is not queued (it started,
   * ended or is unknown): a task that started never moves.
   */
  moveOut (id: string, to: string, toName: string): boolean {
    const job = this.jobs.get(id)
    if (job === undefined || !this.queue.remove(job)) return false
    this.log.info({ task: id, to, toName }, 'queued task handed to another node (work stealing)')
    this.finish(job, { status: 'failed', lost: true, movedTo: to, error: `moved to ${toName} before it started (work stealing)` })
    this.dispatch()
    return true
  }

  usage (): ExecutorUsage {
    return {
      running: this.running.size,
      queued: this.queue.length,
      freeSlots: this.ledger.freeSlots,
      freeGpus: this.ledger.freeGpus,
      freeMemoryBytes: this.ledger.freeMemoryBytes,
      done: this.doneCount,
      failed: this.failedCount
    }
  }

  get slots (): number { return this.init.slots }
  get memoryBytes (): number { return this.init.memoryBytes }
  /** whether tasks' memory limits and CPU quotas are enforced here (cgroups), and why not */
  limits (): LimitsStatus { return this.cgroups?.status() ?? { enforced: false, cgroup: null, reason: 'cgroups are not used by this executor' } }
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
    if (this.paused) throw new UnavailableError(`node ${this.init.nodeName}'s queue is paused`)
    const why = this.cannotEverRun(task.spec)
    if (why !== undefined) throw new UnsatisfiableError(`node ${this.init.nodeName} cannot run it: ${why}`)
    if (this.queue.full && !this.ledger.fits(task.spec)) throw new UnavailableError(`node ${this.init.nodeName}'s queue is full (${this.init.queueLimit} tasks)`)
    const job = prepareJob(task, { nodeId: this.init.nodeId, nodeName: this.init.nodeName, taskTypes: this.init.taskTypes, maxLogBytes: this.init.maxLogBytes, maxStdinBufferBytes: STDIN_BUFFER_MAX_BYTES })
    if (watcher !== undefined) job.watchers.add(watcher)
    job.admittedAt = performance.now()
    this.jobs.set(task.id, job)
    this.queue.push(job)
    this.dispatch()
    const queued = this.queue.has(job)
    if (queued) job.waited = true
    // a task that waits here is recorded as pending on this node, with why (`get` shows it; one that started
    // reports when it spawns)
    if (queued) {
      job.state = { ...job.state, reason: this.queueReason(job) }
      this.emitState(job)
    }
    return { queued }
  }

  /**
   * Reserves resources for something long-lived that is not a task (a warm worker): slots, memory and GPUs are
   * taken from what tasks can use until `unreserve`. Undefined when they are not free now.
   */
  reserve (need: ResourceNeed): { gpus: string[] } | undefined {
    if (this.stopped || this.init.router === true) return undefined
    const held = this.ledger.take(need)
    return held === undefined ? undefined : { gpus: held.gpus }
  }

  unreserve (held: ResourceHold): void {
    this.ledger.release(held)
    this.dispatch()
  }

  /** Could this node ever hold these resources (with nothing else running)? Undefined when yes, else why not. */
  cannotEverHold (need: ResourceNeed): string | undefined {
    if (this.init.router === true) return 'it is a router (--slots 0): it runs no workers'
    return this.ledger.cannotEverHold(need)
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
    this.jobs.get(id)?.watchers.delete(watcher)
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
    if (this.queue.remove(job)) {
      this.finish(job, { status: 'cancelled', error: 'cancelled before it started' })
      return true
    }
    // its start waits for the gate: it ends when the answer comes, and never starts
    if (job.gated === true) { job.stopping ??= 'cancelled'; return true }
    stopTask(job, 'cancelled', this.init.killGraceMs)
    return true
  }

  /**
   * Bytes for a task's open stdin (`end`: then close it), answered once taken: held while it waits to start (up to
   * STDIN_BUFFER_MAX_BYTES), else handed to its process as fast as it reads. `open` false: that attempt takes no more.
   */
  async writeStdin (id: string, attempt: number, data: Uint8Array, end: boolean): Promise<{ open: boolean }> {
    const job = this.jobs.get(id)
    if (job === undefined) throw new NotFoundError(`this node has no task ${id}`)
    const feed = job.task.attempt === attempt ? job.stdin : undefined
    if (feed === undefined || !feed.open) return { open: false }
    const open = await feed.write(data)
    if (end) feed.end()
    return { open: open && feed.open }
  }

  /** Closes the open stdin of the tasks submitted through `origin` (it is gone: nobody can send the rest). */
  closeStdinFrom (origin: string): void {
    for (const job of this.jobs.values()) if (job.task.origin === origin) job.stdin?.end()
  }

  // ---- internals ----

  private cannotEverRun (spec: TaskSpec): string | undefined {
    if (this.init.router === true) return 'it is a router (--slots 0): it runs no tasks'
    const why = this.ledger.cannotEverHold(spec)
    if (why !== undefined) return why
    if (spec.type !== undefined && this.init.taskTypes[spec.type] === undefined) return `it has no task type ${spec.type} (types: ${this.taskTypes().join(', ') || 'none'})`
    return undefined
  }

  /** Starts queued tasks that fit, highest priority first; a smaller task may start past a blocked bigger one. */
  private dispatch (): void {
    if (this.stopped || this.paused) return
    this.queue.drain(job => this.ledger.fits(job.task.spec), job => { this.startJob(job) })
    // what still waits may wait for something else now (fewer ahead, another resource): its record says so, within
    // QUEUE_REASON_REFRESH_MS. Not at every start: with hundreds queued, each start would rewrite hundreds of records
    if (this.queue.length > 0 && this.reasonTimer === undefined) {
      this.reasonTimer = setTimeout(() => { this.reasonTimer = undefined; this.refreshReasons() }, QUEUE_REASON_REFRESH_MS).unref()
    }
  }

  /** One pass over the queue: each waiting task whose reason changed (its place, what it lacks) is recorded again. */
  private refreshReasons (): void {
    if (this.stopped) return
    const queued = this.queue.list()
    for (let i = 0; i < queued.length; i++) {
      const job = queued[i] as Job
      const reason = this.queueReason(job, i)
      if (reason !== job.state.reason) { job.state = { ...job.state, reason }; this.emitState(job) }
    }
  }

  /** Why a queued task waits here, like squeue's pending reason: how many are ahead, which resource it lacks now. */
  private queueReason (job: Job, ahead = this.queue.ahead(job)): string {
    const s = job.task.spec
    const lacks: string[] = []
    const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`
    if (this.ledger.freeSlots < s.cpus) lacks.push(`${plural(s.cpus, 'CPU slot')} (${this.ledger.freeSlots} of ${this.init.slots} free)`)
    if (this.ledger.freeGpus < s.gpus) lacks.push(`${plural(s.gpus, 'GPU')} (${this.ledger.freeGpus} of ${this.components.gpus().length} free)`)
    if (this.ledger.freeMemoryBytes < s.memory) lacks.push(`${Math.ceil(s.memory / 1048576)} MiB of memory (${Math.floor(this.ledger.freeMemoryBytes / 1048576)} of ${Math.floor(this.init.memoryBytes / 1048576)} MiB free)`)
    const where = ahead > 0 ? `queued behind ${plural(ahead, 'task')} on ${this.init.nodeName}` : `queued on ${this.init.nodeName}`
    const why = `${where} (${this.running.size} running); waiting for ${lacks.length > 0 ? lacks.join(', ') : 'the tasks ahead to start'}`
    return why.slice(0, TASK_REASON_MAX_CHARS)
  }

  private startJob (job: Job): void {
    const held = this.ledger.take(job.task.spec) as ResourceHold
    job.held = held
    this.running.add(job)
    const asked = this.gate?.(job.task, { waited: job.waited === true, admittedAt: job.admittedAt ?? 0 })
    if (asked === undefined) { this.launch(job, held); return }
    // the fence asks (its coordinator, its records) whether this attempt may still start; the resources stay held
    job.gated = true
    void asked.catch((err: unknown) => `its start could not be confirmed: ${(err as Error).message}`).then(why => {
      job.gated = false
      if (!this.running.has(job)) return
      if (job.stopping !== undefined || why !== undefined || this.stopped) {
        this.release(job)
        if (job.stopping === 'cancelled') this.finish(job, { status: 'cancelled', error: 'cancelled before it started' })
        else if (why !== undefined) {
          this.log.warn({ task: job.task.id, attempt: job.task.attempt, coordinator: job.task.coordinator, reason: why }, 'an attempt that is no longer current was not started')
          this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} did not start attempt ${job.task.attempt}: ${why}` })
        } else this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} stopped before the task started` })
        this.dispatch()
        return
      }
      this.launch(job, held)
    })
  }

  /** Starts a job whose resources it holds: its directory, then its process. */
  private launch (job: Job, held: ResourceHold): void {
    exposeGpus(job, held.gpus, this.components.gpus().length > 0)
    if (job.cwd === undefined) this.chooseCwd(job)
    if (job.cwd !== undefined && !isDirectory(job.cwd)) {
      this.release(job)
      this.finish(job, { status: 'failed', exitCode: 126, error: `cannot start ${job.argv[0] ?? ''}: working directory ${job.cwd} does not exist` })
      this.dispatch()
      return
    }
    const user = this.init.taskUser
    if (job.cwd !== undefined && user !== undefined && !userCanEnter(user, job.cwd)) {
      this.release(job)
      this.finish(job, { status: 'failed', exitCode: 126, error: `cannot start ${job.argv[0] ?? ''}: the task user ${user.name} cannot enter working directory ${job.cwd}` })
      this.dispatch()
      return
    }
    if (!this.processes.running) {
      this.release(job)
      this.dispatchOutcome(job, { ok: false, reason: 'its spawner is restarting' })
      this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} cannot start processes right now (its spawner is restarting)` })
      return
    }
    if (this.init.spawnFaultFile !== undefined && existsSync(this.init.spawnFaultFile)) {
      this.release(job)
      this.dispatchOutcome(job, { ok: false, reason: 'fork failed: EAGAIN (injected)' })
      this.finish(job, { status: 'failed', lost: true, error: `executor ${this.init.nodeName} could not start it: fork failed: EAGAIN (injected)` })
      this.dispatch()
      return
    }
    spawnTask(job, this.processes, {
      spawned: pid => {
        this.dispatchOutcome(job, { ok: true })
        const gpus = held.gpus
        const { reason: _waited, ...state } = job.state
        job.state = { ...state, status: 'running', startedAt: Date.now(), pid, gpus }
        this.emitState(job)
        job.watchers.broadcast({ k: 'started', at: job.state.startedAt as number, pid, gpus })
        armTimeout(job, this.init.killGraceMs)
      },
      output: (stream, data) => {
        const chunk = job.log.append(stream, data)
        job.watchers.broadcast({ k: 'out', s: stream, d: data, o: chunk.offset })
      },
      ended: end => { this.exited(job, end) }
    }, this.cgroups)
  }

  /**
   * No directory given: the caller's when it exists here (as Slurm does) and the task user (if any) may enter it,
   * else the task's scratch directory.
   */
  private chooseCwd (job: Job): void {
    const wanted = job.task.spec.cwdDefault
    const user = this.init.taskUser
    if (wanted !== undefined && isDirectory(wanted) && (user === undefined || userCanEnter(user, wanted))) { job.cwd = wanted; return }
    if (this.init.scratchDir === undefined) return
    try {
      job.scratch = makeScratch(this.init.scratchDir, job.task.id, user?.gid)
      job.cwd = job.scratch
      job.env.GRID_SCRATCH_DIR = job.scratch
    } catch (err) {
      this.log.warn({ err, task: job.task.id }, 'cannot create the task\'s scratch directory; it runs in the daemon\'s')
    }
  }

  private exited (job: Job, end: ProcessEnd): void {
    if (!this.running.has(job)) return
    // the node's fault, not the program's: the spawner died under it, or could not fork or make its cgroup
    if (end.lostReason !== undefined) this.dispatchOutcome(job, { ok: false, reason: end.lostReason })
    else if (end.spawnError !== undefined && end.spawnError.code !== 'ENOENT' && end.spawnError.code !== 'EACCES') this.dispatchOutcome(job, { ok: false, reason: `${end.spawnError.code}: ${end.spawnError.message}` })
    this.release(job)
    clearTaskTimers(job)
    const patch = outcomeOf({ command: job.argv[0] ?? '', nodeName: this.init.nodeName, timeoutMs: job.task.spec.timeoutMs, stopping: job.stopping }, end)
    if (job.typed && patch.status === 'completed') {
      const text = job.log.text(1, TASK_RESULT_MAX_BYTES)
      if (text !== undefined) patch.result = parseResult(text)
    }
    this.finish(job, patch)
    this.dispatch()
  }

  private release (job: Job): void {
    if (!this.running.delete(job)) return
    if (job.held !== undefined) this.ledger.release(job.held)
  }

  private finish (job: Job, patch: Partial<ExecAspect>): void {
    const now = Date.now()
    const { reason: _waited, ...state } = job.state
    job.state = { ...state, ...patch, finishedAt: now }
    if (job.state.status === 'completed') this.doneCount++
    else if (job.state.lost !== true && (job.state.status === 'failed' || job.state.status === 'timeout')) this.failedCount++
    job.stdin?.close()
    if (job.scratch !== undefined) markScratchEnded(job.scratch)
    this.emitState(job)
    job.watchers.done(job.state)
    this.retained.add(job)
  }

  private dispatchOutcome (job: Job, outcome: { ok: true } | { ok: false, reason: string }): void {
    try {
      this.emit('task:dispatch', job.task.id, outcome)
    } catch (err) {
      this.log.error({ err, task: job.task.id }, 'task:dispatch listener failed')
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
