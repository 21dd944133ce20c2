import type { TaskEvent } from '../../../proto/index.ts'
import { InvalidArgumentError, TASK_STATUS_SET } from '../../interface/index.ts'
import type { ClientEvent } from '../../tasks/index.ts'
import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

type Encoding = 'utf8' | 'base64'

/** NDJSON form of a client event: output bytes as text (or base64 when asked). */
function wire (ev: ClientEvent, enc: Encoding): unknown {
  if (ev.type === 'output') return { type: 'output', stream: ev.stream === 1 ? 'stdout' : 'stderr', offset: ev.offset, data: Buffer.from(ev.data).toString(enc) }
  return ev
}

function wireLog (ev: TaskEvent, enc: Encoding): unknown {
  if (ev.k === 'out') return { type: 'output', stream: ev.s === 1 ? 'stdout' : 'stderr', offset: ev.o, data: Buffer.from(ev.d).toString(enc) }
  if (ev.k === 'gap') return { type: 'gap', bytes: ev.bytes }
  if (ev.k === 'started') return { type: 'started', pid: ev.pid, gpus: ev.gpus }
  return { type: 'admitted', node: ev.node, nodeName: ev.nodeName, queued: ev.queued }
}

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
        const { id, opts, events } = tasks.submit(await req.body())
        if (events === undefined) return { status: 201, json: { id } }
        return { stream: mapStream(events, ev => wire(ev, opts.encoding)) }
      }
    },
    {
      method: 'GET',
      path: '/tasks',
      handler: req => {
        const status = req.query.get('status') ?? undefined
        if (status !== undefined && !TASK_STATUS_SET.has(status)) throw new InvalidArgumentError(`status must be one of ${[...TASK_STATUS_SET].join(', ')}`)
        const node = req.query.get('node') ?? undefined
        const limit = Number(req.query.get('limit') ?? '0')
        const filter: { status?: string, node?: string } = {}
        if (status !== undefined) filter.status = status
        if (node !== undefined) filter.node = node
        const list = tasks.list(filter)
        return { json: limit > 0 ? list.slice(0, limit) : list }
      }
    },
    { method: 'GET', path: '/tasks/:id', handler: req => ({ json: tasks.get(req.params.id as string) }) },
    { method: 'POST', path: '/tasks/:id/cancel', handler: async req => ({ json: await tasks.cancel(req.params.id as string) }) },
    {
      method: 'GET',
      path: '/tasks/:id/logs',
      handler: req => {
        const follow = req.query.get('follow') === '1' || req.query.get('follow') === 'true'
        const enc: Encoding = req.query.get('encoding') === 'base64' ? 'base64' : 'utf8'
        return { stream: mapStream(tasks.logs(req.params.id as string, follow, req.signal), ev => wireLog(ev, enc)) }
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
