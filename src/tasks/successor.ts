import { createHash } from 'node:crypto'
import type { NodeId } from '../interface/index.ts'

/**
 * The node that takes over a task's coordination when its coordinator dies: rendezvous hashing of the task id over
 * the live nodes. Every node computes the same answer from the same view, with no election; when views differ for
 * a moment, two nodes may both take over, which costs at most a duplicate attempt (tasks run at least once).
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
