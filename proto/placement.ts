/**
 * Placement (issue 12): queue control between daemons, and the control API's health, queue and pool shapes.
 */
import Type from 'typebox'
import type { BreakerState, MemberState, NodeHealth } from '../src/interface/index.ts'
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

/** One task `gridctl rebalance` moved (or would move, --dry-run). */
export interface RebalanceEntry {
  task: string
  from: string
  fromName: string
  to: string
  toName: string
  priority: number
}

/** One entry of `gridctl queue ls` (GET /v1/queue). */
export interface QueueEntry {
  task: string
  node: string
  nodeName: string
  priority: number
  waitingMs: number
}

/** Answer of POST /v1/queue/pause and /v1/queue/resume: per node reached. */
export interface QueuePauseEntry {
  id: string
  name: string
  paused: boolean
  running: number
  queued: number
  /** why the node could not be reached (then the other fields are its last known) */
  error?: string
}

/** Health fields every node entry and health entry carries. */
export interface HealthFields {
  health: NodeHealth
  healthReason: string
  /** ISO time when `health` last changed */
  healthSince: string
  breaker: BreakerState
  paused: boolean
}

/** GET /v1/health/:id: one node's health with its last probes and state changes. */
export interface HealthDetail extends HealthFields {
  id: string
  name: string
  state: MemberState
  self: boolean
  heartbeatAgeMs: number | null
  rttMs: number | null
  connected: boolean
  /** the last 100 direct probes of it, newest last (none for this node itself) */
  probes: Array<{ at: string, rttMs: number | null, ok: boolean }>
  /** its membership state changes, newest last */
  history: Array<{ state: MemberState, at: string, reason: string }>
  /** its health changes, newest last */
  healthHistory: Array<{ health: NodeHealth, at: string, reason: string }>
}

/** One pool (`gridd --pool NAME`; nodes without one are in `default`): what its nodes hold, summed. */
export interface PoolEntry {
  name: string
  /** known nodes in it, and how many are alive */
  nodes: number
  alive: number
  slots: number
  freeSlots: number
  gpus: number
  freeGpus: number
  running: number
  queued: number
  /** its nodes by health */
  healthy: number
  degraded: number
  unavailable: number
}

/** GET /v1/pools/:name: the pool and its nodes. */
export interface PoolDetail extends PoolEntry {
  members: Array<{ id: string, name: string, state: MemberState, health: NodeHealth, role: 'router' | 'worker' }>
}

/** One answer of `gridctl discover` (GET /v1/discover): who the DHT rendezvous says provides this cluster's key. */
export interface DiscoverEntry {
  id: string
  addrs: string[]
  /** this node's membership knows it (alive or suspect) */
  member: boolean
  connected: boolean
  /** where it was found: the DHT rendezvous */
  source: 'dht'
}
