import { JoinRequestSchema } from '../../../proto/api-bodies.ts'
import { validator } from '../../../proto/index.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

const JoinRequest = validator(JoinRequestSchema)

/** POST /v1/join {addrs}: dials members now (to join a cluster, or to merge two halves of one). */
export function joinRoute (deps: ControlDeps): Route {
  return {
    method: 'POST',
    path: '/join',
    handler: async req => {
      const body = JoinRequest.parseUser(await req.body(), 'join request')
      const result = await deps.mesh.join(body.addrs, req.signal)
      return { json: result }
    }
  }
}
