/**
 * A task as the executor holds it (a job): what to run, from its spec and the node's task types, and how it is going.
 */
import { TYPE_HELD_ENV, itemText, type ExecAspect, type TaskSpec } from '../../proto/index.ts'
import { InvalidArgumentError, type NodeId } from '../interface/index.ts'
import type { ResourceHold } from './ledger.ts'
import type { StopReason } from './outcome.ts'
import { OutputLog } from './output-log.ts'
import type { Child } from './process-host.ts'
import { StdinFeed } from './stdin-feed.ts'
import { TaskWatchers } from './watchers.ts'

export interface TaskTypeConfig {
  command: string[]
  env?: Record<string, string>
  cwd?: string
}

/** A task handed to the executor by the tasks module. */
export interface ExecTask {
  id: string
  attempt: number
  spec: TaskSpec
  origin: NodeId
  coordinator: NodeId
  /** the authenticated peer that offered it (recorded in its execution aspect) */
  offeredBy?: NodeId
  /** its tree, laid out from a synced manifest (`--sync`): its cwd (unless its type names one), named by GRID_SYNC_DIR */
  syncDir?: string
  /** when its coordinator sent the offer (the coordinator's wall clock, ms), for the start gate */
  sentAt?: number
}

export interface Job {
  task: ExecTask
  /** the spec's, for the admission queue */
  priority: number
  argv: string[]
  /** where it runs: the one given (the type's, else the spec's), else chosen when it starts (executor.ts) */
  cwd: string | undefined
  /** its scratch directory, when it runs there */
  scratch?: string
  /** its open stdin, streamed by its client (the first attempt of a task submitted with stdin) */
  stdin?: StdinFeed
  /** the task's additions to the base environment (the spawner holds the base) */
  env: Record<string, string>
  /** a typed task's payload (a JSON line) for its stdin */
  input: string | undefined
  typed: boolean
  state: ExecAspect
  log: OutputLog
  watchers: TaskWatchers
  /** what it holds, while it runs */
  held?: ResourceHold
  /** its process, once asked for */
  child?: Child
  timeout?: NodeJS.Timeout
  kill?: NodeJS.Timeout
  /** why the task is being stopped */
  stopping?: StopReason
  /** when it was admitted here (performance.now()), for the start gate */
  admittedAt?: number
  /** it waited in the queue before its start */
  waited?: boolean
  /** its start waits for the start gate's answer (resources held) */
  gated?: boolean
}

export interface JobContext {
  nodeId: NodeId
  nodeName: string
  taskTypes: Record<string, TaskTypeConfig>
  maxLogBytes: number
  /** stdin held for a task that waits to start, at most */
  maxStdinBufferBytes: number
}

/** A new job for a task, pending: its command line, directory, environment and stdin. */
export function prepareJob (task: ExecTask, ctx: JobContext): Job {
  const spec = task.spec
  let argv: string[]
  let cwd = spec.cwd
  let env: Record<string, string> = {}
  let input: string | undefined
  if (spec.type !== undefined) {
    const t = ctx.taskTypes[spec.type] as TaskTypeConfig
    argv = [...t.command, ...(spec.command ?? [])]
    // the type's own settings win over the caller's, and the caller never decides how its program is found or loaded
    cwd = t.cwd ?? spec.cwd
    env = { ...Object.fromEntries(Object.entries(spec.env).filter(([k]) => !TYPE_HELD_ENV.test(k))), ...t.env }
    input = JSON.stringify(spec.payload ?? null) + '\n'
  } else if (spec.command !== undefined) {
    argv = spec.command
    env = { ...spec.env }
    // a job's run: its item on stdin (as GNU parallel's --pipe gives it), a line
    if (spec.job !== undefined && spec.payload !== undefined) input = itemText(spec.payload) + '\n'
  } else {
    throw new InvalidArgumentError('task has neither a command nor a type')
  }
  if (task.syncDir !== undefined && (spec.type === undefined || ctx.taskTypes[spec.type]?.cwd === undefined)) cwd = task.syncDir
  if (task.syncDir !== undefined) env = { ...env, GRID_SYNC_DIR: task.syncDir }
  const job: Job = {
    task,
    // a synced tree is its scratch directory: kept for the retention after it ends, then swept
    ...(task.syncDir === undefined ? {} : { scratch: task.syncDir }),
    priority: spec.priority,
    argv,
    cwd,
    env: { ...env, ...(spec.job === undefined ? {} : { GRID_JOB_ID: spec.job.id, GRID_ITEM_INDEX: String(spec.job.index), GRID_ITEM: itemText(spec.payload ?? null) }), GRID_TASK_ID: task.id, GRID_NODE_ID: ctx.nodeId, GRID_NODE_NAME: ctx.nodeName, GRID_ATTEMPT: String(task.attempt) },
    input,
    typed: spec.type !== undefined,
    // stdin is not replayed: a later attempt's is empty
    ...(spec.stdin === true && spec.type === undefined && task.attempt === 1 ? { stdin: new StdinFeed(ctx.maxStdinBufferBytes) } : {}),
    state: { attempt: task.attempt, node: ctx.nodeId, nodeName: ctx.nodeName, status: 'pending', queuedAt: Date.now(), ...(task.offeredBy === undefined ? {} : { offeredBy: task.offeredBy }) },
    log: new OutputLog(ctx.maxLogBytes),
    // the origin's backpressure pauses the process's output
    watchers: new TaskWatchers({ pause: () => { job.child?.pause() }, resume: () => { job.child?.resume() } })
  }
  return job
}

export function isFinal (s: ExecAspect): boolean {
  return s.status !== 'pending' && s.status !== 'running'
}
