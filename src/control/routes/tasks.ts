import { encodeStreamEvent, type StreamEncoding } from '../../../proto/index.ts'
import { TASK_STATUS_SET } from '../../interface/index.ts'
import { parseStdinBody } from '../../tasks/index.ts'
import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import { QUERY_LIMIT_MAX, queryChoice, queryFlag, queryInteger, queryString } from '../query.ts'
import type { Route } from '../server.ts'

async function * mapStream<T> (src: AsyncIterable<T>, f: (t: T) => unknown): AsyncGenerator<unknown> {
  for await (const x of src) yield f(x)
}

export function taskRoutes (deps: ControlDeps): Route[] {
  const tasks = deps.tasks
  return [
    {
      method: 'POST',
      path: '/tasks',
      handler: async req => {
        const body = await req.body()
        // a synced tree: the manifest is stored as a blob, and the spec carries its hash (the files were uploaded first)
        if (body !== null && typeof body === 'object' && 'sync' in body && deps.sync !== undefined) (body as { sync: unknown }).sync = await deps.sync.accept((body as { sync: unknown }).sync)
        const { id, opts, events } = tasks.submit(body)
        // accepted means recorded: the task's record is in this node's log before the client hears of it (a cluster
        // killed at once right after the answer lost tasks it had accepted)
        await deps.state.flush()
        if (events === undefined) return { status: 201, json: { id } }
        // a client that goes away before the exit (killed, connection dropped) takes its task with it, as ssh does
        req.signal.addEventListener('abort', () => { void tasks.abandoned(id) }, { once: true })
        return { stream: mapStream(events, ev => encodeStreamEvent(ev, opts.encoding)) }
      }
    },
    {
      method: 'GET',
      path: '/tasks',
      handler: req => {
        const status = queryChoice(req.query, 'status', [...TASK_STATUS_SET])
        const node = queryString(req.query, 'node')
        const limit = queryInteger(req.query, 'limit', { min: 1, max: QUERY_LIMIT_MAX })
        const filter: { status?: string, node?: string } = {}
        if (status !== undefined) filter.status = status
        if (node !== undefined) filter.node = node
        const list = tasks.list(filter)
        return { json: limit === undefined ? list : list.slice(0, limit) }
      }
    },
    { method: 'GET', path: '/tasks/:id', handler: req => ({ json: tasks.get(req.params.id as string) }) },
    {
      // a piece of the stdin of a task submitted here with stdin: true, answered once its executor took it
      method: 'POST',
      path: '/tasks/:id/stdin',
      handler: async req => ({ json: await tasks.writeStdin(req.params.id as string, parseStdinBody(await req.body()), req.signal) })
    },
    { method: 'POST', path: '/tasks/:id/cancel', handler: async req => ({ json: await tasks.cancel(req.params.id as string) }) },
    {
      method: 'GET',
      path: '/tasks/:id/logs',
      handler: req => {
        const follow = queryFlag(req.query, 'follow')
        const enc = queryChoice<StreamEncoding>(req.query, 'encoding', ['utf8', 'base64']) ?? 'utf8'
        return { stream: mapStream(tasks.logs(req.params.id as string, follow, req.signal), ev => encodeStreamEvent(ev, enc)) }
      }
    },
    {
      method: 'POST',
      path: '/nodes/:id/drain',
      handler: async req => {
        const n = findNode(deps, req.params.id as string)
        return { json: { id: n.id, name: n.name, drain: true, ...(await tasks.drain(n.id, true)) } }
      }
    },
    {
      method: 'POST',
      path: '/nodes/:id/undrain',
      handler: async req => {
        const n = findNode(deps, req.params.id as string)
        return { json: { id: n.id, name: n.name, drain: false, ...(await tasks.drain(n.id, false)) } }
      }
    }
  ]
}
