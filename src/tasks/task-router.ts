/**
 * Routing for the coordinator: the routing view of the cluster (rebuilt at most every VIEW_TTL_MS; the dispatch ledger
 * counts what this node sent since the nodes' last load reports), the session's owner, the round-robin turn, and the
 * nodes to avoid (an earlier attempt failed there). Routing (src/routing) ranks; this file only feeds it.
 */
import type { TaskSpec } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { route, type RouteResult } from '../routing/index.ts'
import type { TasksComponents, TasksInit } from './components.ts'
import type { DispatchLedger } from './dispatch-ledger.ts'
import type { TaskMetrics } from './task-metrics.ts'
import { candidates } from './view.ts'

/** The routing view is rebuilt at most this often (the dispatch ledger corrects it in between). */
const VIEW_TTL_MS = 100

export class TaskRouter {
  private turn = 0
  private view?: { at: number, candidates: ReturnType<typeof candidates>, reportedAt: Map<NodeId, number> }

  constructor (
    private readonly c: Pick<TasksComponents, 'peerId' | 'members' | 'nodeRegistry' | 'sessions'>,
    private readonly init: Pick<TasksInit, 'region'>,
    private readonly ledger: DispatchLedger,
    private readonly m: Pick<TaskMetrics, 'routing'>
  ) {}

  route (spec: TaskSpec, failedOn?: ReadonlySet<NodeId>): RouteResult {
    const sessionOwner = spec.session === undefined ? undefined : (this.c.sessions.get(spec.session)?.owner ?? null)
    const now = Date.now()
    if (this.view === undefined || now - this.view.at > VIEW_TTL_MS) {
      const members = this.c.members.view()
      this.view = { at: now, candidates: candidates(members, this.c.nodeRegistry), reportedAt: new Map(members.map(m => [m.id, m.lastSeen])) }
    }
    const reportedAt = this.view.reportedAt
    const r = route(this.view.candidates, {
      cpus: spec.cpus,
      gpus: spec.gpus,
      memory: spec.memory,
      require: spec.require,
      labels: spec.labels,
      region: spec.region,
      type: spec.type,
      strategy: spec.strategy,
      node: spec.node
    }, {
      origin: { id: this.c.peerId, region: this.init.region },
      sessionOwner,
      recentlySent: id => this.ledger.unreported(id, reportedAt.get(id) ?? 0),
      random: Math.random,
      turn: this.turn++,
      ...(spec.avoid === undefined && failedOn === undefined ? {} : { avoid: new Set([...(spec.avoid ?? []), ...(failedOn ?? [])]) })
    })
    this.m.routing.inc({ strategy: spec.node !== undefined ? 'node' : spec.strategy, outcome: r.ok ? 'placed' : 'unsatisfiable' })
    return r
  }
}
