/**
 * control: the local API that gridctl (or curl --unix-socket) drives.
 *
 * Owns the HTTP/JSON server on the Unix socket, one handler per endpoint under /v1, and the mapping of typed errors
 * to HTTP statuses. It must not hold cluster logic of its own: handlers call the modules through their interfaces.
 */
import type { ControlDeps } from './deps.ts'
import { callRoute, closeSessionRoute } from './routes/call.ts'
import { forgetNodeRoute } from './routes/forget.ts'
import { healthDetailRoute, healthRoute } from './routes/health.ts'
import { queueRoutes } from './routes/queue.ts'
import { poolRoutes } from './routes/pools.ts'
import { discoverRoute } from './routes/discover.ts'
import { joinRoute } from './routes/join.ts'
import { metricsRoute } from './routes/metrics.ts'
import { getNodeRoute, listNodesRoute } from './routes/nodes.ts'
import { sessionRoutes } from './routes/sessions.ts'
import { statusRoute } from './routes/status.ts'
import { stateHashRoute } from './routes/state-hash.ts'
import { taskRoutes } from './routes/tasks.ts'
import { jobRoutes } from './routes/jobs.ts'
import { syncRoutes } from './routes/sync.ts'
import { workflowRoutes } from './routes/workflows.ts'
import type { Route } from './server.ts'
import type { StatsSampler } from './stats.ts'

export { ControlServer, type ApiHandler, type ApiRequest, type ApiResult, type Route, type ControlServerInit } from './server.ts'
export type { ControlDeps } from './deps.ts'

export { StatsSampler } from './stats.ts'

export function routes (deps: ControlDeps, stats: StatsSampler): Route[] {
  return [
    { method: 'GET', path: '/stats', handler: () => ({ json: stats.stats() }) },
    // generated on the first request (not at start): the route table and its schemas as OpenAPI 3.1
    { method: 'GET', path: '/openapi.json', handler: async () => ({ json: (await import('./openapi.ts')).openApiDocument() }) },
    statusRoute(deps),
    stateHashRoute(deps),
    listNodesRoute(deps),
    getNodeRoute(deps),
    forgetNodeRoute(deps),
    healthRoute(deps),
    healthDetailRoute(deps),
    ...queueRoutes(deps),
    ...poolRoutes(deps),
    discoverRoute(deps),
    joinRoute(deps),
    metricsRoute(deps.registry),
    ...sessionRoutes(deps),
    closeSessionRoute(deps),
    callRoute(deps),
    ...taskRoutes(deps),
    ...jobRoutes(deps),
    ...syncRoutes(deps),
    ...workflowRoutes(deps)
  ]
}
