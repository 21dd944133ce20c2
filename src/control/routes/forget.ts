import { ConflictError, NotFoundError } from '../../interface/index.ts'
import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/**
 * DELETE /v1/nodes/:id: forgets a dead or departed node everywhere (registry entry and documents). The id may also be
 * any writer whose documents this node holds though it never registered (a rogue writer): its full peer id only.
 */
export function forgetNodeRoute (deps: ControlDeps): Route {
  return {
    method: 'DELETE',
    path: '/nodes/:id',
    handler: req => {
      const id = req.params.id as string
      let n: ReturnType<typeof findNode>
      try {
        n = findNode(deps, id)
      } catch (err) {
        if (!(err instanceof NotFoundError) || !deps.forgotten.isWriter(id) || id === deps.mesh.peerId) throw err
        deps.forgotten.forget(id)
        deps.membership.forget(id)
        return { json: { id, name: id, forgotten: true } }
      }
      if (n.self) throw new ConflictError('a node cannot forget itself; stop it, then run gridctl nodes forget on another node')
      if (n.state === 'alive' || n.state === 'suspect') throw new ConflictError(`node ${n.name} is ${n.state}; only a dead or departed node can be forgotten (stop it first)`)
      deps.forgotten.forget(n.id)
      deps.membership.forget(n.id)
      return { json: { id: n.id, name: n.name, forgotten: true } }
    }
  }
}
