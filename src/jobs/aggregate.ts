/**
 * Aggregation: a job's verdict from its runs' results (pure). `all-success` succeeds when every run succeeded;
 * `first-success` as soon as one did (the driver then cancels the rest); `majority` when more than half of all runs
 * printed the same trimmed stdout, which is the answer. A failed run is a non-zero exit, a timeout, or a run whose
 * node died past its retries; a cancelled run is not a success either.
 */
import type { JobAggregate, RunStatus } from '../../proto/index.ts'

export interface RunOutcome {
  index: number
  status: RunStatus
  exitCode: number | null
  stdout: string
  error?: string
}

export interface Verdict {
  status: 'completed' | 'failed'
  answer: string | null
  error?: string
}

/** Whether the job's verdict is known before every run ended: first-success once one run succeeded. */
export function decidedEarly (aggregate: JobAggregate, succeeded: number): boolean {
  return aggregate === 'first-success' && succeeded > 0
}

/** Why a run did not succeed, in a few words. */
export function runError (r: RunOutcome): string {
  if (r.error !== undefined && r.error !== '') return r.error
  if (r.status === 'cancelled') return 'cancelled'
  return r.exitCode === null ? r.status : `exit code ${r.exitCode}`
}

/**
 * The verdict over every result (in index order; `firstSuccess` is the index of the run that succeeded first, for
 * first-success's answer). `total` counts every run the job has, finished or not. One pass that keeps no result but
 * the few it answers with (a driver hands a million results one at a time).
 */
export function verdict (aggregate: JobAggregate, results: Iterable<RunOutcome>, total: number, firstSuccess?: number): Verdict {
  let ok = 0
  let firstBad: RunOutcome | undefined
  let firstOk: RunOutcome | undefined
  let chosen: RunOutcome | undefined
  const counts = new Map<string, { n: number, first: number }>()
  for (const r of results) {
    if (r.status !== 'completed') { firstBad ??= r; continue }
    ok++
    firstOk ??= r
    if (r.index === firstSuccess) chosen = r
    if (aggregate !== 'majority') continue
    const k = r.stdout.trim()
    const c = counts.get(k)
    if (c === undefined) counts.set(k, { n: 1, first: r.index })
    else c.n++
  }
  const firstErr = firstBad === undefined ? '' : `; the first: item ${firstBad.index}: ${runError(firstBad)}`
  switch (aggregate) {
    case 'all-success':
      if (ok === total) return { status: 'completed', answer: null }
      return { status: 'failed', answer: null, error: `${total - ok} of ${total} runs did not succeed${firstErr}` }
    case 'first-success': {
      const first = chosen ?? firstOk
      if (first !== undefined) return { status: 'completed', answer: first.stdout.trim() }
      return { status: 'failed', answer: null, error: `none of the ${total} runs succeeded${firstErr}` }
    }
    case 'majority': {
      let best: [string, { n: number, first: number }] | undefined
      for (const e of counts) if (best === undefined || e[1].n > best[1].n || (e[1].n === best[1].n && e[1].first < best[1].first)) best = e
      if (best !== undefined && best[1].n * 2 > total) return { status: 'completed', answer: best[0] }
      const shown = best === undefined ? 'no run succeeded' : `the most common answer, ${JSON.stringify(best[0].length > 80 ? best[0].slice(0, 77) + '...' : best[0])}, came from ${best[1].n}`
      return { status: 'failed', answer: best?.[0] ?? null, error: `no answer came from more than half of the ${total} runs (${shown})${firstErr}` }
    }
  }
}
