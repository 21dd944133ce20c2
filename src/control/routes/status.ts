import type { StatusResponse } from '../../../proto/index.ts'
import { MEMBER_STATES, type MemberState } from '../../interface/index.ts'
import { nodeEntries } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** GET /v1/status: this node, its addresses and the cluster's counts by state. */
export function statusRoute (deps: ControlDeps): Route {
  return {
    method: 'GET',
    path: '/status',
    handler: () => {
      const view = nodeEntries(deps)
      const counts = Object.fromEntries(MEMBER_STATES.map(s => [s, 0])) as Record<MemberState, number>
      for (const v of view) counts[v.state]++
      const c = deps.config
      const body: StatusResponse = {
        id: deps.mesh.peerId,
        name: c.name,
        cluster: c.cluster,
        version: deps.version,
        addrs: deps.mesh.addrs(),
        region: c.region,
        labels: { ...c.labels },
        capabilities: [...c.capabilities],
        state: deps.membership.getSelfState(),
        startedAt: new Date(deps.startedAt).toISOString(),
        uptimeMs: Date.now() - deps.startedAt,
        dataDir: c.dataDir,
        socket: c.socket,
        swarmKeyProtected: !c.insecureNoSwarmKey,
        swarmKeyFingerprint: deps.swarmKeyFingerprint,
        metrics: deps.metricsStatus(),
        connections: deps.mesh.connections().length,
        counts: { ...counts, total: view.length },
        limits: deps.limits()
      }
      return { json: body }
    }
  }
}
