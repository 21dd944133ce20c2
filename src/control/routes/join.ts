import Type from 'typebox'
import { validator } from '../../../proto/index.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

const JoinRequest = validator(Type.Object({ addrs: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 64 }) }, { additionalProperties: false }))

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
