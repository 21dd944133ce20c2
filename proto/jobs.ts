/**
 * Jobs on the wire: one command distributed over the cluster (gridctl distribute). A job's state lives in the
 * replicated `jobs` collection, compactly: one entry for the job (its document, a cancel mark), its items in chunks
 * written once, and its runs' progress in chunks by column, each written once it settles, never one record per item. Each run is a task
 * (proto/tasks.ts) whose id says its job, item and run number.
 */
import Type, { type Static } from 'typebox'
import { StoredSpecSchema } from './tasks.ts'
import { validator } from './validate.ts'
import { JOB_AGGREGATES, JOB_CHUNK_ITEMS, JOB_ITEMS_MAX, JOB_STRATEGIES, type JobAggregate, type JobStatus, type JobStrategy, type RunStatus } from './job-names.ts'

export * from './job-names.ts'

/** Largest POST /v1/jobs body (its items included): a million short items fit; other endpoints take 4 MiB. */
export const JOB_REQUEST_MAX_BYTES = 32 * 1024 * 1024
/** Longest `--reduce` command line. */
export const JOB_REDUCE_MAX_CHARS = 65_536

const Id = Type.String({ minLength: 1, maxLength: 128 })
const Ms = Type.Number({ minimum: 0 })
const FinalStatus = Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled')])

/** What the driver of a job writes about it: the request, who drives it, and the verdict once there is one. */
export const JobDocSchema = Type.Object({
  strategy: Type.Enum(JOB_STRATEGIES),
  aggregate: Type.Enum(JOB_AGGREGATES),
  /** every run's spec before its item (env values never: their names only, as in task records) */
  spec: StoredSpecSchema,
  reduce: Type.Optional(Type.String({ maxLength: JOB_REDUCE_MAX_CHARS })),
  /** most runs of the job at once across the cluster */
  maxParallel: Type.Integer({ minimum: 1 }),
  total: Type.Integer({ minimum: 0, maximum: JOB_ITEMS_MAX }),
  origin: Id,
  originName: Type.String({ maxLength: 63 }),
  /** the node driving it now (the origin, or its successor) */
  driver: Id,
  driverName: Type.String({ maxLength: 63 }),
  createdAt: Ms,
  /** how many times `gridctl job retry` ran it again */
  retries: Type.Optional(Type.Integer({ minimum: 0 })),
  /** when the last `job retry` began: a cancel mark older than this was for an earlier round */
  retriedAt: Type.Optional(Ms),
  final: Type.Optional(FinalStatus),
  answer: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  error: Type.Optional(Type.String({ maxLength: 4096 })),
  finishedAt: Type.Optional(Ms),
  /** the reduce run's task id, once it started */
  reduceTask: Type.Optional(Id)
})
export type JobDoc = Static<typeof JobDocSchema>

/** How one item's latest run went, as its driver last wrote it. Absent: the item has not started. */
export const ItemRunSchema = Type.Object({
  status: Type.Union([Type.Literal('running'), FinalStatus]),
  /** the run number (1, then more for `job retry` or a run whose task never started) */
  run: Type.Integer({ minimum: 1 }),
  /** the `job retry` round it ran in (0, absent, for the first) */
  round: Type.Optional(Type.Integer({ minimum: 0 })),
  node: Type.Optional(Id),
  nodeName: Type.Optional(Type.String({ maxLength: 63 })),
  exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  attempts: Type.Optional(Type.Integer({ minimum: 0 })),
  stdout: Type.Optional(Type.String()),
  error: Type.Optional(Type.String({ maxLength: 4096 }))
})
export type ItemRun = Static<typeof ItemRunSchema>

/**
 * A progress chunk's runs by column, as drivers write them (src/jobs/run-columns.ts): a few bytes an item where the
 * object form (`runs`, still read from writers of the previous release) spent over a hundred, most of it field names
 * and the node id repeated. Every array has one element per item of the chunk (`s.length`), except `n`/`nn`.
 */
export const RunColumnsSchema = Type.Object({
  /** per item: '-' not started, 'r' running, 'c' completed, 'f' failed, 'x' cancelled */
  s: Type.String({ maxLength: JOB_CHUNK_ITEMS }),
  /** run numbers (0 for an item not started) */
  r: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: JOB_CHUNK_ITEMS }),
  /** `job retry` rounds; absent when every run is of the first */
  d: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { maxItems: JOB_CHUNK_ITEMS })),
  /** the nodes the chunk names (ids, and their names), and per item its node's index there (-1: none) */
  n: Type.Array(Id, { maxItems: JOB_CHUNK_ITEMS }),
  nn: Type.Array(Type.String({ maxLength: 63 }), { maxItems: JOB_CHUNK_ITEMS }),
  ni: Type.Array(Type.Integer({ minimum: -1, maximum: JOB_CHUNK_ITEMS }), { maxItems: JOB_CHUNK_ITEMS }),
  /** exit codes (null: none) */
  x: Type.Array(Type.Union([Type.Integer(), Type.Null()]), { maxItems: JOB_CHUNK_ITEMS }),
  /** attempts */
  a: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: JOB_CHUNK_ITEMS }),
  /** stdout ('' for none); absent when no item printed anything */
  o: Type.Optional(Type.Array(Type.String(), { maxItems: JOB_CHUNK_ITEMS })),
  /** why a run did not succeed ('' for none); absent when none says */
  e: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: JOB_CHUNK_ITEMS }))
}, { additionalProperties: false })
export type RunColumns = Static<typeof RunColumnsSchema>

/**
 * One writer's entry in the `jobs` collection. Key `ID`: `{doc?, cancel?}`; key `ID/items/N`: `{items}` (chunk N of
 * the items); key `ID/runs/N`: `{cols}` (chunk N's progress by column; `{runs}`, one object per item, null for one
 * not started, from writers of the previous release).
 */
export const JobEntrySchema = Type.Object({
  doc: Type.Optional(JobDocSchema),
  cancel: Type.Optional(Type.Object({ at: Ms, by: Id })),
  items: Type.Optional(Type.Array(Type.Unknown(), { maxItems: JOB_CHUNK_ITEMS })),
  runs: Type.Optional(Type.Array(Type.Union([ItemRunSchema, Type.Null()]), { maxItems: JOB_CHUNK_ITEMS })),
  /** key `ID/runs/N` as drivers write it now: the same runs by column */
  cols: Type.Optional(RunColumnsSchema)
}, { additionalProperties: false })
export type JobEntry = Static<typeof JobEntrySchema>
export const jobEntry = validator(JobEntrySchema)

/** One run's result, as `gridctl job ID -o json` and the `result` event show it. */
export interface JobResult {
  index: number
  item: unknown
  node: string | null
  nodeName: string | null
  status: RunStatus
  exitCode: number | null
  stdout: string
  attempts: number
  error?: string
}

/** A job as `gridctl job ID` (and `distribute -o json`) shows it; `gridctl jobs` lists them without `results`. */
export interface JobRecord {
  id: string
  strategy: JobStrategy
  aggregate: JobAggregate
  status: JobStatus
  total: number
  succeeded: number
  failed: number
  cancelled: number
  running: number
  pending: number
  answer: string | null
  error: string | null
  command: string[] | null
  type: string | null
  reduce: string | null
  maxParallel: number
  origin: string
  originName: string
  driver: string
  driverName: string
  createdAt: string
  finishedAt: string | null
  results?: JobResult[]
}

/** The events of `POST /v1/jobs` (NDJSON, one a line). */
export type JobStreamEvent =
  | { type: 'accepted', id: string, total: number }
  | { type: 'progress', done: number, running: number, failed: number, total: number }
  | ({ type: 'result' } & JobResult)
  | { type: 'done', job: JobRecord }

/** Keys of a job's entries in the `jobs` collection. */
export const jobKeys = {
  doc: (id: string): string => id,
  items: (id: string, chunk: number): string => `${id}/items/${chunk}`,
  runs: (id: string, chunk: number): string => `${id}/runs/${chunk}`,
  /** the job id of any of its keys */
  jobOf: (key: string): string => key.split('/', 1)[0] as string,
  isDoc: (key: string): boolean => !key.includes('/')
}

/** The task id of one run of one item (`ID.INDEX.RUN`), and of the reduce (`ID.reduce.RUN`). */
export const runTaskId = (job: string, index: number, run: number): string => `${job}.${index}.${run}`
export const reduceTaskId = (job: string, run: number): string => `${job}.reduce.${run}`

/** An item as its run sees it in GRID_ITEM and on stdin: a string as it is, any other JSON value as JSON text. */
export function itemText (item: unknown): string {
  return typeof item === 'string' ? item : (JSON.stringify(item) ?? 'null')
}
