/**
 * executor: this machine's resources and the processes that run on it.
 *
 * Owns CPU slots, memory, GPUs (read with nvidia-smi), the admission queue, spawning in process groups (through the
 * spawner, for tasks and warm workers alike), each task's cgroup (its memory limit and CPU quota, where cgroups can
 * be written), the user tasks run as (executor.taskUser), timeouts, cancellation and bounded output capture. It
 * must not know about peers or routing: tasks hands it admitted work.
 */
import type { Logger } from 'pino'
import type { ExecAspect } from '../../proto/index.ts'
import type { GpuInfo, NodeId } from '../interface/index.ts'
import type { ExecTask, TaskTypeConfig } from './job.ts'
import type { ProcessHost } from './process-host.ts'
import type { TaskUser } from './task-user.ts'
import type { FreeResources } from './worker-waits.ts'

export interface ExecutorInit {
  nodeId: NodeId
  nodeName: string
  /** CPU slots to hand out (default: the number of CPUs) */
  slots: number
  /** memory to hand out, bytes */
  memoryBytes: number
  queueLimit: number
  killGraceMs: number
  /** output kept per task */
  maxLogBytes: number
  /** output kept for finished tasks, all together */
  maxRetainedLogBytes: number
  taskTypes: Record<string, TaskTypeConfig>
  /** environment every task starts from */
  baseEnv: NodeJS.ProcessEnv
  /** where tasks without a directory of their own run (`<dataDir>/scratch`); without it, in the daemon's */
  scratchDir?: string
  /** a scratch directory is removed this long after its task ended (the task-record retention) */
  scratchRetentionMs?: number
  /**
   * where task cgroups go (each task's memory limit and CPU quota): '' under gridd's own cgroup, a cgroup path such
   * as /grid, or 'off'. Without it (unit tests) tasks get no cgroup
   */
  cgroupRoot?: string
  /** tasks and warm workers run as this user (resolveTaskUser); without it, as gridd */
  taskUser?: TaskUser
  /**
   * tests only (GRID_TEST_SPAWN_FAULT_FILE): while this file exists, every spawn fails as a fork would (EAGAIN), so
   * the circuit breaker can be exercised on real daemons
   */
  spawnFaultFile?: string
  /** a router (`--slots 0`): it runs no task and no worker */
  router?: boolean
}

export interface ExecutorComponents {
  logger: Logger
  /** the node's GPUs right now */
  gpus: () => GpuInfo[]
}

export interface ExecutorEvents {
  'task:state': [id: string, state: ExecAspect]
  /**
   * A task's dispatch on this node: its process started (ok), or starting it failed for a reason of the node's own
   * (the spawner down or dying, a fork or cgroup failure), not the program's: the node's circuit breaker counts these.
   */
  'task:dispatch': [id: string, outcome: { ok: true } | { ok: false, reason: string }]
}

/**
 * Asked before each start (resources already held): undefined to start now, else a promise of undefined (start) or
 * of why the attempt must not start here any more (it ends lost with that reason, so its coordinator runs it again if
 * it still drives it). `waited`: it sat in the queue; `admittedAt`: performance.now() when it was admitted.
 */
export type StartGate = (task: ExecTask, how: { waited: boolean, admittedAt: number }) => Promise<string | undefined> | undefined

/** What the executor holds and has done, for the load report. */
export interface ExecutorUsage { running: number, queued: number, freeSlots: number, freeGpus: number, freeMemoryBytes: number, done: number, failed: number }

// ---- warm workers ----

export interface WorkerTypeConfig {
  command: string[]
  env?: Record<string, string>
  cwd?: string
  cpus: number
  gpus: number
  memory: number
  /** recycle a worker after this many requests (0: never) */
  maxTasks: number
  idleTimeoutMs: number
  concurrency: number
  /** most workers of this type without a session on this node */
  maxWorkers: number
}

export interface WorkerPoolComponents {
  logger: Logger
  reserve: (need: { cpus: number, gpus: number, memory: number }) => { gpus: string[] } | undefined
  unreserve: (held: { cpus: number, gpus: string[], memory: number }) => void
  cannotEverHold: (need: { cpus: number, gpus: number, memory: number }) => string | undefined
  /** what of the node is free now, for waiting reasons (without it a reason says "waiting for resources") */
  free?: () => FreeResources
  /** the spawner to start workers through (the executor's `processes`); without it the pool runs one of its own */
  processes?: ProcessHost
}

export interface WorkerPoolInit {
  nodeId: NodeId
  nodeName: string
  types: Record<string, WorkerTypeConfig>
  /** the environment workers start from (when the pool runs its own spawner) */
  baseEnv: Record<string, string>
  queueLimit: number
  killGraceMs: number
}

export interface WorkerInfo {
  type: string
  session: string | null
  pid: number
  gpus: string[]
  served: number
  inflight: number
  startedAt: number
  lastUsedAt: number
}

export interface WorkerRequest {
  type: string
  session?: string
  payload: unknown
  timeoutMs: number
  priority: number
  /** times to send it again when its worker crashes under it */
  retries: number
}

/** A request that waits (queued, or for a new worker's first answer): `reason()` says why now, undefined once not. */
export interface WorkerWait { reason: () => string | undefined }

export interface WorkerPoolEvents {
  'worker:state': [WorkerInfo & { running: boolean }]
}

export { LocalResources, type ResourcesInit, type Usage } from './resources.ts'
export { queryGpus, parseGpuCsv, NVIDIA_SMI_QUERY } from './gpus.ts'
export { Executor } from './executor.ts'
export { type ExecTask, type TaskTypeConfig } from './job.ts'
export { type Watcher, type OutputFlow, type FollowerSink, TaskWatchers, followerWatcher } from './watchers.ts'
export { exitCodeOf, outcomeOf, parseResult, type OutcomeContext, type ProcessEnd, type StopReason } from './outcome.ts'
export { ResourceLedger, type LedgerCapacity, type ResourceHold, type ResourceNeed } from './ledger.ts'
export { AdmissionQueue, type Queued } from './admission-queue.ts'
export { reapOrphans } from './reaper.ts'
export { scratchPath } from './scratch.ts'
export { TaskCgroups, type LimitsStatus } from './cgroup.ts'
export { ProcessHost, Child, type ChildSpec, type ChildHandlers, type ProcessHostComponents, type ProcessHostEvents, type ProcessHostInit } from './process-host.ts'
export { Spawner, spawnerMain, type SpawnRequest, type SpawnerRequest, type SpawnerEvent } from './spawner.ts'
export { STDIN_HIGH_WATER_BYTES } from './constants.ts'
export { resolveTaskUser, runAs, missingCapabilities, userCanEnter, type TaskUser, type TaskUserSystem } from './task-user.ts'
export { WorkerPool } from './worker-pool.ts'
export type { FreeResources } from './worker-waits.ts'
