import type { DiscoverEntry } from '../../../proto/index.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** GET /v1/discover: asks the DHT rendezvous now; who answered, with addresses, membership and connection. */
export function discoverRoute (deps: ControlDeps): Route {
  return {
    method: 'GET',
    path: '/discover',
    handler: async req => {
      const found = await deps.mesh.discover(req.signal)
      const members = new Map(deps.membership.view().map(m => [m.id, m.state]))
      const out: DiscoverEntry[] = found.map(f => {
        const state = members.get(f.id)
        return { id: f.id, addrs: f.addrs, member: state === 'alive' || state === 'suspect', connected: deps.mesh.isConnected(f.id), source: 'dht' }
      })
      return { json: out }
    }
  }
}
