import { ConflictError } from '../../interface/index.ts'
import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** DELETE /v1/nodes/:id: forgets a dead or departed node everywhere (registry entry and documents). */
export function forgetNodeRoute (deps: ControlDeps): Route {
  return {
    method: 'DELETE',
    path: '/nodes/:id',
    handler: req => {
      const n = findNode(deps, req.params.id as string)
      if (n.self) throw new ConflictError('a node cannot forget itself; stop it, then run gridctl nodes forget on another node')
      if (n.state === 'alive' || n.state === 'suspect') throw new ConflictError(`node ${n.name} is ${n.state}; only a dead or departed node can be forgotten (stop it first)`)
      deps.forgotten.forget(n.id)
      deps.membership.forget(n.id)
      return { json: { id: n.id, name: n.name, forgotten: true } }
    }
  }
}
