/**
 * A session's task placed on another node than the session's owner (the owner was full, unreachable, or there was
 * none): that node becomes the owner, and the client and the log say why the session moved.
 */
import type { Logger } from 'pino'
import type { NodeId } from '../interface/index.ts'
import type { TasksComponents } from './components.ts'
import type { Coordinated } from './coordinated.ts'
import type { TaskMetrics } from './task-metrics.ts'

/** The session's new owner is the node that accepted its task, and the client and the log say why it moved. */
export function rehomeIfMoved (c: Pick<TasksComponents, 'sessions'>, m: Pick<TaskMetrics, 'rehomed'>, log: Logger, co: Coordinated, node: NodeId, nodeName: string, nameOf: (id: NodeId) => string): void {
  const plan = co.session
  const session = co.spec.session
  co.session = undefined
  if (plan === undefined || session === undefined || plan.owner === node) return
  const why = plan.refused ?? { reason: plan.reason ?? 'no-owner', message: plan.message ?? 'the session has no owner yet' }
  const s = c.sessions.get(session)
  c.sessions.put(session, s?.value ?? null, { owner: node })
  m.rehomed.inc({ reason: why.reason })
  const fromName = plan.owner === null ? null : nameOf(plan.owner)
  log.info({ session, task: co.id, owner: node, ownerName: nodeName, previous: plan.owner, reason: why.reason, why: why.message }, 'session re-homed')
  co.sink?.push({ type: 'rehomed', id: co.id, session, from: plan.owner, fromName, to: node, toName: nodeName, reason: why.reason, message: why.message })
}
