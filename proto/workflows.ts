/**
 * Workflows on the wire: a DAG of jobs (gridctl workflow run). A workflow's state lives in the replicated `workflows`
 * collection: one entry for the workflow (its definition and each job's state, written by its driver; pause and
 * cancel marks, written by whoever asked), and one entry per job's kept stdout. A plain job runs as a task
 * (proto/tasks.ts) whose id says its workflow, job and run number; a job with items or count runs as a job
 * (proto/jobs.ts).
 */
import Type, { type Static } from 'typebox'
import { validator } from './validate.ts'
import { WORKFLOW_JOBS_MAX, WORKFLOW_JOB_STATUSES, type WorkflowJobStatus, type WorkflowStatus } from './workflow-names.ts'

export * from './workflow-names.ts'

const Id = Type.String({ minLength: 1, maxLength: 128 })
const Ms = Type.Number({ minimum: 0 })
const Name = Type.String({ maxLength: 63 })

/** One job of the definition, checked and with its parameters substituted. */
export const WorkflowJobDefSchema = Type.Object({
  needs: Type.Array(Type.String({ maxLength: 63 })),
  /** a distribute job (items or count): it runs through the jobs service; else a task */
  distribute: Type.Boolean(),
  /** the body of POST /v1/tasks (or /v1/jobs for a distribute job), without GRID_NEEDS */
  body: Type.Record(Type.String(), Type.Unknown())
}, { additionalProperties: false })
export type WorkflowJobDef = Static<typeof WorkflowJobDefSchema>

/** How one job of a workflow stands, as its driver last wrote it. */
export const WorkflowJobStateSchema = Type.Object({
  status: Type.Enum(WORKFLOW_JOB_STATUSES),
  /** the run number of its latest run (0: never started; a run whose task never started is run again as run+1) */
  run: Type.Integer({ minimum: 0 }),
  /** the `workflow retry` round its latest run belongs to (absent: 0) */
  round: Type.Optional(Type.Integer({ minimum: 0 })),
  /** a distribute job's job id, once submitted */
  jobId: Type.Optional(Id),
  node: Type.Optional(Id),
  nodeName: Type.Optional(Name),
  attempts: Type.Optional(Type.Integer({ minimum: 0 })),
  exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  startedAt: Type.Optional(Ms),
  endedAt: Type.Optional(Ms),
  error: Type.Optional(Type.String({ maxLength: 4096 }))
}, { additionalProperties: false })
export type WorkflowJobState = Static<typeof WorkflowJobStateSchema>

export const WorkflowDocSchema = Type.Object({
  name: Type.String({ maxLength: 128 }),
  /** most jobs running at once (absent: no limit) */
  parallelism: Type.Optional(Type.Integer({ minimum: 1 })),
  /** job names, in the file's order */
  order: Type.Array(Type.String({ maxLength: 63 }), { maxItems: WORKFLOW_JOBS_MAX }),
  defs: Type.Record(Type.String(), WorkflowJobDefSchema),
  jobs: Type.Record(Type.String(), WorkflowJobStateSchema),
  origin: Id,
  originName: Name,
  driver: Id,
  driverName: Name,
  createdAt: Ms,
  /** how many times `workflow retry` ran it again, and when the last one began (older marks are for earlier rounds) */
  retries: Type.Optional(Type.Integer({ minimum: 0 })),
  retriedAt: Type.Optional(Ms),
  final: Type.Optional(Type.Union([Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('cancelled')])),
  finishedAt: Type.Optional(Ms),
  error: Type.Optional(Type.String({ maxLength: 4096 }))
}, { additionalProperties: false })
export type WorkflowDoc = Static<typeof WorkflowDocSchema>

/**
 * One writer's entry in the `workflows` collection. Key `ID`: `{doc?, pause?, cancel?}` (the newest pause mark of
 * any writer says whether it is paused); key `ID/out/JOB`: `{stdout}` (the job's trimmed stdout, or a distribute
 * job's answer, up to JOB_RESULT_STDOUT_MAX_BYTES); key `ID/job/JOB`: `{job}`, a job's state as its driver changed it
 * since it last wrote the document (the newer stamp of the two wins), so a change costs one job's bytes.
 */
export const WorkflowEntrySchema = Type.Object({
  doc: Type.Optional(WorkflowDocSchema),
  pause: Type.Optional(Type.Object({ at: Ms, paused: Type.Boolean() })),
  cancel: Type.Optional(Type.Object({ at: Ms })),
  stdout: Type.Optional(Type.String()),
  job: Type.Optional(WorkflowJobStateSchema)
}, { additionalProperties: false })
export type WorkflowEntry = Static<typeof WorkflowEntrySchema>
export const workflowEntry = validator(WorkflowEntrySchema)

export const workflowKeys = {
  doc: (id: string): string => id,
  out: (id: string, job: string): string => `${id}/out/${job}`,
  job: (id: string, job: string): string => `${id}/job/${job}`,
  workflowOf: (key: string): string => key.split('/', 1)[0] as string,
  isDoc: (key: string): boolean => !key.includes('/')
}

/** The task id of a plain job's run. */
export const workflowTaskId = (workflow: string, job: string, run: number): string => `${workflow}.${job}.${run}`

/** One job as `gridctl workflow status ID` shows it (`-o json`: these fields). */
export interface WorkflowJobRecord {
  name: string
  status: WorkflowJobStatus
  needs: string[]
  node: string | null
  nodeName: string | null
  attempts: number
  exitCode: number | null
  startedAt: string | null
  endedAt: string | null
  /** the task of its latest run (a plain job), or its job (a distribute job): for logs */
  taskId?: string | null
  jobId?: string | null
  error?: string | null
}

export interface WorkflowRecord {
  id: string
  name: string
  status: WorkflowStatus
  jobs: WorkflowJobRecord[]
  driver?: string
  driverName?: string
  createdAt?: string
  finishedAt?: string | null
  error?: string | null
}

/** The events of `POST /v1/workflows` (NDJSON, one a line). */
export type WorkflowStreamEvent =
  | { type: 'accepted', id: string, name: string, jobs: string[] }
  | ({ type: 'job' } & WorkflowJobRecord)
  | { type: 'done', workflow: WorkflowRecord }
