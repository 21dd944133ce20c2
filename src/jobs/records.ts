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

/** The replicated store as job records use it. */
export type JobStore = Pick<StateStore, 'selfId' | 'set' | 'entryOf' | 'lookupAll' | 'groupAll'>

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

  writeItems (id: string, chunk: number, items: unknown[]): void {
    this.store.set('jobs', jobKeys.items(id, chunk), { items } satisfies JobEntry)
  }

  /** Chunk `chunk`'s runs, by column (run-columns.ts). */
  writeRuns (id: string, chunk: number, runs: ReadonlyArray<ItemRun | null>): void {
    this.store.set('jobs', jobKeys.runs(id, chunk), { cols: toColumns(runs) } satisfies JobEntry)
  }

  doc (id: string): MergedDoc | undefined {
    return mergeDoc(this.store.lookupAll('jobs', jobKeys.doc(id)))
  }

  /** Every job's merged document, newest first. */
  docs (): Array<[string, MergedDoc]> {
    const out: Array<[string, MergedDoc]> = []
    for (const [key, entries] of this.store.groupAll('jobs')) {
      if (!jobKeys.isDoc(key)) continue
      const d = mergeDoc(entries)
      if (d !== undefined) out.push([key, d])
    }
    return out.sort((a, b) => b[1].doc.createdAt - a[1].doc.createdAt || (a[0] < b[0] ? 1 : -1))
  }

  /** The job's items (undefined where a chunk has not arrived). */
  items (id: string, total: number): unknown[] {
    const out: unknown[] = new Array(total)
    for (let c = 0; c * JOB_CHUNK_ITEMS < total; c++) {
      for (const e of this.store.lookupAll('jobs', jobKeys.items(id, c))) {
        if (!jobEntry.check(e.value) || e.value.items === undefined) continue
        e.value.items.forEach((item, i) => { out[c * JOB_CHUNK_ITEMS + i] = item })
        break
      }
    }
    return out
  }

  /** Every item's most advanced run, as every writer recorded it (null: not started). */
  runs (id: string, total: number): Array<ItemRun | null> {
    const out: Array<ItemRun | null> = new Array<ItemRun | null>(total).fill(null)
    for (let c = 0; c * JOB_CHUNK_ITEMS < total; c++) {
      for (const e of this.store.lookupAll('jobs', jobKeys.runs(id, c))) {
        if (!jobEntry.check(e.value)) continue
        const written = e.value.cols !== undefined ? fromColumns(e.value.cols) : e.value.runs
        written?.forEach((r, i) => {
          const at = c * JOB_CHUNK_ITEMS + i
          if (at < total && r !== null && ahead(r, out[at] ?? null)) out[at] = r
        })
      }
    }
    return out
  }

  /** The job as gridctl shows it; `results` adds every item's result; `live`: its driver's runs here, if it has one. */
  record (id: string, withResults: boolean, live?: ReadonlyArray<ItemRun | null>): JobRecord | undefined {
    const m = this.doc(id)
    if (m === undefined) return undefined
    const runs = live?.length === m.doc.total ? live : this.runs(id, m.doc.total)
    return toJobRecord(id, m.doc, runs, withResults ? this.items(id, m.doc.total) : undefined)
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

export function toJobRecord (id: string, doc: JobDoc, runs: ReadonlyArray<ItemRun | null>, items?: unknown[]): JobRecord {
  let succeeded = 0
  let failed = 0
  let cancelled = 0
  let running = 0
  // a job with its verdict never starts an item that has no run: it was cancelled (first-success, a cancel)
  const ended = doc.final !== undefined
  for (const r of runs) {
    if (r === null) { if (ended) cancelled++; continue }
    if (r.status === 'completed') succeeded++
    else if (r.status === 'failed') failed++
    else if (r.status === 'cancelled') cancelled++
    else running++
  }
  const rec: JobRecord = {
    id,
    strategy: doc.strategy,
    aggregate: doc.aggregate,
    status: statusOfJob(doc, runs),
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
  if (items !== undefined) rec.results = runs.map((r, index) => resultOf(index, items[index] ?? null, r, ended))
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
