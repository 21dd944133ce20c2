/**
 * Queue control (issue 12): pausing and resuming a node's queue (a paused node admits no new task and starts none of
 * its queued ones; running ones go on), on this node, another one or all alive ones, and listing what waits in every
 * alive node's queue. The executor holds the queue; this file carries the requests across the mesh.
 */
import type { Logger } from 'pino'
import { QueueList, QueuePause, type QueueEntry, type QueuePauseEntry } from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import type { Executor } from '../executor/index.ts'
import type { TaskMembers, TaskRpc } from './components.ts'
import { nodeName, type RegistryReader } from './view.ts'

/** How long a pause, resume or list waits for one peer's answer. */
export const QUEUE_REQUEST_TIMEOUT_MS = 10_000

export interface QueueControlComponents {
  peerId: NodeId
  rpc: TaskRpc
  members: Pick<TaskMembers, 'view'>
  nodeRegistry: RegistryReader
  executor: Pick<Executor, 'setPaused' | 'isPaused' | 'queuedTasks' | 'usage'>
  logger: Logger
  /** told when this node's queue is paused or resumed (to gossip it at once) */
  onPausedChange?: () => void
}

export class QueueControl {
  constructor (private readonly c: QueueControlComponents) {
    c.rpc.handle(QueuePause, req => this.setLocal(req.paused))
    c.rpc.handle(QueueList, () => ({ tasks: this.localList() }))
  }

  /** Pauses or resumes one node's queue (`node`), or every alive node's (`node` undefined). */
  async setPaused (paused: boolean, node?: NodeId): Promise<QueuePauseEntry[]> {
    const targets = node === undefined ? this.aliveNodes() : [node]
    return await Promise.all(targets.map(async id => {
      const name = this.nameOf(id)
      try {
        const r = id === this.c.peerId ? this.setLocal(paused) : await this.c.rpc.request(id, QueuePause, { paused }, { timeoutMs: QUEUE_REQUEST_TIMEOUT_MS })
        return { id, name, ...r }
      } catch (err) {
        // with --all, one node out of reach does not stop the others: its entry says why
        if (node !== undefined) throw err
        return { id, name, paused: !paused, running: 0, queued: 0, error: toGridError(err).message }
      }
    }))
  }

  /** What waits in every alive node's queue (or one node's), highest priority first, then the longest waiting. */
  async list (node?: NodeId): Promise<QueueEntry[]> {
    const targets = node === undefined ? this.aliveNodes() : [node]
    const lists = await Promise.all(targets.map(async id => {
      try {
        const tasks = id === this.c.peerId ? this.localList() : (await this.c.rpc.request(id, QueueList, {}, { timeoutMs: QUEUE_REQUEST_TIMEOUT_MS })).tasks
        const name = this.nameOf(id)
        return tasks.map(t => ({ task: t.task, node: id, nodeName: name, priority: t.priority, waitingMs: Math.round(t.waitingMs) }))
      } catch (err) {
        if (node !== undefined) throw err
        this.c.logger.debug({ err, peer: id }, 'queue list: a node did not answer')
        return []
      }
    }))
    return lists.flat().sort((a, b) => b.priority - a.priority || b.waitingMs - a.waitingMs)
  }

  private setLocal (paused: boolean): { paused: boolean, running: number, queued: number } {
    const before = this.c.executor.isPaused()
    const r = this.c.executor.setPaused(paused)
    if (before !== paused) this.c.onPausedChange?.()
    return { paused, ...r }
  }

  private localList (): Array<{ task: string, priority: number, waitingMs: number }> {
    const now = Date.now()
    return this.c.executor.queuedTasks().map(t => ({ task: t.id, priority: t.priority, waitingMs: Math.max(0, now - t.queuedAt) }))
  }

  private aliveNodes (): NodeId[] {
    return this.c.members.view().filter(m => m.state === 'alive' && m.selfState !== 'leaving').map(m => m.id)
  }

  private nameOf (id: NodeId): string {
    const m = this.c.members.view().find(v => v.id === id)
    return nodeName(id, m, this.c.nodeRegistry.get(id)?.value)
  }
}
