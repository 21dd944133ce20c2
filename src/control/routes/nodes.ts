import { MEMBER_STATES } from '../../interface/index.ts'
import { findNode, nodeEntries } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import { queryChoice } from '../query.ts'
import type { Route } from '../server.ts'

/** GET /v1/nodes: every known node (a JSON array); ?state=alive filters. */
export function listNodesRoute (deps: ControlDeps): Route {
  return {
    method: 'GET',
    path: '/nodes',
    handler: req => {
      const state = queryChoice(req.query, 'state', MEMBER_STATES)
      const all = nodeEntries(deps)
      return { json: state === undefined ? all : all.filter(n => n.state === state) }
    }
  }
}

/** GET /v1/nodes/:id: one node by peer id, name or unique id prefix. */
export function getNodeRoute (deps: ControlDeps): Route {
  return { method: 'GET', path: '/nodes/:id', handler: req => ({ json: findNode(deps, req.params.id as string) }) }
}
