import { JOB_REQUEST_MAX_BYTES, JOB_STATUSES } from '../../../proto/index.ts'
import type { ControlDeps } from '../deps.ts'
import { QUERY_LIMIT_MAX, queryChoice, queryFlag, queryInteger } from '../query.ts'
import type { Route } from '../server.ts'

/** POST /v1/jobs (NDJSON: accepted, progress, result, done), GET /v1/jobs, GET /v1/jobs/ID, cancel and retry. */
export function jobRoutes (deps: ControlDeps): Route[] {
  const jobs = deps.jobs
  return [
    {
      method: 'POST',
      path: '/jobs',
      maxBodyBytes: JOB_REQUEST_MAX_BYTES,
      handler: async req => {
        const body = await req.body()
        // a synced tree, as for a task: the manifest is stored as a blob, and every run's spec carries its hash
        if (body !== null && typeof body === 'object' && 'sync' in body && deps.sync !== undefined) (body as { sync: unknown }).sync = await deps.sync.accept((body as { sync: unknown }).sync)
        const { id, events } = jobs.submit(body)
        // accepted means recorded, as for a task: the record is in this node's log (and on its way to the peers, which
        // a successor needs) before the client hears the id
        await deps.state.flush()
        if (events === undefined) return { status: 201, json: { id } }
        // a client that goes away before the end takes its job with it (Ctrl-C in gridctl cancels it explicitly)
        req.signal.addEventListener('abort', () => {
          try { if (jobs.summary(id).finishedAt === null) jobs.cancel(id) } catch { /* it ended meanwhile */ }
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
    {
      // ?results=0: the job without its per-item results (a large job's are large, and are written a slice at a time)
      method: 'GET',
      path: '/jobs/:id',
      handler: req => (req.query.has('results') && !queryFlag(req.query, 'results') ? { json: jobs.summary(req.params.id as string) } : { jsonParts: jobs.resultParts(req.params.id as string) })
    },
    { method: 'POST', path: '/jobs/:id/cancel', handler: req => ({ json: jobs.cancel(req.params.id as string) }) },
    { method: 'POST', path: '/jobs/:id/retry', handler: req => ({ json: jobs.retry(req.params.id as string) }) }
  ]
}
