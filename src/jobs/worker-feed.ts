/**
 * A warm-worker job's items on their way to the workers: cut into batched requests (the /v1/call fast path, sized by
 * the batcher), spread over the workers of the cluster, refused items sent again after a backoff, and each batch's
 * replies recorded straight into the driver's table. It owns only the batches in flight between the driver and the
 * workers: the driver decides which items start, and keeps the job's verdict, records and client stream. A batch in
 * flight when its driver dies is sent again by the successor (no record of it exists): worker items run at least once.
 */
import { itemText, type ItemRun, type TaskSpec } from '../../proto/index.ts'
import { toGridError } from '../interface/index.ts'
import type { WorkerCallResult } from '../tasks/index.ts'
import { backoffMs } from '../util/index.ts'
import { capped } from './capture.ts'
import type { JobsComponents } from './components.ts'
import type { Inflight } from './inflight.ts'
import type { ChunkSchedule } from './progress.ts'
import type { RunTable } from './run-table.ts'
import { WorkerBatcher } from './worker-batch.ts'

/** A warm-worker item without a --timeout of its own is deemed stuck after this long (as tasks' worker requests). */
const WORKER_ITEM_TIMEOUT_MS = 5 * 60_000
/** Items the workers refused for now are sent again after a backoff of up to this long. */
const WORKER_REFUSED_RETRY_CAP_MS = 5_000

/** What the feed reads and calls back on its driver (its table, and what a run's end means to the job). */
export interface FeedDriver {
  readonly runs: RunTable
  readonly inflight: Inflight
  readonly chunks: ChunkSchedule
  readonly items: readonly unknown[]
  /** the job's round (job retry) */
  round: () => number
  /** the driver is cancelling or stopping: refused items are not sent again */
  ending: () => boolean
  /** a run ended otherwise than completed (`notify` false: the feed wakes the driver once for the batch) */
  ended: (i: number, run: number, res: Omit<ItemRun, 'run'>, notify?: boolean) => void
  /** item i's run completed through the fast path (recorded in the table already) */
  completed: (i: number) => void
  /** a batch's replies were recorded: one progress check and one wake-up for them all */
  batchDone: () => void
}

export class WorkerFeed {
  /** how many items a warm worker's batch takes */
  private readonly batcher = new WorkerBatcher()

  constructor (
    private readonly workers: NonNullable<JobsComponents['workers']>,
    private readonly spec: TaskSpec,
    private readonly maxParallel: number,
    private readonly d: FeedDriver
  ) {}

  /** Sends these items' runs (recorded running) as batches: a few per host in flight, bounded in bytes. */
  start (indices: readonly number[]): void {
    const hosts = this.workers.hostCount(this.spec.type as string)
    const most = this.batcher.items(this.maxParallel, hosts, this.d.runs.length)
    for (let k = 0; k < indices.length;) {
      const n = this.batcher.take(indices, k, most, i => this.d.items[i] ?? null)
      this.send(indices.slice(k, k + n))
      k += n
    }
  }

  /** One batched request for these items (their runs in flight from now). */
  private send (indices: number[], refusals = 0): void {
    const runsOf = indices.map(i => this.d.runs.runOf(i))
    indices.forEach((i, k) => { this.d.inflight.set(i, runsOf[k] as number) })
    // refused for now (the workers' queues are full, the node drains): sent again after a backoff, as tasks' offers are
    const again = (which: number[]): void => {
      if (which.length === 0) return
      if (this.d.ending()) { which.forEach(i => { this.d.ended(i, this.d.runs.runOf(i), { status: 'cancelled' }) }); return }
      setTimeout(() => { this.send(which, refusals + 1) }, backoffMs(refusals, 250, WORKER_REFUSED_RETRY_CAP_MS)).unref()
    }
    const req = {
      type: this.spec.type as string,
      payloads: indices.map(i => this.d.items[i] ?? null),
      timeoutMs: this.spec.timeoutMs ?? WORKER_ITEM_TIMEOUT_MS,
      priority: this.spec.priority,
      retries: this.spec.retries,
      ...(this.spec.session === undefined ? {} : { session: this.spec.session }),
      ...(this.spec.node === undefined ? {} : { node: this.spec.node })
    }
    this.workers.call(req).then(res => {
      again(this.replies(indices, runsOf, res))
    }, (err: unknown) => {
      const e = toGridError(err)
      if (e.code === 'UNAVAILABLE') { again(indices); return }
      const error = e.message.slice(0, 4096)
      indices.forEach((i, k) => { this.d.ended(i, runsOf[k] as number, { status: 'failed', error }) })
    })
  }

  /**
   * A batch's replies: each item's run recorded straight into the table (a success makes no object but its stdout's
   * text); one progress check and one wake-up for the batch. Returns the items the workers refused for now.
   */
  private replies (indices: number[], runsOf: number[], res: WorkerCallResult): number[] {
    const { runs, inflight, chunks } = this.d
    const round = this.d.round()
    const node = runs.nodeRef(res.node, res.nodeName)
    const refused: number[] = []
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k] as number
      const run = runsOf[k] as number
      const o = res.results[k]
      if (o?.ok !== true) {
        if (o?.code === 'UNAVAILABLE') refused.push(i)
        else this.d.ended(i, run, { node: res.node, nodeName: res.nodeName, attempts: 1, status: 'failed', exitCode: null, error: o === undefined ? 'no reply' : `${o.code}: ${o.error}`.slice(0, 4096) }, false)
        continue
      }
      const cur = inflight.get(i)
      if (cur !== undefined && cur !== run) continue
      inflight.delete(i)
      const stdout = capped(itemText(o.result ?? null))
      this.batcher.observe(stdout.length)
      const prev = runs.statusOf(i)
      runs.setCompleted(i, run, round, node, stdout)
      chunks.changed(i, prev, 'completed')
      this.d.completed(i)
    }
    this.d.batchDone()
    return refused
  }
}
