/**
 * What this node has sent to each peer that the peer's load reports cannot show yet.
 *
 * Load arrives in heartbeats (about once a second), so a node that just sent three tasks to a peer would see it as
 * idle until the next report and send it more. The ledger corrects that: for each peer, the tasks this node sent
 * after the peer's last report and that have not ended. A task this node knows has ended never counts (issue: a
 * session's owner looked full after two quick runs because a time-decayed count remembered tasks long finished).
 */
import type { NodeId } from '../interface/index.ts'

/** A report received this long after a dispatch may still have been written before the task arrived there. */
export const REPORT_SKEW_MS = 50

export class DispatchLedger {
  private readonly byTask = new Map<string, { node: NodeId, at: number }>()
  private readonly byNode = new Map<NodeId, Set<string>>()

  constructor (private readonly now: () => number = Date.now) {}

  /** Task `id` was just offered to `node` (a retry's new offer replaces the earlier one). */
  sent (node: NodeId, id: string): void {
    this.ended(id)
    this.byTask.set(id, { node, at: this.now() })
    let set = this.byNode.get(node)
    if (set === undefined) { set = new Set(); this.byNode.set(node, set) }
    set.add(id)
  }

  /** Task `id` ended, was refused or moved on: it no longer weighs on the node it was sent to. */
  ended (id: string): void {
    const t = this.byTask.get(id)
    if (t === undefined) return
    this.byTask.delete(id)
    const set = this.byNode.get(t.node)
    set?.delete(id)
    if (set?.size === 0) this.byNode.delete(t.node)
  }

  /** Tasks sent to `node`, still unfinished, that its report of `reportedAt` (epoch ms, 0 if none) cannot include. */
  unreported (node: NodeId, reportedAt: number): number {
    const set = this.byNode.get(node)
    if (set === undefined) return 0
    let n = 0
    for (const id of set) {
      const t = this.byTask.get(id)
      if (t !== undefined && t.at >= reportedAt - REPORT_SKEW_MS) n++
    }
    return n
  }

  /** Unfinished tasks this node sent to `node`, reported or not. */
  outstanding (node: NodeId): number {
    return this.byNode.get(node)?.size ?? 0
  }
}
