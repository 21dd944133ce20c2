/**
 * Warm workers: the protocol between the executor and a worker process, and the RPC that carries requests to the
 * node that hosts the worker.
 *
 * ## The worker protocol (a worker can be a few lines of Python or any language)
 * A worker is a long-lived process. It reads requests from stdin, one JSON object per line:
 *
 *     {"id": "r1", "payload": <any JSON>, "session": "s1" | null, "type": "echo"}
 *
 * and writes replies to stdout, one JSON object per line, in any order, each with the id of its request:
 *
 *     {"id": "r1", "result": <any JSON>}          or          {"id": "r1", "error": "what went wrong"}
 *
 * Anything it writes to stderr goes to the node's log. It should exit when stdin closes. Its environment has
 * GRID_WORKER_TYPE, GRID_SESSION (when it serves one session), GRID_NODE_ID, GRID_NODE_NAME, and, when it has GPUs,
 * CUDA_VISIBLE_DEVICES (its GPUs, by UUID) and CUDA_DEVICE_ORDER=PCI_BUS_ID. A reply line longer than the limit, a line
 * that is not JSON, or a reply with an unknown id is an error for the request it belongs to (when that can be told),
 * never for the daemon.
 */
import Type, { type Static } from 'typebox'
import { method } from './rpc.ts'

/** Longest reply line a worker may write. */
export const WORKER_REPLY_MAX_BYTES = 16 * 1024 * 1024
/** Most requests in one worker.call (the origin batches concurrent requests to the same node). */
export const WORKER_BATCH_MAX = 1024

export const WorkerReplySchema = Type.Union([
  Type.Object({ id: Type.String(), result: Type.Unknown() }),
  Type.Object({ id: Type.String(), error: Type.String() })
])
export type WorkerReply = Static<typeof WorkerReplySchema>

const Outcome = Type.Union([
  Type.Object({ ok: Type.Literal(true), result: Type.Unknown() }),
  Type.Object({ ok: Type.Literal(false), code: Type.String({ maxLength: 64 }), error: Type.String({ maxLength: 65536 }) })
])
export type WorkerOutcome = Static<typeof Outcome>

/** Longest waiting reason a worker.call event carries. */
export const WORKER_WAIT_REASON_MAX_CHARS = 500

/**
 * RPC `worker.call`: requests for one worker type (and session) on the node that hosts it. While a request of the
 * batch waits (queued, or for a new worker's first answer) for more than a moment, the host streams why, like
 * squeue's pending reason: an event `{waiting}` at first and whenever the reason changes. A fast batch has none.
 */
export const WorkerCall = method('worker.call', Type.Object({
  type: Type.String({ minLength: 1, maxLength: 63 }),
  session: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  timeoutMs: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }),
  priority: Type.Integer({ minimum: 0, maximum: 100 }),
  payloads: Type.Array(Type.Unknown(), { minItems: 1, maxItems: WORKER_BATCH_MAX })
}), Type.Object({
  node: Type.String(),
  nodeName: Type.String(),
  results: Type.Array(Outcome)
}), Type.Object({ waiting: Type.String({ minLength: 1, maxLength: WORKER_WAIT_REASON_MAX_CHARS }) }))

/** RPC `worker.close`: end a session's worker on the node that hosts it. */
export const WorkerClose = method('worker.close', Type.Object({ session: Type.String({ minLength: 1, maxLength: 256 }) }), Type.Object({ closed: Type.Integer({ minimum: 0 }) }))

/** What a session's record says about its worker (written by the node that hosts it). */
export interface SessionWorkerInfo {
  node: string
  nodeName: string
  type: string
  pid: number
  gpus: string[]
  served: number
  startedAt: number
  lastUsedAt: number
}
