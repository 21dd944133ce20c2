import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import { queryString } from '../query.ts'
import type { Route } from '../server.ts'
import { InvalidArgumentError } from '../../interface/index.ts'

/**
 * Queue control (issue 12). GET /v1/queue[?node=N]: what waits in every alive node's queue; POST /v1/queue/pause
 * and /v1/queue/resume with {"node": N} or {"all": true}.
 */
export function queueRoutes (deps: ControlDeps): Route[] {
  const target = async (body: unknown): Promise<string | undefined> => {
    const b = (body ?? {}) as { node?: unknown, all?: unknown }
    if (b.all === true && b.node === undefined) return undefined
    if (typeof b.node === 'string' && b.node !== '' && b.all !== true) return findNode(deps, b.node).id
    throw new InvalidArgumentError('give either "node" (a node id or name) or "all": true')
  }
  return [
    {
      method: 'GET',
      path: '/queue',
      handler: async req => {
        const node = queryString(req.query, 'node')
        return { json: await deps.queue.list(node === undefined ? undefined : findNode(deps, node).id) }
      }
    },
    { method: 'POST', path: '/queue/pause', handler: async req => ({ json: await deps.queue.setPaused(true, await target(await req.body())) }) },
    {
      // gridctl rebalance [--dry-run]: every node with room takes the queued work it can run, now
      method: 'POST',
      path: '/rebalance',
      handler: async req => {
        const b = ((await req.body()) ?? {}) as { dryRun?: unknown }
        if (b.dryRun !== undefined && typeof b.dryRun !== 'boolean') throw new InvalidArgumentError('"dryRun" must be true or false')
        return { json: await deps.stealer.rebalance(b.dryRun === true) }
      }
    },
    { method: 'POST', path: '/queue/resume', handler: async req => ({ json: await deps.queue.setPaused(false, await target(await req.body())) }) }
  ]
}
