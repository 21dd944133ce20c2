/**
 * The driver of one job, on the node that drives it (its origin, or the successor that took it over). It starts the
 * job's runs as tasks (the tasks service's routing, admission, retries, timeouts and records), at most maxParallel
 * at once, records each run before its task exists and each result in the job's progress chunks (batched), applies
 * the aggregation (first-success cancels the rest), runs map-reduce's reduce with every result on its stdin, and
 * writes the verdict. Runs it did not start (taken over) it follows through their task records. It must not place
 * runs itself (tasks' routing does) nor run processes.
 */
import type { Logger } from 'pino'
import {
  JOB_CHUNK_ITEMS, itemText, reduceTaskId, runTaskId,
  type ItemRun, type JobDoc, type JobStreamEvent, type TaskRecord, type TaskSpec
} from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import type { ClientEvent, EventQueue } from '../tasks/index.ts'
import { delay } from '../util/index.ts'
import { decidedEarly, verdict, type RunOutcome } from './aggregate.ts'
import { followTask, runEnd, stdoutOf } from './capture.ts'
import type { JobsComponents } from './components.ts'
import { Inflight } from './inflight.ts'
import { ChunkSchedule } from './progress.ts'
import { RunTable } from './run-table.ts'
import { liveJobRecord, resultOf, type JobRecords } from './records.ts'
import { WorkerFeed } from './worker-feed.ts'
import { runReduce, type ReduceResult } from './reduce.ts'

/** Settled progress chunks are written this often (every result in between goes in the same write; see progress.ts). */
export const JOB_FLUSH_MS = 250
/** `progress` events go to the client at most this often. */
export const JOB_PROGRESS_EVERY_MS = 250
/** A run taken over is looked up in the task records this often. */
const ADOPT_POLL_MS = 500
/** A run taken over whose task record has not arrived after this long never started: it is started again. */
const ADOPT_MISSING_MS = 5_000
/** After a cancel, the runs cancelled are waited for this long before the job is recorded cancelled anyway. */
const CANCEL_WAIT_MS = 30_000
/** The runs still going after a cancel are asked to stop again this often. */
const CANCEL_AGAIN_MS = 2_000

export class JobDriver {
  /** every item's latest run, compactly (no object per item) */
  private readonly runs: RunTable
  /** the run in flight of each item that has one */
  private readonly inflight: Inflight
  /** a warm-worker type's items on their way to its workers (worker jobs) */
  private readonly feed?: WorkerFeed
  /** which progress chunks to write when */
  private readonly chunks: ChunkSchedule
  private cursor = 0
  private cancelRequested = false
  private stopped = false
  private firstSuccess?: number
  private wakeUp?: () => void
  private lastProgress = 0
  private flushTimer?: NodeJS.Timeout
  private readonly log: Logger
  /** where each item's previous run failed (a job retry's runs go elsewhere first) */
  private readonly failedOn = new Map<number, NodeId>()

  constructor (
    private readonly c: Pick<JobsComponents, 'tasks' | 'peerId' | 'resolveNode' | 'workers'>,
    private readonly records: JobRecords,
    readonly id: string,
    private doc: JobDoc,
    /** every run's spec (with the env values, when this node has them) */
    private readonly spec: TaskSpec,
    private readonly items: unknown[],
    runs: Array<ItemRun | null>,
    log: Logger,
    /** the client's stream (a submission that did not detach) */
    readonly sink?: EventQueue<JobStreamEvent>,
    /** its type has warm workers: items go to them as batched requests, not as tasks */
    private readonly worker = false,
    /** false: the client asked for no `result` events and no results in `done` (it fetches them, or needs none) */
    private readonly streamResults = true
  ) {
    this.runs = RunTable.from(runs)
    this.inflight = new Inflight(runs.length)
    this.chunks = new ChunkSchedule(runs)
    this.log = log.child({ job: id })
    if (worker && c.workers !== undefined) {
      this.feed = new WorkerFeed(c.workers, spec, doc.maxParallel, {
        runs: this.runs,
        inflight: this.inflight,
        chunks: this.chunks,
        items,
        round: () => this.doc.retries ?? 0,
        ending: () => this.cancelRequested || this.stopped,
        ended: (i, run, res, notify) => { this.ended(i, run, res, notify) },
        completed: i => {
          this.firstSuccess ??= i
          if (this.streamResults && this.sink !== undefined) this.sink.push({ type: 'result', ...resultOf(i, this.items[i] ?? null, this.runs.get(i)) }, true)
        },
        batchDone: () => { this.progress(false); this.wake() }
      })
    }
  }

  /** Asks the job to end: every run is cancelled, and the job is recorded cancelled. */
  requestCancel (): void {
    this.cancelRequested = true
    this.wake()
  }

  /** The node stops: the driver stops here without a verdict (a successor or this node's restart goes on). */
  stop (): void {
    this.stopped = true
    this.wake()
  }

  async drive (): Promise<void> {
    this.flushTimer = setInterval(() => { this.write(this.chunks.due()) }, JOB_FLUSH_MS)
    this.flushTimer.unref()
    try {
      // a job taken over may have its first success already
      for (let i = 0; i < this.runs.length && this.firstSuccess === undefined; i++) {
        const r = this.runs.statusOf(i) === 'completed' ? this.runs.get(i) : null
        if (r !== null && (r.round ?? 0) >= (this.doc.retries ?? 0)) this.firstSuccess = i
      }
      const resend: number[] = []
      for (let i = 0; i < this.runs.length; i++) {
        if (this.runs.statusOf(i) !== 'running') continue
        const r = this.runs.get(i) as ItemRun
        // a warm worker's request has no record to follow: it is sent again; a task's run is followed to its end
        if (this.worker) { this.setRun(i, { ...r, run: r.run + 1 }); resend.push(i) } else this.adopt(i, r.run)
      }
      if (resend.length > 0) this.startAll(resend)
      await this.mapPhase()
      if (this.stopped) return
      if (this.doc.strategy === 'map-reduce' && !this.cancelRequested) await this.reducePhase()
      if (this.stopped) return
      this.finish()
    } catch (err) {
      this.log.error({ err }, 'driving a job failed')
      this.sink?.close(toGridError(err))
    } finally {
      clearInterval(this.flushTimer)
      this.write(this.chunks.all())
    }
  }

  private async mapPhase (): Promise<void> {
    const round = this.doc.retries ?? 0
    for (;;) {
      if (this.stopped) return
      if (this.cancelRequested || decidedEarly(this.doc.aggregate, this.firstSuccess === undefined ? 0 : 1)) { await this.cancelRest(); return }
      const starting: number[] = []
      while (this.inflight.size + starting.length < this.doc.maxParallel && this.cursor < this.runs.length) {
        const i = this.cursor++
        // an item never started needs its run (no ItemRun made to say so)
        if (this.runs.statusOf(i) === undefined) { starting.push(i); continue }
        const prev = this.runs.get(i)
        if (needsRun(prev, round)) {
          if (prev?.status === 'failed' && prev.node !== undefined) this.failedOn.set(i, prev.node)
          starting.push(i)
        }
      }
      if (starting.length > 0) {
        // each task's run is recorded before its task exists, in the same writer document: whoever sees the task
        // sees the run, so a successor never starts an item whose task it cannot find. A warm worker's item has no
        // task to find (a successor sends it again either way): its chunk is written once it has results.
        for (const i of starting) {
          const prev = this.runs.statusOf(i)
          this.runs.setRunning(i, this.runs.runOf(i) + 1, round)
          this.chunks.changed(i, prev, 'running', !this.worker)
        }
        this.write(this.chunks.beforeStart())
        this.startAll(starting)
        continue
      }
      if (this.inflight.size === 0 && this.cursor >= this.runs.length) return
      await this.sleep(1_000)
    }
  }

  /** Starts runs: a warm-worker type's as batched requests to its workers (the feed), any other's as one task each. */
  private startAll (indices: number[]): void {
    if (this.feed !== undefined) { this.feed.start(indices); return }
    for (const i of indices) this.start(i)
  }

  /** Starts item i's run as a task, and reads its stream. */
  private start (i: number): void {
    if (this.feed !== undefined) { this.feed.start([i]); return }
    const r = this.runs.get(i) as ItemRun
    const taskId = runTaskId(this.id, i, r.run)
    const item = this.items[i] ?? null
    const spec: TaskSpec = { ...this.spec, payload: item, job: { id: this.id, index: i } }
    // a run again (job retry) goes first to a node where the item's last run did not fail
    const failedOn = this.failedOn.get(i)
    if (failedOn !== undefined) spec.avoid = [failedOn]
    if (this.doc.strategy === 'broadcast') {
      const node = this.c.resolveNode(itemText(item))
      if (node === undefined) { this.ended(i, r.run, { status: 'failed', error: `node ${itemText(item)} is no longer in the cluster` }); return }
      spec.node = node
    }
    let events: EventQueue<ClientEvent> | undefined
    try {
      events = this.c.tasks.submitSpec(spec, taskId, false).events
    } catch (err) {
      this.ended(i, r.run, { status: 'failed', error: toGridError(err).message })
      return
    }
    this.inflight.set(i, r.run)
    void this.follow(i, r.run, events as EventQueue<ClientEvent>)
  }

  /** Reads a run's task stream: stdout (kept up to its limit), then the exit. */
  private async follow (i: number, run: number, events: AsyncIterable<ClientEvent>): Promise<void> {
    const f = await followTask(events)
    if (f.exit === undefined && this.stopped) return
    this.ended(i, run, runEnd(f))
  }

  /** Follows a run this driver did not start (taken over) through its task record until it ends. */
  private adopt (i: number, run: number): void {
    const taskId = runTaskId(this.id, i, run)
    this.inflight.set(i, run)
    void (async () => {
      const since = Date.now()
      for (;;) {
        if (this.stopped) return
        const rec = this.taskRecord(taskId)
        if (rec === undefined && Date.now() - since > ADOPT_MISSING_MS) { this.restart(i, run, 'its task was never recorded'); return }
        if (rec !== undefined && ['completed', 'failed', 'timeout', 'cancelled'].includes(rec.status)) {
          // a run whose task never started anywhere (its origin died first) starts again; one that ran is counted
          if (rec.status !== 'completed' && rec.startedAt === null && !this.cancelRequested) { this.restart(i, run, rec.error ?? rec.status); return }
          const stdout = await this.stdoutOf(taskId)
          this.ended(i, run, {
            status: rec.status === 'completed' ? 'completed' : rec.status === 'cancelled' ? 'cancelled' : 'failed',
            exitCode: rec.exitCode,
            attempts: rec.attempts,
            stdout,
            ...(rec.node === null ? {} : { node: rec.node }),
            ...(rec.nodeName === null ? {} : { nodeName: rec.nodeName }),
            ...(rec.status === 'completed' ? {} : { error: rec.error ?? rec.status })
          })
          return
        }
        if (this.cancelRequested && rec !== undefined) await this.cancelTask(taskId)
        await delay(ADOPT_POLL_MS)
      }
    })()
  }

  private restart (i: number, run: number, why: string): void {
    if (this.inflight.get(i) !== run) return
    this.inflight.delete(i)
    this.log.info({ index: i, run, why }, 'starting a job\'s run again: its task never ran')
    const round = this.doc.retries ?? 0
    this.setRun(i, { status: 'running', run: run + 1, ...(round > 0 ? { round } : {}) }, true)
    this.write(this.chunks.beforeStart())
    if (this.cancelRequested) { this.ended(i, run + 1, { status: 'cancelled' }); return }
    this.start(i)
  }

  private taskRecord (id: string): TaskRecord | undefined {
    try { return this.c.tasks.get(id) } catch { return undefined }
  }

  /** The stdout of a task that ended, from its executor (best effort). */
  private async stdoutOf (taskId: string): Promise<string> {
    return await stdoutOf(signal => this.c.tasks.logs(taskId, false, signal))
  }

  /** A run ended: record it, tell the client, wake the loop (`notify` false: the caller does, once for many). */
  private ended (i: number, run: number, res: Omit<ItemRun, 'run'>, notify = true): void {
    const cur = this.inflight.get(i)
    if (cur !== undefined && cur !== run) return
    this.inflight.delete(i)
    const round = this.doc.retries ?? 0
    const r: ItemRun = { ...res, run, ...(round > 0 ? { round } : {}) }
    if (r.stdout !== undefined && r.stdout === '') delete r.stdout
    this.setRun(i, r)
    if (r.status === 'completed' && this.firstSuccess === undefined) this.firstSuccess = i
    if (this.streamResults) this.sink?.push({ type: 'result', ...resultOf(i, this.items[i] ?? null, r) }, true)
    if (!notify) return
    this.progress(false)
    this.wake()
  }

  /**
   * Cancels every run in flight and waits for them. Items not started are written nowhere: once the job has its
   * verdict, an item without a run counts as cancelled (a million-item job cancelled early writes nothing per item).
   */
  private async cancelRest (): Promise<void> {
    this.cursor = this.runs.length
    const deadline = Date.now() + CANCEL_WAIT_MS
    let asked = 0
    while (this.inflight.size > 0 && Date.now() < deadline && !this.stopped) {
      // asked again while they run: a cancel that reaches an executor as it forks the process can go unheard there
      // (a warm worker's item is no task: its batch is answered, or times out, as it is)
      if (Date.now() - asked >= CANCEL_AGAIN_MS && !this.worker) {
        asked = Date.now()
        for (const [i, run] of this.inflight.entries()) await this.cancelTask(runTaskId(this.id, i, run))
      }
      await this.sleep(250)
    }
    for (const [i, run] of this.inflight.entries()) this.ended(i, run, { status: 'cancelled', error: 'cancelled; its end was not heard of in time' })
  }

  private async cancelTask (taskId: string): Promise<void> {
    try { await this.c.tasks.cancel(taskId) } catch { /* it ended meanwhile, or is not recorded yet */ }
  }

  /** map-reduce: the reduce runs once, as a task, with every result on its stdin as JSON lines; its stdout is the answer. */
  private async reducePhase (): Promise<void> {
    const run = this.doc.reduceTask === undefined ? 1 : Number(this.doc.reduceTask.split('.').pop()) + 1
    const taskId = reduceTaskId(this.id, run)
    this.doc = { ...this.doc, reduceTask: taskId }
    this.records.writeDoc(this.id, this.doc)
    const { type: _t, payload: _p, job: _j, node: _n, command: _c, ...rest } = this.spec
    const spec: TaskSpec = { ...rest, command: ['sh', '-c', this.doc.reduce ?? 'cat'], retries: 0, stdin: true }
    this.reduceResult = await runReduce(this.c.tasks, spec, taskId, () => this.reduceLines())
  }

  private reduceResult?: ReduceResult

  /** Every result as a JSON line `{index, item, status, exitCode, stdout}`, in index order. */
  private * reduceLines (): Iterable<string> {
    for (let i = 0; i < this.runs.length; i++) {
      const r = this.runs.get(i)
      yield JSON.stringify({ index: i, item: this.items[i] ?? null, status: r?.status ?? 'pending', exitCode: r?.exitCode ?? null, stdout: r?.stdout ?? '' }) + '\n'
    }
  }

  /** The verdict: written into the job's document, and sent to the client with the whole job. */
  private finish (): void {
    let v = verdict(this.doc.aggregate, this.outcomes(), this.runs.length, this.firstSuccess)
    if (this.cancelRequested) v = { status: 'failed', answer: v.answer, error: 'cancelled' }
    if (this.doc.strategy === 'map-reduce' && this.reduceResult !== undefined) {
      const rr = this.reduceResult
      v = !rr.ok
        ? { status: 'failed', answer: rr.stdout, error: rr.error ?? 'the reduce failed' }
        : { ...v, answer: rr.stdout }
    }
    const status = this.cancelRequested ? 'cancelled' : v.status
    this.doc = { ...this.doc, final: status, answer: v.answer, finishedAt: Date.now(), ...(v.error === undefined || status === 'cancelled' ? {} : { error: v.error.slice(0, 4096) }) }
    if (status === 'cancelled') this.doc.error = 'cancelled'
    this.write(this.chunks.all())
    this.records.writeDoc(this.id, this.doc)
    const n = this.runs.counts()
    this.log.info({ status, total: this.runs.length, succeeded: n.completed, failed: n.failed, cancelled: n.cancelled }, 'job ended')
    this.progress(true)
    // counted from the table (no run object per item); the results only when the client asked for them
    if (this.sink !== undefined) this.sink.push({ type: 'done', job: liveJobRecord(this.id, this.doc, this.runs, this.streamResults ? this.items : undefined) })
    this.sink?.close()
  }

  /** Every ended run's outcome, in index order, one at a time (none kept). */
  private * outcomes (): Iterable<RunOutcome> {
    for (let index = 0; index < this.runs.length; index++) {
      const s = this.runs.statusOf(index)
      if (s === undefined || s === 'running') continue
      const r = this.runs.get(index) as ItemRun
      yield { index, status: r.status, exitCode: r.exitCode ?? null, stdout: r.stdout ?? '', ...(r.error === undefined ? {} : { error: r.error }) }
    }
  }

  private progress (force: boolean): void {
    if (this.sink === undefined) return
    const now = Date.now()
    if (!force && now - this.lastProgress < JOB_PROGRESS_EVERY_MS) return
    this.lastProgress = now
    const n = this.runs.counts()
    const failed = n.failed + n.cancelled
    const done = n.completed + failed
    this.sink.push({ type: 'progress', done, running: this.inflight.size, failed, total: this.runs.length }, true)
  }

  /** Item i's run is now `next`; `mustRecord`: it is written before its task is submitted. */
  private setRun (i: number, next: ItemRun, mustRecord = false): void {
    const prev = this.runs.statusOf(i)
    this.runs.set(i, next)
    this.chunks.changed(i, prev, next.status, mustRecord)
  }

  /** Writes these progress chunks as they are now (together: few state updates for many chunks). */
  private write (chunks: number[]): void {
    if (chunks.length === 0) return
    const runsOf = (n: number): Array<ItemRun | null> => this.runs.slice(n * JOB_CHUNK_ITEMS, (n + 1) * JOB_CHUNK_ITEMS)
    // a write the state refuses must not end the daemon (this runs in a timer): the driver keeps every run, and the
    // chunk is written again with the next change or at the end
    try {
      this.records.writeRuns(this.id, chunks, runsOf)
    } catch {
      // one at a time, to tell which (a chunk over the entry limit) and write the others
      for (const n of chunks) {
        try {
          this.records.writeRuns(this.id, [n], runsOf)
        } catch (err) {
          this.log.error({ err, chunk: n }, 'cannot record a progress chunk of the job')
        }
      }
    }
  }

  /** Every item's run as this driver knows it now (ahead of what is written: see progress.ts). */
  get currentRuns (): ReadonlyArray<ItemRun | null> { return this.runs.toArray() }

  /** The same, as the driver's own table (read it; never write it). */
  get table (): RunTable { return this.runs }

  private wake (): void {
    this.wakeUp?.()
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(done, ms)
      this.wakeUp = done
      function done (): void { clearTimeout(t); resolve() }
    })
    this.wakeUp = undefined
  }

  /** The node driving it (for records and logs). */
  get driver (): NodeId { return this.c.peerId }
}

/** Whether an item needs a run now: never started, or (after `job retry`, round > 0) not succeeded before this round. */
export function needsRun (r: ItemRun | null, round: number): boolean {
  if (r === null) return true
  if (r.status === 'running' || r.status === 'completed') return false
  return (r.round ?? 0) < round
}
