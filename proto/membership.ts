/** Gossip messages on the heartbeat topic: heartbeats and membership notices (SWIM-style dissemination). */
import Type, { type Static } from 'typebox'
import { validator } from './validate.ts'

const NodeIdSchema = Type.String({ minLength: 1, maxLength: 128 })
const Count = Type.Integer({ minimum: 0, maximum: 1_000_000 })
const NonNeg = Type.Number({ minimum: 0 })
const Inc = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })

/**
 * A node's name wherever it enters (gridd's --name, heartbeats, registry entries): 1-63 letters, digits, ".", "_" or
 * "-", starting with a letter or digit. No control characters or escape sequences reach a table or a log from a peer.
 * The config's NAME_PATTERN (src/config/fields.ts) is the same pattern; a unit test keeps them equal.
 */
export const NODE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'
export const NodeNameSchema = Type.String({ minLength: 1, maxLength: 63, pattern: NODE_NAME_PATTERN })

export const LoadSchema = Type.Object({
  cpu: NonNeg,
  cpus: Count,
  memTotalMiB: NonNeg,
  memFreeMiB: NonNeg,
  /** memory the executor offers to tasks (--task-memory), and how much of it is free: what placement checks */
  taskMemoryMiB: Type.Optional(NonNeg),
  taskMemoryFreeMiB: Type.Optional(NonNeg),
  running: Count,
  queued: Count,
  slots: NonNeg,
  freeSlots: NonNeg,
  gpus: Count,
  freeGpus: Count,
  gpuUtilizationPercent: Type.Number({ minimum: 0, maximum: 100 }),
  gpuMemoryUsedMiB: NonNeg,
  gpuMemoryTotalMiB: NonNeg,
  done: Type.Optional(Type.Integer({ minimum: 0 })),
  failed: Type.Optional(Type.Integer({ minimum: 0 }))
})

/** A node's verdict on its own health (optional: older nodes send none, and are taken as healthy). */
export const HealthFactsSchema = Type.Object({
  s: Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unavailable')]),
  /** why, for people */
  r: Type.String({ maxLength: 300 }),
  /** epoch ms when `s` last changed */
  since: NonNeg,
  br: Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half-open')])
})
export type HealthFacts = Static<typeof HealthFactsSchema>

export const HeartbeatSchema = Type.Object({
  t: Type.Literal('hb'),
  /** the sender's peer id; must equal the gossip message's signer */
  id: NodeIdSchema,
  name: NodeNameSchema,
  /** starts at the process's start time in seconds (so a restart outranks the old process), raised to refute */
  inc: Inc,
  seq: Type.Integer({ minimum: 0 }),
  state: Type.Union([Type.Literal('alive'), Type.Literal('draining'), Type.Literal('leaving'), Type.Literal('left')]),
  load: LoadSchema,
  ver: Type.String({ maxLength: 32 }),
  /** sender's clock, epoch ms (informative: ages are measured with the receiver's clock) */
  ts: NonNeg,
  /** placement (issue 12): its own health verdict, and whether its queue is paused; optional for older peers */
  health: Type.Optional(HealthFactsSchema),
  paused: Type.Optional(Type.Boolean()),
  /**
   * the sender's heartbeat interval until its next heartbeat, ms (it grows with the cluster's size): receivers'
   * missed-heartbeat deadline follows it; optional for older peers (taken as the receiver's own interval)
   */
  iv: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 }))
})
export type Heartbeat = Static<typeof HeartbeatSchema>

/** "I suspect X" or "X is dead", at X's incarnation: X refutes by sending a heartbeat with a higher one. */
export const NoticeSchema = Type.Object({
  t: Type.Literal('notice'),
  kind: Type.Union([Type.Literal('suspect'), Type.Literal('dead')]),
  id: NodeIdSchema,
  inc: Inc,
  by: NodeIdSchema
})
export type Notice = Static<typeof NoticeSchema>

export const MembershipMessageSchema = Type.Union([HeartbeatSchema, NoticeSchema])
export type MembershipMessage = Static<typeof MembershipMessageSchema>
export const membershipMessage = validator(MembershipMessageSchema)

/** RPC `member.ping`: a direct probe. The answer carries the target's incarnation so a probe can refute too. */
export const PingRequestSchema = Type.Object({})
export const PingResponseSchema = Type.Object({ inc: Inc, state: HeartbeatSchema.properties.state })

/** RPC `member.probe`: ask this peer to ping `target` on our behalf (the indirect probe). */
export const ProbeRequestSchema = Type.Object({ target: NodeIdSchema, timeoutMs: Type.Integer({ minimum: 1, maximum: 60_000 }) })
export const ProbeResponseSchema = Type.Object({
  ok: Type.Boolean(),
  rttMs: Type.Optional(NonNeg),
  inc: Type.Optional(Inc),
  /** why it failed: 'refused' (the target is reachable but not listening), 'timeout', 'unreachable' */
  reason: Type.Optional(Type.String({ maxLength: 200 }))
})
export type ProbeResponse = Static<typeof ProbeResponseSchema>
