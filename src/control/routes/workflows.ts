import { WORKFLOW_REQUEST_MAX_BYTES, WORKFLOW_STATUSES } from '../../../proto/index.ts'
import { InvalidArgumentError } from '../../interface/index.ts'
import type { ControlDeps } from '../deps.ts'
import { QUERY_LIMIT_MAX, queryChoice, queryInteger } from '../query.ts'
import type { Route } from '../server.ts'

/**
 * A job's `sync` (a tree uploaded first, as for a task: `gridctl workflow run` uploads each job's `sync: DIR`) becomes
 * the hash of its stored manifest; the job's runs then carry it like any synced task.
 */
async function acceptSynced (deps: ControlDeps, body: unknown): Promise<void> {
  if (body === null || typeof body !== 'object') return
  const jobs = (body as { jobs?: unknown }).jobs
  if (jobs === null || typeof jobs !== 'object' || Array.isArray(jobs)) return
  for (const [name, j] of Object.entries(jobs as Record<string, unknown>)) {
    if (j === null || typeof j !== 'object' || !('sync' in j)) continue
    const job = j as { sync: unknown }
    if (typeof job.sync === 'string') throw new InvalidArgumentError(`invalid workflow: job ${name}: sync ${JSON.stringify(job.sync)} names a directory; upload it first (gridctl workflow run does) and give {"manifest": ...}`)
    if (deps.sync === undefined) throw new InvalidArgumentError(`invalid workflow: job ${name}: this node cannot take synced trees (no sync cache)`)
    job.sync = await deps.sync.accept(job.sync)
  }
}

/** POST /v1/workflows (NDJSON: accepted, job, done), GET /v1/workflows, GET /v1/workflows/ID, pause, resume, cancel, retry. */
export function workflowRoutes (deps: ControlDeps): Route[] {
  const wf = deps.workflows
  return [
    {
      method: 'POST',
      path: '/workflows',
      maxBodyBytes: WORKFLOW_REQUEST_MAX_BYTES,
      handler: async req => {
        const body = await req.body()
        await acceptSynced(deps, body)
        const { id, events } = wf.submit(body)
        // accepted means recorded, as for a task: the record is in this node's log (and on its way to the peers, which
        // a successor needs) before the client hears the id
        await deps.state.flush()
        if (events === undefined) return { status: 201, json: { id } }
        // unlike a job, a workflow goes on when its client goes away: it is cancelled explicitly (gridctl on Ctrl-C)
        return { stream: events }
      }
    },
    {
      method: 'GET',
      path: '/workflows',
      handler: req => {
        const status = queryChoice(req.query, 'status', WORKFLOW_STATUSES)
        const limit = queryInteger(req.query, 'limit', { min: 1, max: QUERY_LIMIT_MAX })
        const list = wf.list(status === undefined ? {} : { status })
        return { json: limit === undefined ? list : list.slice(0, limit) }
      }
    },
    { method: 'GET', path: '/workflows/:id', handler: req => ({ json: wf.get(req.params.id as string) }) },
    { method: 'GET', path: '/workflows/:id/jobs/:job/stdout', handler: req => ({ json: { stdout: wf.stdout(req.params.id as string, req.params.job as string) } }) },
    { method: 'POST', path: '/workflows/:id/pause', handler: req => ({ json: wf.pause(req.params.id as string) }) },
    { method: 'POST', path: '/workflows/:id/resume', handler: req => ({ json: wf.resume(req.params.id as string) }) },
    { method: 'POST', path: '/workflows/:id/cancel', handler: req => ({ json: wf.cancel(req.params.id as string) }) },
    { method: 'POST', path: '/workflows/:id/retry', handler: req => ({ json: wf.retry(req.params.id as string) }) }
  ]
}
