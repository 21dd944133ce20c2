import { healthDetail, healthEntries } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** GET /v1/health: per node: state, health, heartbeat age, probe round trip, recent history. */
export function healthRoute (deps: ControlDeps): Route {
  return { method: 'GET', path: '/health', handler: () => ({ json: healthEntries(deps) }) }
}

/** GET /v1/health/:id: one node's health, its last 100 probes and its state changes. */
export function healthDetailRoute (deps: ControlDeps): Route {
  return { method: 'GET', path: '/health/:id', handler: req => ({ json: healthDetail(deps, req.params.id as string) }) }
}
