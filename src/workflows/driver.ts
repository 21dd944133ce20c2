/**
 * The driver of one workflow, on the node that drives it (its origin, or the successor that took it over). It starts
 * each job once every job it needs has succeeded (dag.ts), a plain job as a task and a job with items or count as a
 * job of the jobs service, records each job as running before its task or job exists, follows it to its end (a job
 * it did not start, after a takeover, through its records), keeps each job's trimmed stdout for its dependants'
 * GRID_NEEDS, and writes the workflow's end. It must not place runs (tasks' routing does) nor run processes.
 */
import type { Logger } from 'pino'
import { workflowTaskId, type JobStreamEvent, type TaskSpec, type WorkflowDoc, type WorkflowJobState, type WorkflowStreamEvent } from '../../proto/index.ts'
import { InvalidArgumentError, toGridError } from '../interface/index.ts'
import { capped, followTask, runEnd, stdoutOf } from '../jobs/capture.ts'
import type { ClientEvent, EventQueue } from '../tasks/index.ts'
import { lostItsEnv, normalizeSpec } from '../tasks/index.ts'
import { delay } from '../util/index.ts'
import type { WorkflowsComponents } from './components.ts'
import { plan } from './dag.ts'
import { jobRecord, toWorkflowRecord, type WorkflowRecords } from './records.ts'

/** A job followed through its records (taken over, or a distribute job) is looked up this often. */
const POLL_MS = 250
/** A plain job taken over whose task record has not arrived after this long never started: it is started again. */
const ADOPT_MISSING_MS = 5_000
/** After a cancel, the jobs cancelled are waited for this long before the workflow is recorded cancelled anyway. */
const CANCEL_WAIT_MS = 30_000
/** The loop looks again this often even when nothing woke it. */
const TICK_MS = 1_000
/**
 * Job ends are written at most this often, each changed job's state as its own entry (a start writes at once: a job
 * is recorded running before it exists). The document itself is written at the end.
 */
export const WORKFLOW_FLUSH_MS = 250

/** Reads a stream to its end (or its failure), keeping nothing. */
async function readToEnd (events: AsyncIterable<unknown>): Promise<void> {
  try { for await (const _ of events) { /* progress and done: the records say the rest */ } } catch { /* ended all the same */ }
}

type Ended = Omit<WorkflowJobState, 'run' | 'status' | 'startedAt' | 'round'> & { status: 'succeeded' | 'failed' | 'cancelled', stdout?: string }

export class WorkflowDriver {
  private readonly inflight = new Map<string, number>()
  private cancelRequested = false
  private stopped = false
  private wakeUp?: () => void
  /** the jobs whose state changed since the last write */
  private readonly dirty = new Set<string>()
  private flushTimer?: NodeJS.Timeout
  private readonly log: Logger

  constructor (
    private readonly c: Pick<WorkflowsComponents, 'tasks' | 'jobs' | 'resolveNode'>,
    private readonly records: WorkflowRecords,
    readonly id: string,
    private doc: WorkflowDoc,
    private paused: boolean,
    log: Logger,
    readonly sink?: EventQueue<WorkflowStreamEvent>,
    /** a job's env values, held by the node the workflow was submitted to (the document has their names only) */
    private readonly envOf: (job: string) => Record<string, string> | undefined = () => undefined
  ) {
    this.log = log.child({ workflow: id })
    // this driver's own copy: job states change in place between writes
    this.doc = { ...doc, jobs: { ...doc.jobs } }
  }

  requestCancel (): void { this.cancelRequested = true; this.wake() }
  setPaused (paused: boolean): void { this.paused = paused; this.wake() }
  /** The node stops: the driver stops without an end (a successor or this node's restart goes on). */
  stop (): void { this.stopped = true; this.wake() }

  async drive (): Promise<void> {
    this.flushTimer = setInterval(() => { this.flush() }, WORKFLOW_FLUSH_MS)
    this.flushTimer.unref()
    try {
      for (const n of this.doc.order) if (this.doc.jobs[n]?.status === 'running') this.adopt(n)
      for (;;) {
        if (this.stopped) return
        if (this.cancelRequested) { await this.cancelAll(); if (!this.stopped) this.finish('cancelled'); return }
        const p = plan(this.doc.order, this.doc.defs, this.doc.jobs, { paused: this.paused, ...(this.doc.parallelism === undefined ? {} : { parallelism: this.doc.parallelism }) })
        for (const n of p.skip) this.set(n, { ...this.state(n), status: 'skipped', endedAt: Date.now() })
        // every job starting now is recorded running before any of their tasks exists; ends and skips alone wait for
        // the flush timer (their writes batched per tick)
        const runs = p.start.map(n => this.mark(n))
        if (runs.length > 0) this.flush()
        p.start.forEach((n, k) => { this.start(n, runs[k] as number) })
        if (p.done !== undefined && this.inflight.size === 0 && p.start.length === 0) { this.finish(p.done); return }
        // a job that could not start ended at once: look again now rather than at the next tick
        if (p.start.length > 0 || p.skip.length > 0) continue
        await this.sleep(TICK_MS)
      }
    } catch (err) {
      this.log.error({ err }, 'driving a workflow failed')
      this.sink?.close(toGridError(err))
    } finally {
      clearInterval(this.flushTimer)
      if (!this.stopped) this.flush()
    }
  }

  private state (n: string): WorkflowJobState {
    return this.doc.jobs[n] ?? { status: 'pending', run: 0 }
  }

  private set (n: string, s: WorkflowJobState): void {
    this.doc.jobs[n] = s
    this.dirty.add(n)
    this.sink?.push({ type: 'job', ...jobRecord(this.id, this.doc, n) }, true)
  }

  /** Writes the state of each job that changed since the last write (one small entry each, not the document). */
  private flush (): void {
    for (const n of this.dirty) this.records.writeJob(this.id, n, this.state(n))
    this.dirty.clear()
  }

  /** GRID_NEEDS: every need's trimmed stdout (a distribute job's answer), by name. */
  private needsEnv (n: string): string {
    const out: Record<string, string> = {}
    for (const m of this.doc.defs[n]?.needs ?? []) out[m] = this.records.stdout(this.id, m)
    return JSON.stringify(out)
  }

  /** Records a job as running its next run (written before it starts: a successor then looks for its task first). */
  private mark (n: string): number {
    const run = this.state(n).run + 1
    const round = this.doc.retries ?? 0
    this.set(n, { status: 'running', run, startedAt: Date.now(), ...(round > 0 ? { round } : {}) })
    this.inflight.set(n, run)
    return run
  }

  /** Starts a job's run recorded by mark(): a plain job as a task, a distribute job as a job. */
  private start (n: string, run: number): void {
    const def = this.doc.defs[n]
    if (def === undefined) return
    const { envNames, ...body } = def.body as { envNames?: string[] } & Record<string, unknown>
    const values = this.envOf(n)
    if (envNames !== undefined && envNames.length > 0 && values === undefined) {
      this.ended(n, run, { status: 'failed', exitCode: null, error: `its environment (${envNames.join(', ')}) was held only by the workflow's origin ${this.doc.originName}, which cannot give it to this node; resubmit the workflow` })
      return
    }
    const env = { ...values, GRID_NEEDS: this.needsEnv(n) }
    try {
      if (def.distribute) {
        // its stream (without the items' results) says when it ends, so the next job starts then, not at the next look
        const { id, events } = this.c.jobs.submit({ ...body, env, detach: false, results: false })
        this.set(n, { ...this.state(n), jobId: id })
        this.flush()
        this.followJob(n, run, id, events)
      } else {
        const { spec } = normalizeSpec({ ...body, env }, nameOrId => {
          const id = this.c.resolveNode(nameOrId)
          if (id === undefined) throw new InvalidArgumentError(`no node ${nameOrId} in this cluster`)
          return id
        })
        const { events } = this.c.tasks.submitSpec(spec as TaskSpec, workflowTaskId(this.id, n, run), false)
        void this.follow(n, run, events as EventQueue<ClientEvent>)
      }
    } catch (err) {
      this.ended(n, run, { status: 'failed', error: toGridError(err).message.slice(0, 4096) })
    }
  }

  /** Reads a plain job's task stream: stdout (kept up to its limit), then the exit. */
  private async follow (n: string, run: number, events: AsyncIterable<ClientEvent>): Promise<void> {
    const f = await followTask(events)
    if (f.exit === undefined && this.stopped) return
    const { status, error, ...rest } = runEnd(f)
    // a job without an exit keeps no stdout (GRID_NEEDS hands on only what a job that ended printed)
    this.ended(n, run, { ...(f.exit === undefined ? {} : rest), status: status === 'completed' ? 'succeeded' : status, ...(error === undefined ? {} : { error: error.slice(0, 4096) }) })
  }

  /**
   * Follows a distribute job through the jobs service's records until it has its verdict; its answer is its stdout.
   * The records are read again when the job's stream (a job this driver started) ends, else every POLL_MS.
   */
  private followJob (n: string, run: number, jobId: string, events?: AsyncIterable<JobStreamEvent>): void {
    let streamEnd: Promise<void> | undefined = events === undefined ? undefined : readToEnd(events)
    void (async () => {
      let askedCancel = false
      for (;;) {
        if (this.stopped || this.inflight.get(n) !== run) return
        let j
        try { j = this.c.jobs.summary(jobId) } catch { j = undefined }
        if (j !== undefined && j.finishedAt !== null) {
          this.ended(n, run, {
            status: j.status === 'completed' ? 'succeeded' : j.status === 'cancelled' ? 'cancelled' : 'failed',
            node: j.driver,
            nodeName: j.driverName,
            attempts: (j.succeeded + j.failed + j.cancelled) > 0 ? 1 : 0,
            exitCode: null,
            stdout: j.answer ?? '',
            ...(j.error === null ? {} : { error: j.error.slice(0, 4096) })
          })
          return
        }
        if (this.cancelRequested && !askedCancel) {
          askedCancel = true
          try { this.c.jobs.cancel(jobId) } catch { /* it ended meanwhile */ }
        }
        if (streamEnd === undefined) await delay(POLL_MS)
        else {
          const ended = await Promise.race([streamEnd.then(() => true), delay(POLL_MS).then(() => false)])
          // the stream ended: the records have the verdict now (written before it); if not, back to looking
          if (ended) streamEnd = undefined
        }
      }
    })()
  }

  /** A job running when this driver took over: followed through its records (a task that never started starts again). */
  private adopt (n: string): void {
    const s = this.state(n)
    const def = this.doc.defs[n]
    this.inflight.set(n, s.run)
    if (def?.distribute === true) {
      if (s.jobId === undefined) { this.restart(n, s.run, 'its job was never recorded'); return }
      this.followJob(n, s.run, s.jobId)
      return
    }
    const taskId = workflowTaskId(this.id, n, s.run)
    void (async () => {
      const since = Date.now()
      let askedCancel = false
      for (;;) {
        if (this.stopped || this.inflight.get(n) !== s.run) return
        let rec
        try { rec = this.c.tasks.get(taskId) } catch { rec = undefined }
        if (rec === undefined && Date.now() - since > ADOPT_MISSING_MS) { this.restart(n, s.run, 'its task was never recorded'); return }
        if (rec !== undefined && ['completed', 'failed', 'timeout', 'cancelled'].includes(rec.status)) {
          if (rec.status !== 'completed' && rec.startedAt === null && !this.cancelRequested) { this.restart(n, s.run, rec.error ?? rec.status); return }
          // its executor died with the origin, and the task's new coordinator could not run it again without the env
          // the origin held (GRID_NEEDS): this driver holds that env, so the job runs again as its next run
          if (rec.status === 'failed' && lostItsEnv(rec.error) && !this.cancelRequested) { this.restart(n, s.run, rec.error ?? rec.status, 'its task died with the origin'); return }
          const stdout = rec.status === 'completed' ? await this.stdoutOf(taskId) : ''
          this.ended(n, s.run, {
            status: rec.status === 'completed' ? 'succeeded' : rec.status === 'cancelled' ? 'cancelled' : 'failed',
            exitCode: rec.exitCode,
            attempts: rec.attempts,
            stdout,
            ...(rec.node === null ? {} : { node: rec.node }),
            ...(rec.nodeName === null ? {} : { nodeName: rec.nodeName }),
            ...(rec.status === 'completed' ? {} : { error: (rec.error ?? rec.status).slice(0, 4096) })
          })
          return
        }
        if (this.cancelRequested && rec !== undefined && !askedCancel) { askedCancel = true; await this.cancelTask(taskId) }
        await delay(POLL_MS)
      }
    })()
  }

  private restart (n: string, run: number, why: string, what = 'it never ran'): void {
    if (this.inflight.get(n) !== run) return
    this.inflight.delete(n)
    this.log.info({ job: n, run, why }, `starting a workflow's job again: ${what}`)
    // back to pending: the loop starts it again as the next run
    this.set(n, { ...this.state(n), status: 'pending' })
    this.wake()
  }

  /** The stdout of a task that ended, from its executor (best effort). */
  private async stdoutOf (taskId: string): Promise<string> {
    return await stdoutOf(signal => this.c.tasks.logs(taskId, false, signal))
  }

  private async cancelTask (taskId: string): Promise<void> {
    try { await this.c.tasks.cancel(taskId) } catch { /* it ended meanwhile, or is not recorded yet */ }
  }

  /** A job ended: its stdout kept (for GRID_NEEDS), its state recorded, the client told, the loop woken. */
  private ended (n: string, run: number, res: Ended): void {
    if (this.inflight.get(n) !== run) return
    this.inflight.delete(n)
    const { stdout, ...rest } = res
    if (res.status === 'succeeded' && stdout !== undefined) this.records.writeStdout(this.id, n, capped(stdout.trim()))
    const prev = this.state(n)
    this.set(n, { ...rest, run, endedAt: Date.now(), ...(prev.startedAt === undefined ? {} : { startedAt: prev.startedAt }), ...(prev.round === undefined ? {} : { round: prev.round }), ...(prev.jobId === undefined ? {} : { jobId: prev.jobId }) })
    this.log.info({ job: n, status: res.status, attempts: res.attempts, node: res.nodeName }, 'workflow job ended')
    this.wake()
  }

  /** Cancels every job in flight, wherever it runs, and waits for them; what never started is cancelled. */
  private async cancelAll (): Promise<void> {
    for (const [n, run] of this.inflight) {
      const s = this.state(n)
      if (this.doc.defs[n]?.distribute === true) { if (s.jobId !== undefined) try { this.c.jobs.cancel(s.jobId) } catch { /* ended */ } } else await this.cancelTask(workflowTaskId(this.id, n, run))
    }
    const deadline = Date.now() + CANCEL_WAIT_MS
    while (this.inflight.size > 0 && Date.now() < deadline && !this.stopped) await this.sleep(POLL_MS)
    if (this.stopped) return
    for (const [n, run] of [...this.inflight]) this.ended(n, run, { status: 'cancelled', error: 'cancelled; its end was not heard of in time' })
    for (const n of this.doc.order) if (this.state(n).status === 'pending') this.set(n, { ...this.state(n), status: 'cancelled', endedAt: Date.now() })
  }

  private finish (status: 'succeeded' | 'failed' | 'cancelled'): void {
    const failed = this.doc.order.filter(n => this.state(n).status === 'failed')
    this.doc = { ...this.doc, final: status, finishedAt: Date.now() }
    if (status === 'failed') this.doc.error = `${failed.length > 0 ? `job ${failed.join(', ')} failed` : 'a job was cancelled'}; its dependants were skipped`
    else if (status === 'cancelled') this.doc.error = 'cancelled'
    else delete this.doc.error
    // the end: the whole document, every job's state in it (newer than their job entries)
    this.dirty.clear()
    this.records.writeDoc(this.id, { ...this.doc, jobs: { ...this.doc.jobs } })
    this.log.info({ status, jobs: this.doc.order.length }, 'workflow ended')
    this.sink?.push({ type: 'done', workflow: toWorkflowRecord(this.id, { doc: this.doc, paused: false }) })
    this.sink?.close()
  }

  private wake (): void { this.wakeUp?.() }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(done, ms)
      this.wakeUp = done
      function done (): void { clearTimeout(t); resolve() }
    })
    this.wakeUp = undefined
  }
}
