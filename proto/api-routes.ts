/**
 * The control API's route table: every endpoint under /v1 with its method, path (`:name` parameters), query
 * parameters, request body, answers and the error codes it gives. The OpenAPI document (docs/openapi.json, served at
 * GET /v1/openapi.json) is generated from it by src/control/openapi.ts; tests/unit/openapi.test.ts checks that the
 * server's routes (src/control/index.ts) are exactly these, and tests/cluster/openapi.test.ts that each one answers.
 * gridctl never loads this file (it loads typebox).
 */
import Type, { type TSchema } from 'typebox'
import { MEMBER_STATES, type ErrorCode } from '../src/interface/index.ts'
import { JOB_STATUSES } from './job-names.ts'
import * as B from './api-bodies.ts'
import * as S from './api-schemas.ts'
import { SYNC_UPLOAD_BINARY_TYPE, SyncManifestBodySchema, SyncMissingBodySchema, SyncReadBodySchema, SyncUploadBodySchema } from './sync.ts'
import { TASK_STATUSES } from './tasks.ts'
import { WORKFLOW_STATUSES } from './workflow-names.ts'

export type ApiMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

/** One answer: JSON (`schema`), an NDJSON stream of `stream` items, or text. */
export type ApiAnswer =
  | { description: string, schema: TSchema }
  | { description: string, stream: TSchema }
  | { description: string, text: string }

export interface ApiQueryParam { schema: TSchema, description: string }

export interface ApiRoute {
  method: ApiMethod
  /** under /v1, with `:name` parameters */
  path: string
  /** a stable name for generated clients */
  operationId: string
  summary: string
  tags: string[]
  query?: Record<string, ApiQueryParam>
  body?: { schema: TSchema, required: boolean, binary?: { contentType: string, description: string } }
  /** answers by HTTP status (200, 201) */
  answers: Record<number, ApiAnswer>
  /** the codes it answers with besides the ones every route may give (INTERNAL, UNAVAILABLE) */
  errors: ErrorCode[]
}

/** Error codes every route may answer with. */
export const COMMON_ERRORS: readonly ErrorCode[] = ['INTERNAL', 'UNAVAILABLE']

const Limit: ApiQueryParam = { schema: Type.Integer({ minimum: 1, maximum: 1_000_000 }), description: 'at most this many, newest first' }
const Flag = (description: string): ApiQueryParam => ({ schema: Type.Enum(['1', 'true', '0', 'false']), description })
const json = (description: string, schema: TSchema): ApiAnswer => ({ description, schema })
const list = (description: string, schema: TSchema): ApiAnswer => ({ description, schema: Type.Array(schema) })
const submitted: ApiAnswer = json('detached: the id, at once', S.SubmittedSchema)
const body = (schema: TSchema, required = true): ApiRoute['body'] => ({ schema, required })

/** Every route of the control API, in the order the README's table lists them. */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: 'GET', path: '/status', operationId: 'getStatus', summary: 'This node, its addresses and the cluster\'s counts by state', tags: ['cluster'], answers: { 200: json('this node', S.StatusResponseSchema) }, errors: [] },
  { method: 'GET', path: '/stats', operationId: 'getStats', summary: 'The cluster\'s figures, summed over alive nodes', tags: ['cluster'], answers: { 200: json('cluster figures', S.StatsResponseSchema) }, errors: [] },
  { method: 'GET', path: '/health', operationId: 'listHealth', summary: 'Per node: state, health, heartbeat age, probe round trip', tags: ['nodes'], answers: { 200: list('every known node', S.HealthEntrySchema) }, errors: [] },
  { method: 'GET', path: '/health/:id', operationId: 'getHealth', summary: 'One node\'s health, its last 100 probes and its state changes', tags: ['nodes'], answers: { 200: json('the node', S.HealthDetailSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'GET', path: '/metrics', operationId: 'getMetrics', summary: 'This node\'s Prometheus text', tags: ['cluster'], answers: { 200: { description: 'Prometheus exposition format', text: 'text/plain' } }, errors: [] },
  { method: 'GET', path: '/state/hash', operationId: 'getStateHash', summary: 'A sha256 over every live replicated entry this node holds (collection, key, writer, stamp, value): equal on two nodes when their states are', tags: ['cluster'], answers: { 200: json('the hash, and how many entries and writers it covers', S.StateHashSchema) }, errors: [] },
  { method: 'GET', path: '/openapi.json', operationId: 'getOpenApi', summary: 'This document', tags: ['cluster'], answers: { 200: json('the OpenAPI document of the control API', S.OpenApiDocumentSchema) }, errors: [] },
  { method: 'GET', path: '/nodes', operationId: 'listNodes', summary: 'Every known node', tags: ['nodes'], query: { state: { schema: Type.Enum(MEMBER_STATES as readonly ['alive', 'suspect', 'dead', 'left']), description: 'only nodes in this state' } }, answers: { 200: list('nodes', S.NodeEntrySchema) }, errors: ['INVALID_ARGUMENT'] },
  { method: 'GET', path: '/nodes/:id', operationId: 'getNode', summary: 'One node by peer id, name or unique id prefix', tags: ['nodes'], answers: { 200: json('the node', S.NodeEntrySchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'DELETE', path: '/nodes/:id', operationId: 'forgetNode', summary: 'Forget a dead or departed node everywhere (or a writer this node holds documents of, by full peer id)', tags: ['nodes'], answers: { 200: json('forgotten', S.ForgetResultSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/nodes/:id/drain', operationId: 'drainNode', summary: 'Take no new tasks there; answers with what still runs', tags: ['nodes'], answers: { 200: json('drained', S.DrainResultSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'PEER_UNREACHABLE', 'TIMEOUT'] },
  { method: 'POST', path: '/nodes/:id/undrain', operationId: 'undrainNode', summary: 'Take tasks there again', tags: ['nodes'], answers: { 200: json('undrained', S.DrainResultSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'PEER_UNREACHABLE', 'TIMEOUT'] },
  { method: 'GET', path: '/queue', operationId: 'listQueue', summary: 'What waits in every alive node\'s queue', tags: ['placement'], query: { node: { schema: Type.String({ minLength: 1 }), description: 'only this node (id or name)' } }, answers: { 200: list('queued tasks, in queue order per node', S.QueueEntrySchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/queue/pause', operationId: 'pauseQueue', summary: 'Pause a node\'s queue, or every node\'s', tags: ['placement'], body: body(B.QueueTargetSchema), answers: { 200: list('per node reached', S.QueuePauseEntrySchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'POST', path: '/queue/resume', operationId: 'resumeQueue', summary: 'Resume a node\'s queue, or every node\'s', tags: ['placement'], body: body(B.QueueTargetSchema), answers: { 200: list('per node reached', S.QueuePauseEntrySchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'POST', path: '/rebalance', operationId: 'rebalance', summary: 'Move queued tasks to nodes with room now', tags: ['placement'], body: body(B.RebalanceRequestSchema, false), answers: { 200: list('what moved (or would, dryRun)', S.RebalanceEntrySchema) }, errors: ['INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'GET', path: '/pools', operationId: 'listPools', summary: 'Every pool, by name', tags: ['placement'], answers: { 200: list('pools', S.PoolEntrySchema) }, errors: [] },
  { method: 'GET', path: '/pools/:name', operationId: 'getPool', summary: 'One pool with its members', tags: ['placement'], answers: { 200: json('the pool', S.PoolDetailSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'GET', path: '/discover', operationId: 'discover', summary: 'Ask the DHT rendezvous now who provides this cluster', tags: ['cluster'], answers: { 200: list('who answered', S.DiscoverEntrySchema) }, errors: ['TIMEOUT'] },
  { method: 'POST', path: '/join', operationId: 'join', summary: 'Dial members now', tags: ['cluster'], body: body(B.JoinRequestSchema), answers: { 200: json('who was reached', S.JoinResultSchema) }, errors: ['INVALID_ARGUMENT', 'TOO_LARGE', 'TIMEOUT'] },
  { method: 'GET', path: '/sessions', operationId: 'listSessions', summary: 'Every session', tags: ['sessions'], answers: { 200: list('sessions', S.SessionEntrySchema) }, errors: [] },
  { method: 'GET', path: '/sessions/:id', operationId: 'getSession', summary: 'One session', tags: ['sessions'], answers: { 200: json('the session', S.SessionEntrySchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'PUT', path: '/sessions/:id', operationId: 'putSession', summary: 'Create or replace a session', tags: ['sessions'], body: body(B.PutSessionSchema), answers: { 200: json('the session', S.SessionEntrySchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'DELETE', path: '/sessions/:id', operationId: 'deleteSession', summary: 'Delete a session', tags: ['sessions'], answers: { 200: json('deleted', S.SessionDeletedSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/sessions/:id/close', operationId: 'closeSession', summary: 'End the session\'s warm worker (the session stays)', tags: ['sessions'], answers: { 200: json('workers closed', S.SessionClosedSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'PEER_UNREACHABLE', 'TIMEOUT'] },
  { method: 'POST', path: '/call', operationId: 'call', summary: 'Requests to warm workers, answered in one JSON reply', tags: ['workers'], body: body(B.CallRequestSchema), answers: { 200: json('the result(s)', S.CallResultSchema) }, errors: ['INVALID_ARGUMENT', 'NOT_FOUND', 'TOO_LARGE', 'UNSATISFIABLE', 'TIMEOUT', 'PEER_UNREACHABLE', 'BUSY'] },
  { method: 'POST', path: '/tasks', operationId: 'submitTask', summary: 'Run a task: its events as NDJSON, or its id (detach)', tags: ['tasks'], body: body(B.SubmitRequestSchema), answers: { 200: { description: 'the task stream, one event a line, until `exit`', stream: S.TaskStreamEventSchema }, 201: submitted }, errors: ['INVALID_ARGUMENT', 'NOT_FOUND', 'TOO_LARGE', 'UNSATISFIABLE'] },
  { method: 'GET', path: '/tasks', operationId: 'listTasks', summary: 'Task records', tags: ['tasks'], query: { status: { schema: Type.Enum(TASK_STATUSES), description: 'only tasks with this status' }, node: { schema: Type.String({ minLength: 1 }), description: 'only tasks on this node' }, limit: Limit }, answers: { 200: list('tasks, newest first', S.TaskRecordSchema) }, errors: ['INVALID_ARGUMENT'] },
  { method: 'GET', path: '/tasks/:id', operationId: 'getTask', summary: 'One task record', tags: ['tasks'], answers: { 200: json('the task', S.TaskRecordSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/tasks/:id/stdin', operationId: 'writeTaskStdin', summary: 'A piece of the stdin of a task submitted here with stdin: true', tags: ['tasks'], body: body(B.StdinRequestSchema), answers: { 200: json('taken by its executor', S.StdinResultSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT', 'TOO_LARGE', 'CONFLICT'] },
  { method: 'POST', path: '/tasks/:id/cancel', operationId: 'cancelTask', summary: 'Cancel a task', tags: ['tasks'], answers: { 200: json('its status', S.TaskCancelResultSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'GET', path: '/tasks/:id/logs', operationId: 'getTaskLogs', summary: 'A task\'s output (placed, started, output, gap events)', tags: ['tasks'], query: { follow: Flag('follow until the task ends'), encoding: { schema: Type.Enum(['utf8', 'base64']), description: 'how output bytes appear (default utf8)' } }, answers: { 200: { description: 'the task stream, one event a line', stream: S.TaskStreamEventSchema } }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/jobs', operationId: 'submitJob', summary: 'Run a job (one command over the cluster): its events as NDJSON, or its id (detach)', tags: ['jobs'], body: body(B.JobRequestSchema), answers: { 200: { description: 'accepted, progress, result per run, done', stream: S.JobStreamEventSchema }, 201: submitted }, errors: ['INVALID_ARGUMENT', 'NOT_FOUND', 'TOO_LARGE', 'UNSATISFIABLE'] },
  { method: 'GET', path: '/jobs', operationId: 'listJobs', summary: 'Jobs, newest first, without results', tags: ['jobs'], query: { status: { schema: Type.Enum(JOB_STATUSES), description: 'only jobs with this status' }, limit: Limit }, answers: { 200: list('jobs', S.JobRecordSchema) }, errors: ['INVALID_ARGUMENT'] },
  { method: 'GET', path: '/jobs/:id', operationId: 'getJob', summary: 'One job with its results', tags: ['jobs'], query: { results: Flag('0: without its per-item results') }, answers: { 200: json('the job', S.JobRecordSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/jobs/:id/cancel', operationId: 'cancelJob', summary: 'Cancel a job', tags: ['jobs'], answers: { 200: json('cancelling', S.JobCancelResultSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/jobs/:id/retry', operationId: 'retryJob', summary: 'Run again what did not succeed', tags: ['jobs'], answers: { 200: json('runs started again', S.JobRetryResultSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/sync/missing', operationId: 'syncMissing', summary: 'Which of these blobs this node\'s sync cache lacks', tags: ['sync'], body: body(SyncMissingBodySchema), answers: { 200: json('the missing hashes', S.SyncMissingResultSchema) }, errors: ['INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'POST', path: '/sync/manifest', operationId: 'syncManifest', summary: 'Send a manifest as its difference from one this node has', tags: ['sync'], body: body(SyncManifestBodySchema), answers: { 200: json('whether it was rebuilt (false: the base is not here; upload the manifest whole)', S.SyncManifestResultSchema) }, errors: ['INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'POST', path: '/sync/blobs', operationId: 'syncUpload', summary: 'Upload blob pieces (at most 1 MiB of data a request): JSON with data in base64, or msgpack with raw bytes', tags: ['sync'], body: { schema: SyncUploadBodySchema, required: true, binary: { contentType: SYNC_UPLOAD_BINARY_TYPE, description: 'the same {pieces: [{hash, size, offset, data}]} as msgpack, each data raw bytes (bin): what gridctl sends' } }, answers: { 200: json('blobs whose hash did not match', S.SyncUploadResultSchema) }, errors: ['INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'POST', path: '/sync/blobs/read', operationId: 'syncRead', summary: 'Read ranges of blobs (for --fetch)', tags: ['sync'], body: body(SyncReadBodySchema), answers: { 200: json('each range, base64', S.SyncReadResultSchema) }, errors: ['INVALID_ARGUMENT', 'NOT_FOUND', 'TOO_LARGE'] },
  { method: 'POST', path: '/workflows', operationId: 'submitWorkflow', summary: 'Run a workflow (a DAG of jobs): its events as NDJSON, or its id (detach)', tags: ['workflows'], body: body(B.WorkflowRequestSchema), answers: { 200: { description: 'accepted, job per state change, done', stream: S.WorkflowStreamEventSchema }, 201: submitted }, errors: ['INVALID_ARGUMENT', 'TOO_LARGE'] },
  { method: 'GET', path: '/workflows', operationId: 'listWorkflows', summary: 'Workflows, newest first', tags: ['workflows'], query: { status: { schema: Type.Enum(WORKFLOW_STATUSES), description: 'only workflows with this status' }, limit: Limit }, answers: { 200: list('workflows', S.WorkflowRecordSchema) }, errors: ['INVALID_ARGUMENT'] },
  { method: 'GET', path: '/workflows/:id', operationId: 'getWorkflow', summary: 'One workflow', tags: ['workflows'], answers: { 200: json('the workflow', S.WorkflowRecordSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'GET', path: '/workflows/:id/jobs/:job/stdout', operationId: 'getWorkflowJobStdout', summary: 'A job\'s kept stdout', tags: ['workflows'], answers: { 200: json('its stdout', S.WorkflowStdoutSchema) }, errors: ['NOT_FOUND', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/workflows/:id/pause', operationId: 'pauseWorkflow', summary: 'Pause a workflow (no new jobs start)', tags: ['workflows'], answers: { 200: json('the workflow', S.WorkflowRecordSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/workflows/:id/resume', operationId: 'resumeWorkflow', summary: 'Resume a paused workflow', tags: ['workflows'], answers: { 200: json('the workflow', S.WorkflowRecordSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/workflows/:id/cancel', operationId: 'cancelWorkflow', summary: 'Cancel a workflow', tags: ['workflows'], answers: { 200: json('cancelling', S.WorkflowCancelResultSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] },
  { method: 'POST', path: '/workflows/:id/retry', operationId: 'retryWorkflow', summary: 'Run again the jobs that failed, were skipped or cancelled', tags: ['workflows'], answers: { 200: json('jobs run again', S.WorkflowRetryResultSchema) }, errors: ['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'] }
]
