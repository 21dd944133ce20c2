/**
 * What the coordinator keeps of one task it coordinates, what an attempt comes to, and what the client of a
 * submission sees (the task stream of proto/task-stream.ts with output as bytes).
 */
import type { CoordAspect, ExecAspect, RehomeReason, TaskSpec, TaskStreamEvent } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import type { SessionPlan } from '../routing/index.ts'
import type { EventQueue } from './event-queue.ts'

/** What the client of a submission sees: the task stream (proto/task-stream.ts) with output as bytes. */
export type ClientEvent = TaskStreamEvent<Uint8Array>

export type Outcome =
  | { kind: 'refused', reason: string, full?: boolean, unsure?: boolean }
  | { kind: 'done', result: ExecAspect }
  | { kind: 'retry', reason: string }
  /** the executor handed it, never started, to a node with room (work stealing): offer it there, spending no retry */
  | { kind: 'moved', node: NodeId, reason: string }

export interface Coordinated {
  id: string
  spec: TaskSpec
  coord: CoordAspect
  sink?: EventQueue<ClientEvent>
  executor?: NodeId
  placed: boolean
  cancelRequested: boolean
  /** output bytes already forwarded (to re-attach from there) */
  offset: number
  submittedAt: number
  /** the session's placement for the attempt being offered, and why its owner passed, if it did */
  session?: SessionPlan & { refused?: { reason: RehomeReason, message: string } }
  /** ends the current wait early (a cancel arrived) */
  waker?: () => void
  /** hears that an executor took the attempt, or that the task ended (the stdin writer waits for either) */
  onPlaced?: () => void
  /**
   * the names of the variables its spec set whose values this node never had: it took the task over from a record,
   * which keeps names only; it cannot place the task again (a running attempt needs no env and goes on)
   */
  envLost?: string[]
  /** the nodes where an attempt of it failed or was lost: its next attempt goes elsewhere when it can */
  failedOn?: Set<NodeId>
  /** the nodes routing passed by for the attempt being offered, and why (paused, degraded...), for run -v */
  passed?: Array<{ name: string, reason: string }>
  /** times it moved to another node before it started (work stealing): those attempts spent no retry */
  moves?: number
  /**
   * the attempt offered to or running on `node` whose outcome this coordinator still waits for: the one attempt an
   * executor that asks (`task.confirm`, start-fence.ts) may start; `confirmedAt`: when it last heard yes
   * (performance.now()), whose lease giving the attempt up waits out (live-attempts.ts)
   */
  live?: {
    attempt: number
    node: NodeId
    confirmedAt?: number
    /** the executor said it has none of it: no confirm hears yes any more (live-attempts.ts watchAgain) */
    givingUp?: boolean
  }
  abort: AbortController
}
