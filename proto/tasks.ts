/**
 * Tasks on the wire: the spec a user submits, the record every node can show, the aspects each writer stores in
 * the replicated state, and the RPC methods between origin (coordinator) and executor.
 */
import Type, { type Static } from 'typebox'
import { method } from './rpc.ts'
import { Bytes, validator } from './validate.ts'
import { TaskSyncSchema } from './sync.ts'

export const TASK_STATUSES = ['pending', 'running', 'completed', 'failed', 'timeout', 'cancelled'] as const
export type TaskStatus = typeof TASK_STATUSES[number]
export const FINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'timeout', 'cancelled'])

export const STRATEGIES = ['least-loaded', 'round-robin', 'random', 'capability', 'region', 'affinity'] as const
export type Strategy = typeof STRATEGIES[number]

/** Largest payload of a typed task (JSON text on its stdin), and largest result kept in its record. */
export const TASK_PAYLOAD_MAX_BYTES = 1024 * 1024
export const TASK_RESULT_MAX_BYTES = 64 * 1024
/** Largest piece of a task's stdin in one `task.stdin` request (and one POST /v1/tasks/ID/stdin). */
export const TASK_STDIN_CHUNK_MAX_BYTES = 256 * 1024
/** Longest reason a waiting task carries in its record. */
export const TASK_REASON_MAX_CHARS = 512

/**
 * Variables a typed task's caller may not set: they decide which program runs and what it loads (a planted PATH ran
 * another program under the type's name). The type's own env and cwd win over the caller's for the rest.
 */
export const TYPE_HELD_ENV = /^(PATH|LD_[A-Z_]+|DYLD_[A-Z_]+|NODE_OPTIONS|NODE_PATH|PYTHONPATH|PYTHONHOME|PYTHONSTARTUP|PERL5LIB|PERL5OPT|RUBYOPT|RUBYLIB|BASH_ENV|ENV)$/

const Id = Type.String({ minLength: 1, maxLength: 128 })
const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 256 })

/** What a user asks for. Defaults are filled by the origin before the spec travels. */
export const TaskSpecSchema = Type.Object({
  /** argv of the program to run */
  command: Type.Optional(Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 4096 })),
  /** a task type from the executor's configuration (`tasks: {NAME: {command: [...]}}`) */
  type: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' })),
  /** JSON given to a typed task on its stdin */
  payload: Type.Optional(Type.Unknown()),
  cpus: Type.Number({ minimum: 0, maximum: 4096 }),
  /**
   * the caller named `cpus` (--cpus): the task is held to that many CPUs by a cgroup quota. Without it `cpus` is a
   * reservation for placement only, and the task runs unconfined (as in Kubernetes without limits), which also keeps
   * the cgroup's cost off the many tasks that name no limit
   */
  cpuLimit: Type.Optional(Type.Boolean()),
  gpus: Type.Integer({ minimum: 0, maximum: 64 }),
  /** bytes */
  memory: Type.Integer({ minimum: 0 }),
  require: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 }),
  labels: Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 128 })),
  region: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
  session: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  priority: Type.Integer({ minimum: 0, maximum: 100 }),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })),
  retries: Type.Integer({ minimum: 0, maximum: 100 }),
  retryOnFailure: Type.Boolean(),
  env: Type.Record(EnvName, Type.String({ maxLength: 65536 })),
  cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** where to run when no cwd is given and this exists on the executor (gridctl sends the caller's directory);
   * else the task's scratch directory under the executor's data dir */
  cwdDefault: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** the first attempt's stdin stays open for `task.stdin` (the client streams it); else stdin is empty */
  stdin: Type.Optional(Type.Boolean()),
  /** it runs in a fresh directory laid out from this manifest (`gridctl run --sync DIR`; proto/sync.ts) */
  sync: Type.Optional(TaskSyncSchema),
  strategy: Type.Enum(STRATEGIES),
  /** run on this node (peer id), whatever the strategy */
  node: Type.Optional(Id),
  /**
   * a run of a job (src/jobs): the executor sets GRID_JOB_ID, GRID_ITEM_INDEX and GRID_ITEM (the item is `payload`)
   * and gives a command task its item on stdin (a typed one gets its payload there as always)
   */
  job: Type.Optional(Type.Object({ id: Id, index: Type.Integer({ minimum: 0 }) }, { additionalProperties: false })),
  /** nodes to try last: where this work already failed (a job's item on its earlier run) */
  avoid: Type.Optional(Type.Array(Id, { maxItems: 64 }))
}, { additionalProperties: false })
export type TaskSpec = Static<typeof TaskSpecSchema>
export const taskSpec = validator(TaskSpecSchema)

const { env: _env, ...specFieldsButEnv } = TaskSpecSchema.properties
/**
 * The spec as a task record keeps it: the environment's names only (`envNames`), never its values, which travel in
 * the offer to the executor and stay in the coordinating node's memory (a record is replicated to every node's WAL).
 * `env` is read from the previous release's records only, never written.
 */
export const StoredSpecSchema = Type.Object({
  ...specFieldsButEnv,
  envNames: Type.Optional(Type.Array(EnvName)),
  env: Type.Optional(TaskSpecSchema.properties.env)
}, { additionalProperties: false })
export type StoredSpec = Static<typeof StoredSpecSchema>

/** The coordinator's part of a task record: the spec (without env values) and the attempt it is on. */
export const CoordAspectSchema = Type.Object({
  spec: StoredSpecSchema,
  origin: Id,
  originName: Type.String({ maxLength: 63 }),
  coordinator: Id,
  attempt: Type.Integer({ minimum: 1 }),
  /**
   * how many times the task changed coordinator (absent: 0): a takeover writes one more, and the aspect with the
   * highest generation names the one coordinator that may drive the task; an older one stops at sight of it
   */
  generation: Type.Optional(Type.Integer({ minimum: 0 })),
  createdAt: Type.Number(),
  /** the final status as the coordinator learned or decided it (retries exhausted, cancelled before it ran) */
  final: Type.Optional(Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled'), Type.Literal('timeout')])),
  exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  error: Type.Optional(Type.String({ maxLength: 4096 })),
  finishedAt: Type.Optional(Type.Number()),
  /** why the task waits before any node took it (the nodes that could run it are draining or dead, or refused it) */
  reason: Type.Optional(Type.String({ maxLength: TASK_REASON_MAX_CHARS }))
})
export type CoordAspect = Static<typeof CoordAspectSchema>

/** The executor's part: how one attempt went on one node. */
export const ExecAspectSchema = Type.Object({
  attempt: Type.Integer({ minimum: 1 }),
  node: Id,
  nodeName: Type.String({ maxLength: 63 }),
  status: Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('timeout'), Type.Literal('cancelled')]),
  /** the executor went away with the attempt unfinished (restart): the coordinator retries */
  lost: Type.Optional(Type.Boolean()),
  queuedAt: Type.Number(),
  startedAt: Type.Optional(Type.Number()),
  finishedAt: Type.Optional(Type.Number()),
  exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  signal: Type.Optional(Type.Union([Type.String({ maxLength: 16 }), Type.Null()])),
  error: Type.Optional(Type.String({ maxLength: 4096 })),
  gpus: Type.Optional(Type.Array(Type.String({ maxLength: 128 }))),
  pid: Type.Optional(Type.Integer()),
  /** a typed task's stdout, parsed as JSON when it is JSON (at most TASK_RESULT_MAX_BYTES) */
  result: Type.Optional(Type.Unknown()),
  /** the kernel killed it for going over its memory limit (its cgroup's) */
  oom: Type.Optional(Type.Boolean()),
  /** why a pending attempt waits in this node's queue (what is ahead of it, which resource it lacks) */
  reason: Type.Optional(Type.String({ maxLength: TASK_REASON_MAX_CHARS })),
  /** the authenticated peer that offered the attempt to this executor (its coordinator; this node for a local one) */
  offeredBy: Type.Optional(Id),
  /** work stealing (issue 12): this node took it out of its queue, never started, for that node to run */
  movedTo: Type.Optional(Id)
})
export type ExecAspect = Static<typeof ExecAspectSchema>

/** Somebody asked to cancel the task. */
export const CancelAspectSchema = Type.Object({ at: Type.Number(), by: Id })

/**
 * One writer's entry for a task in the replicated `tasks` collection: the aspects it is responsible for. Entries of
 * the previous release (`{c, e, x}`) are read through `legacy-entries.ts` only.
 */
export const TaskEntrySchema = Type.Object({
  coord: Type.Optional(CoordAspectSchema),
  exec: Type.Optional(ExecAspectSchema),
  cancel: Type.Optional(CancelAspectSchema)
})
export type TaskEntry = Static<typeof TaskEntrySchema>
export const taskEntry = validator(TaskEntrySchema)

/** A task as `gridctl task`, `tasks` and GET /v1/tasks show it: the merge of every writer's aspects. */
export interface TaskRecord {
  id: string
  status: TaskStatus
  /** executor peer id of the current attempt (null while not placed) */
  node: string | null
  nodeName: string | null
  origin: string
  originName: string
  coordinator: string
  attempts: number
  exitCode: number | null
  signal: string | null
  error: string | null
  command: string[] | null
  type: string | null
  session: string | null
  priority: number
  cpus: number
  gpus: number
  memory: number
  gpuIds: string[]
  createdAt: string
  startedAt: string | null
  finishedAt: string | null
  durationMs: number | null
  cancelRequested: boolean
  /** it was killed for going over its memory limit */
  oom: boolean
  /** why a pending task waits (squeue's pending reason): queued behind others on a node, or for a node that can run it */
  reason?: string
  result?: unknown
  /** the names of the variables its spec set (their values are never kept in the record) */
  envNames: string[]
  /** the authenticated peer that offered its current attempt to the executor (null before one did) */
  offeredBy: string | null
}

/** The task as it travels to an executor. */
export const TaskOfferSchema = Type.Object({
  id: Id,
  spec: TaskSpecSchema,
  attempt: Type.Integer({ minimum: 1 }),
  origin: Id,
  coordinator: Id,
  /** the coordinator's generation (CoordAspect.generation): an executor whose records hold a higher one refuses it */
  generation: Type.Optional(Type.Integer({ minimum: 0 })),
  /** refuse (UNAVAILABLE, details.full) rather than queue if it cannot start now: a session's owner while another node could */
  startNow: Type.Optional(Type.Boolean()),
  /**
   * when the coordinator sent it (its wall clock, ms): an executor that reads it late (delivered after a partition
   * healed) asks the coordinator (`task.confirm`) before it starts it
   */
  sentAt: Type.Optional(Type.Number())
})
export type TaskOffer = Static<typeof TaskOfferSchema>

/** Events of a running task, streamed to whoever watches (origin, logs -f). */
export const TaskEventSchema = Type.Union([
  /** the executor took the task: running now, or queued behind others */
  Type.Object({ k: Type.Literal('admitted'), queued: Type.Boolean(), node: Id, nodeName: Type.String(), reason: Type.Optional(Type.String({ maxLength: TASK_REASON_MAX_CHARS })) }),
  Type.Object({ k: Type.Literal('started'), at: Type.Number(), pid: Type.Integer(), gpus: Type.Array(Type.String()) }),
  /** output: `s` 1 = stdout, 2 = stderr; `o` is the byte offset of this chunk in the task's log */
  Type.Object({ k: Type.Literal('out'), s: Type.Union([Type.Literal(1), Type.Literal(2)]), d: Bytes, o: Type.Integer({ minimum: 0 }) }),
  /** bytes the watcher did not get (it fell behind, or the log dropped them) */
  Type.Object({ k: Type.Literal('gap'), bytes: Type.Integer({ minimum: 0 }) })
])
export type TaskEvent = Static<typeof TaskEventSchema>

export const TaskResultSchema = ExecAspectSchema
export type TaskResult = ExecAspect

/** RPC `task.run`: offer a task; events stream while it runs; the answer is how it ended. Refusal is an error. */
export const TaskRun = method('task.run', TaskOfferSchema, TaskResultSchema, TaskEventSchema)

/** RPC `task.attach`: watch a task already admitted here (after the origin's stream broke). */
export const TaskAttach = method('task.attach', Type.Object({ id: Id, attempt: Type.Integer({ minimum: 1 }), from: Type.Integer({ minimum: 0 }) }), TaskResultSchema, TaskEventSchema)

/** RPC `task.cancel`: stop it (TERM to its process group, KILL after the grace period). */
export const TaskCancel = method('task.cancel', Type.Object({ id: Id, by: Id }), Type.Object({ found: Type.Boolean(), status: Type.String() }))

/**
 * RPC `task.confirm` (issue 13, fencing): an executor about to start an attempt that waited in its queue, or that it
 * took around a stall of its own (SIGSTOP, a starved CPU), asks the task's coordinator whether that attempt on it is
 * still current; `current` false (with why) and it never starts it.
 */
export const TaskConfirm = method('task.confirm', Type.Object({ id: Id, attempt: Type.Integer({ minimum: 1 }) }), Type.Object({ current: Type.Boolean(), reason: Type.Optional(Type.String({ maxLength: 1024 })) }))

/**
 * RPC `task.standby` (issue 13, fencing a takeover): a coordinator that may have been seen dead lately (its event loop
 * stalled, or it saw the task's would-be successor cut off) asks that successor before it starts an attempt of task
 * `id` (or says yes to an executor's `task.confirm`). `granted`: the successor sees it alive and has not taken the task
 * over from generation `generation`, and takes over none of its tasks for `leaseMs` (and a margin); the coordinator
 * lets the attempt start only within `leaseMs` of asking. Otherwise (with why) it starts nothing and waits.
 */
export const TaskStandby = method('task.standby', Type.Object({ id: Id, generation: Type.Integer({ minimum: 0 }) }), Type.Object({ granted: Type.Boolean(), leaseMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })), reason: Type.Optional(Type.String({ maxLength: 1024 })) }))

/** RPC `task.logs`: the executor's copy of a task's output, optionally followed until it ends. */
export const TaskLogs = method('task.logs', Type.Object({ id: Id, follow: Type.Boolean() }), Type.Object({ found: Type.Boolean(), truncatedBytes: Type.Integer({ minimum: 0 }) }), TaskEventSchema)

/**
 * RPC `task.stdin`: bytes for the open stdin of an attempt (`end` closes it after them), answered once the executor
 * took them (buffered while the task waits to start, or handed to its process), so a task that does not read holds
 * its writer back. `open` false: the attempt takes no more (it ended, closed its stdin, or never had one open).
 */
export const TaskStdin = method('task.stdin', Type.Object({ id: Id, attempt: Type.Integer({ minimum: 1 }), data: Bytes, end: Type.Boolean() }), Type.Object({ open: Type.Boolean() }))

/** RPC `node.drain`: take no new tasks (drain true) or take them again (false); answers with what still runs. */
export const NodeDrain = method('node.drain', Type.Object({ drain: Type.Boolean() }), Type.Object({ running: Type.Integer(), queued: Type.Integer() }))
