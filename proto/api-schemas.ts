/**
 * The control API's answers as TypeBox schemas (JSON Schema), and its error shape; the request bodies are in
 * proto/api-bodies.ts. The route table (proto/api-routes.ts) names them per endpoint and the OpenAPI document is
 * generated from them (src/control/openapi.ts), the only code that loads this file. proto/api.ts and the other
 * proto files keep the TypeScript types that gridctl reads without loading typebox; tests/unit/openapi.test.ts
 * checks at compile time that each schema's type and its interface have the same fields, so neither changes alone.
 */
import Type from 'typebox'
import { ERRORS, MEMBER_STATES, NODE_HEALTHS } from '../src/interface/index.ts'
import { JOB_AGGREGATES, JOB_STATUSES, JOB_STRATEGIES } from './job-names.ts'
import { LoadSchema } from './membership.ts'
import { TASK_STATUSES } from './tasks.ts'
import { WORKFLOW_JOB_STATUSES, WORKFLOW_STATUSES } from './workflow-names.ts'

const Str = Type.String()
const Int = Type.Integer()
const Num = Type.Number()
const Bool = Type.Boolean()
const NullableStr = Type.Union([Str, Type.Null()])
const NullableInt = Type.Union([Int, Type.Null()])
const NullableNum = Type.Union([Num, Type.Null()])
const StrArray = Type.Array(Str)
const Labels = Type.Record(Str, Str)
const MemberStateSchema = Type.Enum(MEMBER_STATES as readonly ['alive', 'suspect', 'dead', 'left'])
const NodeHealthSchema = Type.Enum(NODE_HEALTHS as readonly ['healthy', 'degraded', 'unavailable'])
const BreakerStateSchema = Type.Enum(['closed', 'open', 'half-open'])
const RoleSchema = Type.Enum(['router', 'worker'])
const TaskStatusSchema = Type.Enum(TASK_STATUSES)

// --- errors ---

/** `{"error": {"code", "message", "details"?}}`, with the HTTP status of the code (src/interface/errors.ts). */
export const ApiErrorSchema = Type.Object({
  error: Type.Object({
    code: Type.Enum(Object.keys(ERRORS) as [keyof typeof ERRORS]),
    message: Str,
    details: Type.Optional(Type.Unknown())
  })
}, { description: 'A typed error: `code` is stable (src/interface/errors.ts), `message` says what to do' })

// --- answers ---

export const LimitsStatusSchema = Type.Object({
  enforced: Bool,
  cgroup: Type.Union([Type.Literal('v2'), Type.Literal('v1'), Type.Null()]),
  reason: Type.Union([Str, Type.Null()], { description: 'why limits are not enforced (null when they are)' })
})

export const StatusResponseSchema = Type.Object({
  id: Str,
  name: Str,
  cluster: Str,
  version: Str,
  addrs: Type.Array(Str, { description: 'full multiaddrs including /p2p/<id>, as other nodes would use them in --bootstrap' }),
  region: Str,
  labels: Labels,
  capabilities: StrArray,
  state: Type.Enum(['alive', 'draining', 'leaving']),
  startedAt: Str,
  uptimeMs: Num,
  dataDir: Str,
  socket: Str,
  swarmKeyProtected: Type.Boolean({ description: 'false only in the insecure lab mode' }),
  swarmKeyFingerprint: Type.Union([Str, Type.Null()], {
    description: 'first 16 hex characters of sha256(swarm key): compare across nodes without showing the key'
  }),
  metrics: Type.Object({ enabled: Bool, listen: NullableStr, error: NullableStr }),
  connections: Type.Integer({ description: 'peers with an open connection' }),
  counts: Type.Object({ alive: Int, suspect: Int, dead: Int, left: Int, total: Int }, {
    description: 'every known node (this one included) by state'
  }),
  /** whether tasks' --memory and --cpus are enforced here (a cgroup per task), and why not */
  limits: LimitsStatusSchema
})

const GpuSchema = Type.Object({
  index: Int,
  uuid: Str,
  name: Str,
  memoryTotalMiB: Num,
  memoryUsedMiB: Type.Optional(Num),
  utilizationPercent: Type.Optional(Num)
})

const HealthFields = {
  health: NodeHealthSchema,
  healthReason: Str,
  healthSince: Type.String({ description: 'ISO time when `health` last changed' }),
  breaker: BreakerStateSchema,
  paused: Bool
}

const StateChange = Type.Object({ state: MemberStateSchema, at: Str, reason: Str })

export const NodeEntrySchema = Type.Object({
  id: Str,
  name: Str,
  state: MemberStateSchema,
  self: Type.Boolean({ description: 'true for the node that answered' }),
  addrs: StrArray,
  region: Str,
  labels: Labels,
  capabilities: StrArray,
  gpus: Type.Array(GpuSchema, { description: "this node's GPUs with live use; other nodes' inventory from the registry (use is in `load`)" }),
  drain: Bool,
  version: NullableStr,
  incarnation: Int,
  load: Type.Union([LoadSchema, Type.Null()]),
  lastSeen: Type.Union([Str, Type.Null()], { description: 'ISO time of the last heartbeat heard (for this node: sent); null if never' }),
  heartbeatAgeMs: NullableNum,
  ...HealthFields,
  role: RoleSchema
})

export const HealthEntrySchema = Type.Object({
  id: Str,
  name: Str,
  state: MemberStateSchema,
  self: Bool,
  heartbeatAgeMs: NullableNum,
  rttMs: Type.Union([Num, Type.Null()], { description: 'round trip of the last direct probe of this peer, ms' }),
  incarnation: Int,
  connected: Bool,
  history: Type.Array(StateChange),
  ...HealthFields
})

export const HealthDetailSchema = Type.Object({
  id: Str,
  name: Str,
  state: MemberStateSchema,
  self: Bool,
  heartbeatAgeMs: NullableNum,
  rttMs: NullableNum,
  connected: Bool,
  probes: Type.Array(Type.Object({ at: Str, rttMs: NullableNum, ok: Bool }), {
    description: 'the last 100 direct probes of it, newest last (none for this node itself)'
  }),
  history: Type.Array(StateChange, { description: 'its membership state changes, newest last' }),
  healthHistory: Type.Array(Type.Object({ health: NodeHealthSchema, at: Str, reason: Str }), { description: 'its health changes, newest last' }),
  ...HealthFields
})

export const SessionEntrySchema = Type.Object({
  id: Str,
  value: Type.Unknown(),
  owner: Type.Union([Str, Type.Null()], { description: "node id of the session's owner (where its warm state lives), or null" }),
  ownerName: NullableStr,
  createdAt: Str,
  updatedAt: Str,
  ttlMs: NullableNum,
  expiresAt: NullableStr,
  writer: Str,
  worker: Type.Optional(Type.Unknown())
})

/** GET /v1/state/hash: a sha256 over every live entry this node holds; equal hashes mean equal replicated state. */
export const StateHashSchema = Type.Object({
  hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  entries: Type.Integer({ minimum: 0 }),
  writers: Type.Integer({ minimum: 0 })
})

/** GET /v1/stats: the cluster's figures, summed over alive nodes (as this node sees them). */
export const StatsResponseSchema = Type.Object({
  at: Str,
  nodes: Type.Object({ total: Int, alive: Int, suspect: Int, dead: Int, left: Int, draining: Int }),
  slots: Type.Object({ total: Num, free: Num }),
  gpus: Type.Object({ total: Int, free: Int, utilizationPercent: Num, memoryUsedBytes: Num, memoryTotalBytes: Num }),
  tasks: Type.Object({
    running: Int,
    queued: Int,
    done: Type.Integer({ description: 'task attempts finished since each node started' }),
    failed: Int,
    donePerSecond: Type.Union([Num, Type.Null()], { description: 'over the last few seconds (null until two samples exist)' }),
    failedPerSecond: NullableNum
  }),
  sessions: Int,
  workers: Int,
  syncCache: Type.Optional(Type.Object({ bytes: Num, blobs: Int, limitBytes: Num }, {
    description: "this node's blob cache of synced trees (`--sync`): bytes held, blobs, and its bound (executor.syncCacheSize)"
  })),
  perNode: Type.Array(Type.Object({
    id: Str,
    name: Str,
    state: Str,
    drain: Bool,
    cpu: Num,
    memUsed: Num,
    slots: Num,
    freeSlots: Num,
    gpus: Int,
    freeGpus: Int,
    gpuUtilizationPercent: Num,
    running: Int,
    queued: Int
  }))
})

export const QueueEntrySchema = Type.Object({ task: Str, node: Str, nodeName: Str, priority: Int, waitingMs: Num })
export const QueuePauseEntrySchema = Type.Object({
  id: Str,
  name: Str,
  paused: Bool,
  running: Int,
  queued: Int,
  error: Type.Optional(Type.String({ description: 'why the node could not be reached (then the other fields are its last known)' }))
})
export const RebalanceEntrySchema = Type.Object({ task: Str, from: Str, fromName: Str, to: Str, toName: Str, priority: Int })

const PoolFields = {
  name: Str,
  nodes: Type.Integer({ description: 'known nodes in it (`alive`: how many are alive)' }),
  alive: Int,
  slots: Num,
  freeSlots: Num,
  gpus: Int,
  freeGpus: Int,
  running: Int,
  queued: Int,
  healthy: Int,
  degraded: Int,
  unavailable: Int
}
export const PoolEntrySchema = Type.Object(PoolFields)
export const PoolDetailSchema = Type.Object({
  ...PoolFields,
  members: Type.Array(Type.Object({ id: Str, name: Str, state: MemberStateSchema, health: NodeHealthSchema, role: RoleSchema }))
})

export const DiscoverEntrySchema = Type.Object({
  id: Str,
  addrs: StrArray,
  member: Type.Boolean({ description: "this node's membership knows it (alive or suspect)" }),
  connected: Bool,
  source: Type.Literal('dht', { description: 'where it was found: the DHT rendezvous' })
})
export const JoinResultSchema = Type.Object({ connected: StrArray, failed: Type.Array(Type.Object({ addr: Str, error: Str })) })
export const ForgetResultSchema = Type.Object({ id: Str, name: Str, forgotten: Type.Literal(true) })
export const DrainResultSchema = Type.Object({ id: Str, name: Str, drain: Bool, running: Int, queued: Int })
export const SessionDeletedSchema = Type.Object({ id: Str, deleted: Type.Literal(true) })
export const SessionClosedSchema = Type.Object({ id: Str, closed: Int, node: NullableStr })

const CallError = Type.Object({ code: Str, message: Str })
export const CallResultSchema = Type.Union([
  Type.Object({ node: Str, nodeName: Str, result: Type.Unknown() }),
  Type.Object({ node: Str, nodeName: Str, error: CallError }),
  Type.Object({
    node: Str,
    nodeName: Str,
    results: Type.Array(Type.Union([
      Type.Object({ ok: Type.Literal(true), result: Type.Unknown() }),
      Type.Object({ ok: Type.Literal(false), code: Str, error: Str })
    ]))
  })
], { description: '`payload`: `result` or `error`; `payloads`: `results`, one per payload in order' })

/** 201 answer of a detached submit (tasks, jobs, workflows). */
export const SubmittedSchema = Type.Object({ id: Str })

export const TaskRecordSchema = Type.Object({
  id: Str,
  status: TaskStatusSchema,
  node: NullableStr,
  nodeName: NullableStr,
  origin: Str,
  originName: Str,
  coordinator: Str,
  attempts: Int,
  exitCode: NullableInt,
  signal: NullableStr,
  error: NullableStr,
  command: Type.Union([StrArray, Type.Null()]),
  type: NullableStr,
  session: NullableStr,
  priority: Int,
  cpus: Num,
  gpus: Int,
  memory: Num,
  gpuIds: StrArray,
  createdAt: Str,
  startedAt: NullableStr,
  finishedAt: NullableStr,
  durationMs: NullableNum,
  cancelRequested: Bool,
  oom: Bool,
  reason: Type.Optional(Str),
  result: Type.Optional(Type.Unknown()),
  envNames: StrArray,
  offeredBy: NullableStr
})

export const TaskCancelResultSchema = Type.Object({ id: Str, status: TaskStatusSchema })
export const StdinResultSchema = Type.Object({ id: Str, open: Bool })

/** One line of a task's NDJSON stream (POST /v1/tasks, GET /v1/tasks/ID/logs): proto/task-stream.ts. */
export const TaskStreamEventSchema = Type.Union([
  Type.Object({ type: Type.Literal('accepted'), id: Str }),
  Type.Object({ type: Type.Literal('placed'), id: Str, node: Str, nodeName: Str, attempt: Int, queued: Bool, reason: Type.Optional(Str), passed: Type.Optional(Type.Array(Type.Object({ name: Str, reason: Str }))) }),
  Type.Object({ type: Type.Literal('sync'), id: Str, node: Str, nodeName: Str, sentBytes: Num, totalBytes: Num }),
  Type.Object({ type: Type.Literal('started'), id: Str, node: Str, attempt: Int, pid: Int, gpus: StrArray }),
  Type.Object({ type: Type.Literal('output'), stream: Type.Enum(['stdout', 'stderr']), offset: Num, data: Str }),
  Type.Object({ type: Type.Literal('gap'), bytes: Num }),
  Type.Object({ type: Type.Literal('retry'), id: Str, attempt: Int, reason: Str, delayMs: Num }),
  Type.Object({ type: Type.Literal('waiting'), id: Str, reason: Str, delayMs: Num }),
  Type.Object({ type: Type.Literal('rehomed'), id: Str, session: Str, from: NullableStr, fromName: NullableStr, to: Str, toName: Str, reason: Type.Enum(['no-owner', 'dead', 'draining', 'unfit', 'full', 'unreachable']), message: Str }),
  Type.Object({
    type: Type.Literal('exit'),
    id: Str,
    status: TaskStatusSchema,
    exitCode: NullableInt,
    code: Int,
    signal: NullableStr,
    error: NullableStr,
    node: NullableStr,
    nodeName: NullableStr,
    attempts: Int,
    result: Type.Optional(Type.Unknown()),
    fetched: Type.Optional(Type.Object({ manifest: NullableStr, files: Int, bytes: Num, error: Type.Optional(Str) }))
  })
])

const JobResultFields = {
  index: Int,
  item: Type.Unknown(),
  node: NullableStr,
  nodeName: NullableStr,
  status: Type.Enum(['pending', 'running', 'completed', 'failed', 'cancelled']),
  exitCode: NullableInt,
  stdout: Str,
  attempts: Int,
  error: Type.Optional(Str)
}
export const JobResultSchema = Type.Object(JobResultFields)
export const JobRecordSchema = Type.Object({
  id: Str,
  strategy: Type.Enum(JOB_STRATEGIES),
  aggregate: Type.Enum(JOB_AGGREGATES),
  status: Type.Enum(JOB_STATUSES),
  total: Int,
  succeeded: Int,
  failed: Int,
  cancelled: Int,
  running: Int,
  pending: Int,
  answer: NullableStr,
  error: NullableStr,
  command: Type.Union([StrArray, Type.Null()]),
  type: NullableStr,
  reduce: NullableStr,
  maxParallel: Int,
  origin: Str,
  originName: Str,
  driver: Str,
  driverName: Str,
  createdAt: Str,
  finishedAt: NullableStr,
  results: Type.Optional(Type.Array(JobResultSchema))
})
export const JobStreamEventSchema = Type.Union([
  Type.Object({ type: Type.Literal('accepted'), id: Str, total: Int }),
  Type.Object({ type: Type.Literal('progress'), done: Int, running: Int, failed: Int, total: Int }),
  Type.Object({ type: Type.Literal('result'), ...JobResultFields }),
  Type.Object({ type: Type.Literal('done'), job: JobRecordSchema })
])
export const JobCancelResultSchema = Type.Object({ id: Str, status: Type.Literal('cancelling') })
export const JobRetryResultSchema = Type.Object({ id: Str, retrying: Int })

const WorkflowJobFields = {
  name: Str,
  status: Type.Enum(WORKFLOW_JOB_STATUSES),
  needs: StrArray,
  node: NullableStr,
  nodeName: NullableStr,
  attempts: Int,
  exitCode: NullableInt,
  startedAt: NullableStr,
  endedAt: NullableStr,
  taskId: Type.Optional(NullableStr),
  jobId: Type.Optional(NullableStr),
  error: Type.Optional(NullableStr)
}
export const WorkflowJobRecordSchema = Type.Object(WorkflowJobFields)
export const WorkflowRecordSchema = Type.Object({
  id: Str,
  name: Str,
  status: Type.Enum(WORKFLOW_STATUSES),
  jobs: Type.Array(WorkflowJobRecordSchema),
  driver: Type.Optional(Str),
  driverName: Type.Optional(Str),
  createdAt: Type.Optional(Str),
  finishedAt: Type.Optional(NullableStr),
  error: Type.Optional(NullableStr)
})
export const WorkflowStreamEventSchema = Type.Union([
  Type.Object({ type: Type.Literal('accepted'), id: Str, name: Str, jobs: StrArray }),
  Type.Object({ type: Type.Literal('job'), ...WorkflowJobFields }),
  Type.Object({ type: Type.Literal('done'), workflow: WorkflowRecordSchema })
])
export const WorkflowCancelResultSchema = Type.Object({ id: Str, status: Type.Literal('cancelling') })
export const WorkflowRetryResultSchema = Type.Object({ id: Str, retrying: StrArray })
export const WorkflowStdoutSchema = Type.Object({ stdout: Str })

export const SyncMissingResultSchema = Type.Object({ missing: StrArray })
export const SyncUploadResultSchema = Type.Object({ refused: StrArray })
export const SyncManifestResultSchema = Type.Object({ ok: Type.Boolean() })
export const SyncReadResultSchema = Type.Object({ data: Type.Array(Str, { description: 'each range\'s bytes, base64' }) })

/** The OpenAPI document itself (GET /v1/openapi.json). */
export const OpenApiDocumentSchema = Type.Object({ openapi: Str, info: Type.Object({}), paths: Type.Object({}) }, { description: 'this document' })
