import { healthEntries } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** GET /v1/health: per node: state, heartbeat age, probe round trip, recent history. */
export function healthRoute (deps: ControlDeps): Route {
  return { method: 'GET', path: '/health', handler: () => ({ json: healthEntries(deps) }) }
}
