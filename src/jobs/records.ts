/**
 * Job records in the replicated `jobs` collection. Each writer keeps its own entries: the driver the job document
 * and the progress chunks it wrote (by column: run-columns.ts), a canceller its cancel mark. What everyone shows is the merge: the document with
 * the newest stamp (a successor's replaces its dead origin's), every chunk's items from whoever wrote them (they
 * never change), and per item the most advanced run any writer recorded (the higher run number; for the same run, a
 * final status over running).
 */
import {
  JOB_CHUNK_ITEMS, jobEntry, jobKeys,
  type ItemRun, type JobDoc, type JobEntry, type JobRecord, type JobResult, type JobStatus
} from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { compareStamps, type StateStore, type StoredEntry } from '../state/index.ts'
import { fromColumns, toColumns } from './run-columns.ts'
import type { RunTable } from './run-table.ts'

/** The replicated store as job records use it. */
export type JobStore = Pick<StateStore, 'selfId' | 'set' | 'setMany' | 'entryOf' | 'lookupAll' | 'groupAll'>

/** A job's results are made and written this many at a time (GET /v1/jobs/ID): a multiple of JOB_CHUNK_ITEMS. */
export const JOB_RESULTS_SLICE_ITEMS = JOB_CHUNK_ITEMS * 16

export interface MergedDoc {
  doc: JobDoc
  writer: NodeId
  cancelRequested: boolean
}

export class JobRecords {
  constructor (private readonly store: JobStore) {}

  private own (key: string): JobEntry {
    const e = this.store.entryOf(this.store.selfId, 'jobs', key)
    return e !== undefined && jobEntry.check(e.value) ? e.value : {}
  }

  writeDoc (id: string, doc: JobDoc): void {
    this.store.set('jobs', jobKeys.doc(id), { ...this.own(jobKeys.doc(id)), doc } satisfies JobEntry)
  }

  writeCancel (id: string): void {
    this.store.set('jobs', jobKeys.doc(id), { ...this.own(jobKeys.doc(id)), cancel: { at: Date.now(), by: this.store.selfId } } satisfies JobEntry)
  }

  /** Every chunk of the job's items (in few state updates: setMany). */
  writeItems (id: string, items: unknown[]): void {
    const chunks = function * (): Iterable<[string, JobEntry]> {
      for (let c = 0; c * JOB_CHUNK_ITEMS < items.length; c++) yield [jobKeys.items(id, c), { items: items.slice(c * JOB_CHUNK_ITEMS, (c + 1) * JOB_CHUNK_ITEMS) }]
    }
    this.store.setMany('jobs', chunks())
  }

  /** These chunks' runs (`runsOf` each chunk's), by column (run-columns.ts), in few state updates (setMany). */
  writeRuns (id: string, chunks: number[], runsOf: (chunk: number) => ReadonlyArray<ItemRun | null>): void {
    this.store.setMany('jobs', chunks.map(n => [jobKeys.runs(id, n), { cols: toColumns(runsOf(n)) } satisfies JobEntry] as const))
  }

  doc (id: string): MergedDoc | undefined {
    return mergeDoc(this.store.lookupAll('jobs', jobKeys.doc(id)))
  }

  /** Every job's merged document, newest first. */
  docs (): Array<[string, MergedDoc]> {
    const out: Array<[string, MergedDoc]> = []
    // only the documents' keys are read: a job's thousands of item and progress chunks are skipped undecoded
    for (const [key, entries] of this.store.groupAll('jobs', Date.now(), jobKeys.isDoc)) {
      if (!jobKeys.isDoc(key)) continue
      const d = mergeDoc(entries)
      if (d !== undefined) out.push([key, d])
    }
    return out.sort((a, b) => b[1].doc.createdAt - a[1].doc.createdAt || (a[0] < b[0] ? 1 : -1))
  }

  /** The job's items [from, to) (undefined where a chunk has not arrived). */
  items (id: string, total: number, from = 0, to = total): unknown[] {
    const out: unknown[] = new Array(to - from)
    for (let c = Math.floor(from / JOB_CHUNK_ITEMS); c * JOB_CHUNK_ITEMS < to; c++) {
      for (const e of this.store.lookupAll('jobs', jobKeys.items(id, c))) {
        if (!jobEntry.check(e.value) || e.value.items === undefined) continue
        e.value.items.forEach((item, i) => {
          const at = c * JOB_CHUNK_ITEMS + i
          if (at >= from && at < to) out[at - from] = item
        })
        break
      }
    }
    return out
  }

  /** Items [from, to)'s most advanced runs, as every writer recorded them (null: not started). */
  runs (id: string, total: number, from = 0, to = total): Array<ItemRun | null> {
    const out: Array<ItemRun | null> = new Array<ItemRun | null>(to - from).fill(null)
    for (let c = Math.floor(from / JOB_CHUNK_ITEMS); c * JOB_CHUNK_ITEMS < to; c++) {
      for (const e of this.store.lookupAll('jobs', jobKeys.runs(id, c))) {
        if (!jobEntry.check(e.value)) continue
        const written = e.value.cols !== undefined ? fromColumns(e.value.cols) : e.value.runs
        written?.forEach((r, i) => {
          const at = c * JOB_CHUNK_ITEMS + i
          if (at >= from && at < to && at < total && r !== null && ahead(r, out[at - from] ?? null)) out[at - from] = r
        })
      }
    }
    return out
  }

  /**
   * The JSON text of `rec` (a job without its results) with every item's result, in pieces: the results made
   * JOB_RESULTS_SLICE_ITEMS at a time, from its driver's table here (`live`) or the records.
   */
  * resultParts (rec: JobRecord, live?: RunTable): Iterable<string> {
    const head = JSON.stringify(rec)
    yield head.slice(0, -1) + ',"results":['
    const ended = rec.finishedAt !== null
    for (let from = 0; from < rec.total; from += JOB_RESULTS_SLICE_ITEMS) {
      const to = Math.min(rec.total, from + JOB_RESULTS_SLICE_ITEMS)
      const runs = live?.length === rec.total ? live.slice(from, to) : this.runs(rec.id, rec.total, from, to)
      const items = this.items(rec.id, rec.total, from, to)
      const text = JSON.stringify(runs.map((r, k) => resultOf(from + k, items[k] ?? null, r, ended)))
      yield (from > 0 ? ',' : '') + text.slice(1, -1)
    }
    yield ']}'
  }

  /** The job as gridctl shows it; `results` adds every item's result; `live`: its driver's runs here, if it has one. */
  record (id: string, withResults: boolean, live?: RunTable): JobRecord | undefined {
    const m = this.doc(id)
    if (m === undefined) return undefined
    if (live?.length === m.doc.total) return liveJobRecord(id, m.doc, live, withResults ? this.items(id, m.doc.total) : undefined)
    return toJobRecord(id, m.doc, this.runs(id, m.doc.total), withResults ? this.items(id, m.doc.total) : undefined)
  }
}

/** Whether run `a` is further along than `b`. */
export function ahead (a: ItemRun, b: ItemRun | null): boolean {
  if (b === null) return true
  if (a.run !== b.run) return a.run > b.run
  return a.status !== 'running' && b.status === 'running'
}

export function mergeDoc (entries: StoredEntry[]): MergedDoc | undefined {
  let best: StoredEntry<JobEntry> | undefined
  const cancels: number[] = []
  for (const e of entries) {
    if (!jobEntry.check(e.value)) continue
    if (e.value.cancel !== undefined) cancels.push(e.value.cancel.at)
    if (e.value.doc === undefined) continue
    if (best === undefined || compareStamps(e.stamp, best.stamp) > 0) best = e as StoredEntry<JobEntry>
  }
  if (best?.value.doc === undefined) return undefined
  // a cancel of an earlier round (before a job retry) does not cancel this one
  const since = best.value.doc.retriedAt ?? 0
  return { doc: best.value.doc, writer: best.writer, cancelRequested: cancels.some(at => at >= since) }
}

export function statusOfJob (doc: JobDoc, runs: ReadonlyArray<ItemRun | null>): JobStatus {
  if (doc.final !== undefined) return doc.final
  return runs.some(r => r !== null) ? 'running' : 'pending'
}

/** How many items have no run, and how many a run of each status. */
export type RunCounts = Record<ItemRun['status'] | 'none', number>

export function countRuns (runs: ReadonlyArray<ItemRun | null>): RunCounts {
  const n: RunCounts = { none: 0, running: 0, completed: 0, failed: 0, cancelled: 0 }
  for (const r of runs) n[r === null ? 'none' : r.status]++
  return n
}

export function toJobRecord (id: string, doc: JobDoc, runs: ReadonlyArray<ItemRun | null>, items?: unknown[]): JobRecord {
  const ended = doc.final !== undefined
  return jobRecord(id, doc, countRuns(runs), items === undefined ? undefined : runs.map((r, index) => resultOf(index, items[index] ?? null, r, ended)))
}

/** The job from its driver's own table of runs: counted in one pass, an object made per item only for its results. */
export function liveJobRecord (id: string, doc: JobDoc, runs: RunTable, items?: unknown[]): JobRecord {
  const ended = doc.final !== undefined
  let results: JobResult[] | undefined
  if (items !== undefined) {
    results = new Array<JobResult>(runs.length)
    for (let i = 0; i < runs.length; i++) results[i] = resultOf(i, items[i] ?? null, runs.get(i), ended)
  }
  return jobRecord(id, doc, runs.counts(), results)
}

function jobRecord (id: string, doc: JobDoc, n: RunCounts, results?: JobResult[]): JobRecord {
  // a job with its verdict never starts an item that has no run: it was cancelled (first-success, a cancel)
  const ended = doc.final !== undefined
  const succeeded = n.completed
  const failed = n.failed
  const cancelled = n.cancelled + (ended ? n.none : 0)
  const running = n.running
  const rec: JobRecord = {
    id,
    strategy: doc.strategy,
    aggregate: doc.aggregate,
    status: doc.final ?? (n.running + n.completed + n.failed + n.cancelled > 0 ? 'running' : 'pending'),
    total: doc.total,
    succeeded,
    failed,
    cancelled,
    running,
    pending: doc.total - succeeded - failed - cancelled - running,
    answer: doc.answer ?? null,
    error: doc.error ?? null,
    command: doc.spec.command ?? null,
    type: doc.spec.type ?? null,
    reduce: doc.reduce ?? null,
    maxParallel: doc.maxParallel,
    origin: doc.origin,
    originName: doc.originName,
    driver: doc.driver,
    driverName: doc.driverName,
    createdAt: new Date(doc.createdAt).toISOString(),
    finishedAt: doc.finishedAt === undefined ? null : new Date(doc.finishedAt).toISOString()
  }
  if (results !== undefined) rec.results = results
  return rec
}

export function resultOf (index: number, item: unknown, r: ItemRun | null, ended = false): JobResult {
  const out: JobResult = {
    index,
    item,
    node: r?.node ?? null,
    nodeName: r?.nodeName ?? null,
    status: r?.status ?? (ended ? 'cancelled' : 'pending'),
    exitCode: r?.exitCode ?? null,
    stdout: r?.stdout ?? '',
    attempts: r?.attempts ?? 0
  }
  if (r?.error !== undefined) out.error = r.error
  return out
}
