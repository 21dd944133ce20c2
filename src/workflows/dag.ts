/**
 * The scheduling of a workflow's DAG (pure): which jobs start now, which are skipped, and whether the workflow has
 * ended. A job starts when every job it needs has succeeded; a job that failed (after its retries) or was cancelled
 * makes its dependants skipped and stops new starts anywhere (jobs running on other branches finish); a paused
 * workflow starts nothing; at most `parallelism` jobs run at once.
 */
import type { WorkflowJobDef, WorkflowJobState } from '../../proto/index.ts'

export interface Plan {
  start: string[]
  skip: string[]
  /** the workflow's end, once nothing runs and nothing more will start */
  done?: 'succeeded' | 'failed'
}

const broken = (s: WorkflowJobState['status'] | undefined): boolean => s === 'failed' || s === 'skipped' || s === 'cancelled'

export function plan (
  order: string[],
  defs: Record<string, Pick<WorkflowJobDef, 'needs'>>,
  jobs: Record<string, Pick<WorkflowJobState, 'status'>>,
  opts: { paused: boolean, parallelism?: number }
): Plan {
  const status = new Map(order.map(n => [n, jobs[n]?.status ?? 'pending']))
  const skip: string[] = []
  // dependants of a broken job are skipped, transitively
  for (let changed = true; changed;) {
    changed = false
    for (const n of order) {
      if (status.get(n) !== 'pending') continue
      if ((defs[n]?.needs ?? []).some(m => broken(status.get(m)))) { status.set(n, 'skipped'); skip.push(n); changed = true }
    }
  }
  let running = 0
  let failed = false
  for (const s of status.values()) {
    if (s === 'running') running++
    if (s === 'failed' || s === 'cancelled') failed = true
  }
  const start: string[] = []
  if (!failed && !opts.paused) {
    const room = opts.parallelism === undefined ? Infinity : opts.parallelism - running
    for (const n of order) {
      if (start.length >= room) break
      if (status.get(n) === 'pending' && (defs[n]?.needs ?? []).every(m => status.get(m) === 'succeeded')) start.push(n)
    }
  }
  if (running > 0 || start.length > 0) return { start, skip }
  if (failed) {
    // nothing runs and nothing more will start: what never started is skipped
    for (const n of order) if (status.get(n) === 'pending') skip.push(n)
    return { start, skip, done: 'failed' }
  }
  const pending = [...status.values()].some(s => s === 'pending')
  if (pending) return { start, skip }
  return { start, skip, done: 'succeeded' }
}
