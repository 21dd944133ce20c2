import { JOB_STATUSES } from '../../../proto/index.ts'
import type { ControlDeps } from '../deps.ts'
import { QUERY_LIMIT_MAX, queryChoice, queryInteger } from '../query.ts'
import type { Route } from '../server.ts'

/** POST /v1/jobs (NDJSON: accepted, progress, result, done), GET /v1/jobs, GET /v1/jobs/ID, cancel and retry. */
export function jobRoutes (deps: ControlDeps): Route[] {
  const jobs = deps.jobs
  return [
    {
      method: 'POST',
      path: '/jobs',
      handler: async req => {
        const { id, events } = jobs.submit(await req.body())
        if (events === undefined) return { status: 201, json: { id } }
        // a client that goes away before the end takes its job with it (Ctrl-C in gridctl cancels it explicitly)
        req.signal.addEventListener('abort', () => {
          try { if (jobs.get(id).finishedAt === null) jobs.cancel(id) } catch { /* it ended meanwhile */ }
        }, { once: true })
        return { stream: events }
      }
    },
    {
      method: 'GET',
      path: '/jobs',
      handler: req => {
        const status = queryChoice(req.query, 'status', JOB_STATUSES)
        const limit = queryInteger(req.query, 'limit', { min: 1, max: QUERY_LIMIT_MAX })
        const list = jobs.list(status === undefined ? {} : { status })
        return { json: limit === undefined ? list : list.slice(0, limit) }
      }
    },
    { method: 'GET', path: '/jobs/:id', handler: req => ({ json: jobs.get(req.params.id as string) }) },
    { method: 'POST', path: '/jobs/:id/cancel', handler: req => ({ json: jobs.cancel(req.params.id as string) }) },
    { method: 'POST', path: '/jobs/:id/retry', handler: req => ({ json: jobs.retry(req.params.id as string) }) }
  ]
}
