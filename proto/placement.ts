/**
 * Placement (issue 12): queue control between daemons, and the control API's health, queue and pool shapes.
 */
import Type, { type Static } from 'typebox'
import type * as S from './api-schemas.ts'
import { method } from './rpc.ts'

const Count = Type.Integer({ minimum: 0, maximum: 1_000_000_000 })

/** RPC `queue.pause`: pause (true) or resume (false) this node's queue; answers with what it holds. */
export const QueuePause = method('queue.pause', Type.Object({ paused: Type.Boolean() }), Type.Object({ paused: Type.Boolean(), running: Count, queued: Count }))

/** RPC `queue.list`: the tasks waiting in this node's queue, in queue order. */
export const QueueList = method('queue.list', Type.Object({}), Type.Object({
  tasks: Type.Array(Type.Object({ task: Type.String({ maxLength: 128 }), priority: Type.Integer(), waitingMs: Type.Number({ minimum: 0 }) }), { maxItems: 1_000_000 })
}))

/**
 * RPC `queue.steal`: a node with room asks a peer for queued tasks that it could run (work stealing). The victim takes
 * each one it hands over out of its queue before it answers (it will never start it) and tells the task's coordinator
 * to offer it to the thief: the handoff is exactly once. `dryRun`: only say which it would hand over; `now`: ignore
 * how long they waited (rebalance).
 */
export const QueueSteal = method('queue.steal', Type.Object({
  slots: Type.Number({ minimum: 0 }),
  gpus: Count,
  memoryBytes: Type.Number({ minimum: 0 }),
  types: Type.Array(Type.String({ maxLength: 128 }), { maxItems: 1024 }),
  capabilities: Type.Array(Type.String({ maxLength: 128 }), { maxItems: 1024 }),
  labels: Type.Record(Type.String({ maxLength: 128 }), Type.String({ maxLength: 256 })),
  region: Type.String({ maxLength: 63 }),
  max: Type.Integer({ minimum: 1, maximum: 10_000 }),
  dryRun: Type.Optional(Type.Boolean()),
  now: Type.Optional(Type.Boolean())
}), Type.Object({
  tasks: Type.Array(Type.Object({ task: Type.String({ maxLength: 128 }), priority: Type.Integer(), waitingMs: Type.Number({ minimum: 0 }) }), { maxItems: 10_000 })
}))

/** RPC `queue.rebalance`: run one round of stealing now, from every peer with queued tasks, and say what moved. */
export const QueueRebalance = method('queue.rebalance', Type.Object({ dryRun: Type.Boolean() }), Type.Object({
  moved: Type.Array(Type.Object({ task: Type.String({ maxLength: 128 }), from: Type.String({ maxLength: 128 }), fromName: Type.String({ maxLength: 63 }), priority: Type.Integer() }), { maxItems: 10_000 })
}))

// The control API's placement answers: their schemas (and field descriptions) are in proto/api-schemas.ts.

/** One task `gridctl rebalance` moved (or would move, --dry-run). */
export type RebalanceEntry = Static<typeof S.RebalanceEntrySchema>
/** One entry of `gridctl queue ls` (GET /v1/queue). */
export type QueueEntry = Static<typeof S.QueueEntrySchema>
/** Answer of POST /v1/queue/pause and /v1/queue/resume: per node reached. */
export type QueuePauseEntry = Static<typeof S.QueuePauseEntrySchema>
/** Health fields every node entry and health entry carries. */
export type HealthFields = Pick<HealthDetail, 'health' | 'healthReason' | 'healthSince' | 'breaker' | 'paused'>
/** GET /v1/health/:id: one node's health with its last probes and state changes. */
export type HealthDetail = Static<typeof S.HealthDetailSchema>
/** One pool (`gridd --pool NAME`; nodes without one are in `default`): what its nodes hold, summed. */
export type PoolEntry = Static<typeof S.PoolEntrySchema>
/** GET /v1/pools/:name: the pool and its nodes. */
export type PoolDetail = Static<typeof S.PoolDetailSchema>
/** One answer of `gridctl discover` (GET /v1/discover): who the DHT rendezvous says provides this cluster's key. */
export type DiscoverEntry = Static<typeof S.DiscoverEntrySchema>
