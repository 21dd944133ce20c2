/**
 * The control API's request bodies as TypeBox schemas: what the routes validate with (src/control/routes/,
 * src/tasks/spec.ts) and what the OpenAPI document says they take (proto/api-routes.ts). The answers are in
 * proto/api-schemas.ts, which only the generator loads, so the daemon's start builds none of them.
 */
import Type from 'typebox'
import { JOB_AGGREGATES, JOB_ITEMS_MAX, JOB_STRATEGIES } from './job-names.ts'
import { JOB_REDUCE_MAX_CHARS } from './jobs.ts'
import { SyncSubmitSchema } from './sync.ts'
import { STRATEGIES } from './tasks.ts'
import { WORKER_BATCH_MAX } from './worker.ts'
import { WORKFLOW_JOBS_MAX } from './workflow-names.ts'

const Str = Type.String()
const Num = Type.Number()
const Bool = Type.Boolean()

/** POST /v1/tasks: durations and sizes may be strings ("30s", "4GiB") or numbers (ms, bytes). */
export const SubmitRequestSchema = Type.Object({
  command: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
  type: Type.Optional(Type.String()),
  payload: Type.Optional(Type.Unknown()),
  cpus: Type.Optional(Type.Number()),
  gpus: Type.Optional(Type.Integer()),
  memory: Type.Optional(Type.Union([Type.Integer(), Type.String()])),
  require: Type.Optional(Type.Array(Type.String())),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  region: Type.Optional(Type.String()),
  session: Type.Optional(Type.String()),
  priority: Type.Optional(Type.Integer()),
  timeout: Type.Optional(Type.Union([Type.Integer(), Type.String()])),
  retries: Type.Optional(Type.Integer()),
  retryOnFailure: Type.Optional(Type.Boolean()),
  env: Type.Optional(Type.Record(Type.String(), Type.String())),
  cwd: Type.Optional(Type.String()),
  /** where to run when no cwd is given, if it exists on the executor (gridctl: the caller's directory) */
  cwdDefault: Type.Optional(Type.String()),
  /** the client streams the task's stdin to POST /v1/tasks/ID/stdin (else the task's stdin is empty) */
  stdin: Type.Optional(Type.Boolean()),
  /** a synced tree to run in: its manifest (or the hash of one uploaded as a blob) and `--fetch` patterns */
  sync: Type.Optional(SyncSubmitSchema),
  strategy: Type.Optional(Type.Enum(STRATEGIES)),
  node: Type.Optional(Type.String()),
  /** answer 201 with the task id at once instead of streaming its events */
  detach: Type.Optional(Type.Boolean()),
  /** how output bytes appear in the stream: utf8 text (default) or base64 */
  encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')]))
}, { additionalProperties: false })

const { detach: _d, encoding: _e, stdin: _s, payload: _p, sync: _y, strategy: _t, ...runFields } = SubmitRequestSchema.properties
/** POST /v1/jobs: the fields of a task (every run's spec) and the job's own. */
export const JobRequestSchema = Type.Object({
  ...runFields,
  /** a synced tree every run runs in (as a task's `sync`; `fetch` is a task's alone) */
  sync: Type.Optional(SyncSubmitSchema),
  strategy: Type.Optional(Type.Enum(JOB_STRATEGIES)),
  items: Type.Optional(Type.Array(Type.Unknown(), { maxItems: JOB_ITEMS_MAX })),
  count: Type.Optional(Type.Integer({ minimum: 1, maximum: JOB_ITEMS_MAX })),
  aggregate: Type.Optional(Type.Enum(JOB_AGGREGATES)),
  reduce: Type.Optional(Type.String({ minLength: 1, maxLength: JOB_REDUCE_MAX_CHARS })),
  maxParallel: Type.Optional(Type.Integer({ minimum: 1 })),
  detach: Type.Optional(Type.Boolean()),
  /** false: the stream has no `result` events and `done`'s job comes without `results` (GET /v1/jobs/ID has them) */
  results: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

/** POST /v1/workflows: the workflow file as JSON (its jobs are checked by src/workflows/file.ts, every mistake at once). */
export const WorkflowRequestSchema = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  parallelism: Type.Optional(Type.Integer({ minimum: 1 })),
  params: Type.Optional(Type.Record(Str, Type.Union([Str, Num, Bool, Type.Null()]))),
  jobs: Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$' }), Type.Record(Str, Type.Unknown()), { minProperties: 1, maxProperties: WORKFLOW_JOBS_MAX }),
  detach: Type.Optional(Bool)
}, { additionalProperties: false })

/** POST /v1/tasks/ID/stdin: a piece of the task's stdin; `end` closes it after this piece. */
export const StdinRequestSchema = Type.Object({
  data: Type.Optional(Str),
  encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')])),
  end: Type.Optional(Bool)
})

/** POST /v1/call: one request (`payload`) or a batch (`payloads`) to warm workers. */
export const CallRequestSchema = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 63 }),
  session: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  node: Type.Optional(Type.String()),
  payload: Type.Optional(Type.Unknown()),
  payloads: Type.Optional(Type.Array(Type.Unknown(), { minItems: 1, maxItems: WORKER_BATCH_MAX })),
  timeout: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.String()])),
  priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 }))
}, { additionalProperties: false })

/** POST /v1/join: multiaddrs to dial now. */
export const JoinRequestSchema = Type.Object({ addrs: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 64 }) }, { additionalProperties: false })

/** PUT /v1/sessions/ID: the session's value, its time to live and its owner node. */
export const PutSessionSchema = Type.Object({
  value: Type.Unknown(),
  /** a duration such as "30m", or null for none */
  ttl: Type.Optional(Type.Union([Type.String({ maxLength: 32 }), Type.Null()])),
  /** node id or name */
  owner: Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Null()]))
}, { additionalProperties: false })

/** POST /v1/queue/pause and /v1/queue/resume: one node, or every node. */
export const QueueTargetSchema = Type.Union([
  Type.Object({ node: Type.String({ minLength: 1 }) }),
  Type.Object({ all: Type.Literal(true) })
])

/** POST /v1/rebalance: `dryRun` says what would move without moving it. */
export const RebalanceRequestSchema = Type.Object({ dryRun: Type.Optional(Bool) })
