import { PutSessionSchema } from '../../../proto/api-bodies.ts'
import { validator, type SessionEntry } from '../../../proto/index.ts'
import { InvalidArgumentError, parseDuration } from '../../interface/index.ts'
import type { SessionRecord } from '../../state/index.ts'
import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

const PutSession = validator(PutSessionSchema)

function toEntry (deps: ControlDeps, s: SessionRecord): SessionEntry {
  const ownerName = s.owner === null ? null : (deps.nodeRegistry.get(s.owner)?.value.name ?? null)
  return { ...s, ownerName }
}

export function sessionRoutes (deps: ControlDeps): Route[] {
  return [
    { method: 'GET', path: '/sessions', handler: () => ({ json: deps.sessions.list().map(s => toEntry(deps, s)) }) },
    { method: 'GET', path: '/sessions/:id', handler: req => ({ json: toEntry(deps, deps.sessions.require(req.params.id as string)) }) },
    {
      method: 'PUT',
      path: '/sessions/:id',
      handler: async req => {
        const body = await req.body()
        if (body === undefined) throw new InvalidArgumentError('PUT /v1/sessions/ID needs a JSON body {"value": ..., "ttl": "30m", "owner": "NODE"}')
        const b = PutSession.parseUser(body, 'session')
        if (!('value' in (body as object))) throw new InvalidArgumentError('invalid session: value is required')
        let ttlMs: number | null | undefined
        if (typeof b.ttl === 'string') {
          const ms = parseDuration(b.ttl)
          if (ms === undefined || ms <= 0) throw new InvalidArgumentError(`invalid session: ttl ${JSON.stringify(b.ttl)} is not a positive duration (as in "30s", "15m", "2h")`)
          ttlMs = ms
        } else if (b.ttl === null) ttlMs = null
        const owner = typeof b.owner === 'string' ? findNode(deps, b.owner).id : b.owner
        const opts: { ttlMs?: number | null, owner?: string | null } = {}
        if (ttlMs !== undefined) opts.ttlMs = ttlMs
        if (owner !== undefined) opts.owner = owner
        const entry = toEntry(deps, deps.sessions.put(req.params.id as string, b.value, opts))
        // acknowledged means logged: the write is in this node's log before the answer
        await deps.state.flush()
        return { json: entry }
      }
    },
    {
      method: 'DELETE',
      path: '/sessions/:id',
      handler: req => {
        deps.sessions.remove(req.params.id as string)
        return { json: { id: req.params.id, deleted: true } }
      }
    }
  ]
}
