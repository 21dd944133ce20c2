import { createHash } from 'node:crypto'
import type { NodeId } from '../interface/index.ts'

/**
 * The node that takes over a task's coordination when its coordinator dies: rendezvous hashing of the task id over
 * the live nodes. Every node computes the same answer from the same view, with no election; when views differ for
 * a moment, two nodes may both take over: both write the same next generation, the record shows one of them, and the
 * other stops driving the task when it sees that (records.ts `supersededBy`).
 */
export function successor (taskId: string, live: NodeId[]): NodeId | undefined {
  let best: NodeId | undefined
  let bestScore = ''
  for (const node of live) {
    const score = createHash('sha256').update(taskId).update('\u0000').update(node).digest('hex')
    if (best === undefined || score > bestScore) { best = node; bestScore = score }
  }
  return best
}

/** What `orphaned` needs of the membership: who is alive, and what one node is. */
export interface SuccessorView {
  view: () => Array<{ id: NodeId, state: string }>
  state: (id: NodeId) => string | undefined
}

/**
 * The unfinished documents (jobs, workflows) whose driver is dead or gone and whose successor is `self`: what this
 * node must take over. `deadNode` counts as gone even before the view says so (it is the node just declared dead).
 */
export function * orphaned<D extends { final?: unknown, driver: NodeId }, M extends { doc: D }> (
  docs: Iterable<[string, M]>, members: SuccessorView, self: NodeId, driving: (id: string) => boolean, deadNode?: NodeId
): Generator<[string, M]> {
  const alive = members.view().filter(v => v.state === 'alive').map(v => v.id)
  const gone = (id: NodeId): boolean => {
    if (id === deadNode) return true
    const s = members.state(id)
    return s === 'dead' || s === 'left'
  }
  for (const [id, m] of docs) {
    const doc = m.doc
    if (doc.final !== undefined || doc.driver === self || driving(id) || !gone(doc.driver)) continue
    if (successor(id, alive.filter(n => n !== doc.driver)) === self) yield [id, m]
  }
}
