/**
 * Workflow records in the replicated `workflows` collection. Each writer keeps its own entries: the driver the
 * workflow's document (definition and job states), each job's state as it changed since (one small entry per job,
 * so a start or an end does not rewrite the whole document) and the kept stdout of each job, anyone who pauses,
 * resumes or cancels it a mark. What everyone shows is the merge: the document with the newest stamp (a successor's
 * replaces its dead origin's), each job's state from it or from a newer job entry of any writer, the newest pause
 * mark of any writer, any cancel mark since the last retry.
 */
import {
  workflowEntry, workflowKeys, workflowTaskId,
  type WorkflowDoc, type WorkflowEntry, type WorkflowJobRecord, type WorkflowJobState, type WorkflowRecord, type WorkflowStatus
} from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { compareStamps, type StateStore, type StoredEntry } from '../state/index.ts'

export type WorkflowStore = Pick<StateStore, 'selfId' | 'set' | 'entryOf' | 'lookupAll' | 'groupAll'>

export interface MergedWorkflow {
  doc: WorkflowDoc
  writer: NodeId
  paused: boolean
  cancelRequested: boolean
}

export class WorkflowRecords {
  constructor (private readonly store: WorkflowStore) {}

  /**
   * This writer's entry of a workflow, its document (if any) with the job states it wrote since: a mark written into
   * the entry stamps the document anew, which must not make it newer than what its job entries say.
   */
  private own (id: string, withDoc = true): WorkflowEntry {
    const e = this.store.entryOf(this.store.selfId, 'workflows', workflowKeys.doc(id))
    if (e === undefined || !workflowEntry.check(e.value)) return {}
    const { doc, ...marks } = e.value
    if (doc === undefined || !withDoc) return marks
    const self = this.store.selfId
    return { ...marks, doc: overlay(doc, e.stamp, n => { const j = this.store.entryOf(self, 'workflows', workflowKeys.job(id, n)); return j === undefined ? [] : [j] }) }
  }

  writeDoc (id: string, doc: WorkflowDoc): void {
    this.store.set('workflows', workflowKeys.doc(id), { ...this.own(id, false), doc } satisfies WorkflowEntry)
  }

  /** One job's state, as its driver changed it since it last wrote the document. */
  writeJob (id: string, job: string, state: WorkflowJobState): void {
    this.store.set('workflows', workflowKeys.job(id, job), { job: state } satisfies WorkflowEntry)
  }

  writePause (id: string, paused: boolean): void {
    this.store.set('workflows', workflowKeys.doc(id), { ...this.own(id), pause: { at: Date.now(), paused } } satisfies WorkflowEntry)
  }

  writeCancel (id: string): void {
    this.store.set('workflows', workflowKeys.doc(id), { ...this.own(id), cancel: { at: Date.now() } } satisfies WorkflowEntry)
  }

  writeStdout (id: string, job: string, stdout: string): void {
    this.store.set('workflows', workflowKeys.out(id, job), { stdout } satisfies WorkflowEntry)
  }

  /** A job's kept stdout (the newest any writer recorded; '' when none). */
  stdout (id: string, job: string): string {
    let best: StoredEntry | undefined
    for (const e of this.store.lookupAll('workflows', workflowKeys.out(id, job))) {
      if (!workflowEntry.check(e.value) || e.value.stdout === undefined) continue
      if (best === undefined || compareStamps(e.stamp, best.stamp) > 0) best = e
    }
    return (best?.value as WorkflowEntry | undefined)?.stdout ?? ''
  }

  doc (id: string): MergedWorkflow | undefined {
    return mergeWorkflow(this.store.lookupAll('workflows', workflowKeys.doc(id)), n => this.store.lookupAll('workflows', workflowKeys.job(id, n)))
  }

  /** Every workflow's merged document, newest first. */
  docs (): Array<[string, MergedWorkflow]> {
    const out: Array<[string, MergedWorkflow]> = []
    const all = this.store.groupAll('workflows')
    for (const [key, entries] of all) {
      if (!workflowKeys.isDoc(key)) continue
      const m = mergeWorkflow(entries, n => all.get(workflowKeys.job(key, n)) ?? [])
      if (m !== undefined) out.push([key, m])
    }
    return out.sort((a, b) => b[1].doc.createdAt - a[1].doc.createdAt || (a[0] < b[0] ? 1 : -1))
  }
}

/** The document with each job's state replaced by a newer job entry's, where one is (the document itself kept). */
function overlay (doc: WorkflowDoc, stamp: StoredEntry['stamp'], jobEntries: (job: string) => StoredEntry[]): WorkflowDoc {
  let jobs: WorkflowDoc['jobs'] | undefined
  for (const n of doc.order) {
    let best: StoredEntry | undefined
    for (const e of jobEntries(n)) {
      if (compareStamps(e.stamp, (best ?? { stamp }).stamp) <= 0 || !workflowEntry.check(e.value) || e.value.job === undefined) continue
      best = e
    }
    if (best === undefined) continue
    jobs ??= { ...doc.jobs }
    jobs[n] = (best.value as WorkflowEntry).job as WorkflowJobState
  }
  return jobs === undefined ? doc : { ...doc, jobs }
}

/** The merge of a workflow's entries (jobEntries: the entries of each job's state, by job name). */
export function mergeWorkflow (entries: StoredEntry[], jobEntries: (job: string) => StoredEntry[] = () => []): MergedWorkflow | undefined {
  let best: StoredEntry<WorkflowEntry> | undefined
  let pause: { at: number, paused: boolean } | undefined
  const cancels: number[] = []
  for (const e of entries) {
    if (!workflowEntry.check(e.value)) continue
    const v = e.value
    if (v.pause !== undefined && (pause === undefined || v.pause.at > pause.at)) pause = v.pause
    if (v.cancel !== undefined) cancels.push(v.cancel.at)
    if (v.doc !== undefined && (best === undefined || compareStamps(e.stamp, best.stamp) > 0)) best = e as StoredEntry<WorkflowEntry>
  }
  const recorded = best?.value.doc
  if (best === undefined || recorded === undefined) return undefined
  const doc = overlay(recorded, best.stamp, jobEntries)
  const since = doc.retriedAt ?? 0
  return { doc, writer: best.writer, paused: pause !== undefined && pause.paused && pause.at >= since, cancelRequested: cancels.some(at => at >= since) }
}

export function statusOf (m: Pick<MergedWorkflow, 'doc' | 'paused'>): WorkflowStatus {
  return m.doc.final ?? (m.paused ? 'paused' : 'running')
}

const iso = (ms: number | undefined): string | null => ms === undefined ? null : new Date(ms).toISOString()

export function jobRecord (id: string, doc: WorkflowDoc, name: string): WorkflowJobRecord {
  const s = doc.jobs[name] ?? { status: 'pending', run: 0 }
  const def = doc.defs[name]
  return {
    name,
    status: s.status,
    needs: def?.needs ?? [],
    node: s.node ?? null,
    nodeName: s.nodeName ?? null,
    attempts: s.attempts ?? 0,
    exitCode: s.exitCode ?? null,
    startedAt: iso(s.startedAt),
    endedAt: iso(s.endedAt),
    taskId: def?.distribute === false && s.run > 0 ? workflowTaskId(id, name, s.run) : null,
    jobId: s.jobId ?? null,
    error: s.error ?? null
  }
}

export function toWorkflowRecord (id: string, m: Pick<MergedWorkflow, 'doc' | 'paused'>): WorkflowRecord {
  const doc = m.doc
  return {
    id,
    name: doc.name,
    status: statusOf(m),
    jobs: doc.order.map(n => jobRecord(id, doc, n)),
    driver: doc.driver,
    driverName: doc.driverName,
    createdAt: new Date(doc.createdAt).toISOString(),
    finishedAt: iso(doc.finishedAt),
    error: doc.error ?? null
  }
}
