/**
 * What the tasks module needs from the rest of the daemon, each as narrow as the calls it makes. The composition root
 * (src/daemon.ts) hands in the real objects; unit tests hand in stubs.
 */
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { NodeId } from '../interface/index.ts'
import type { Executor, WorkerPool } from '../executor/index.ts'
import type { Membership } from '../membership/index.ts'
import type { RpcService } from '../mesh/index.ts'
import type { NodeRegistry, Sessions, StateStore } from '../state/index.ts'
import type { WorkerService } from './worker-router.ts'
import type { SyncService } from '../sync/index.ts'

/** Requests to peers and handlers for theirs. */
export type TaskRpc = Pick<RpcService, 'request' | 'handle'>

/** Who is alive: the live view, one peer's state, changes, this node's own state, and when its event loop last stalled. */
export type TaskMembers = Pick<Membership, 'view' | 'state' | 'on' | 'off' | 'setSelfState'> & Partial<Pick<Membership, 'lastStallAt'>>

/** The local executor: admission, watching, cancelling, usage. */
export type TaskExecutor = Pick<Executor, 'admit' | 'watch' | 'unwatch' | 'get' | 'cancel' | 'usage' | 'typeOf' | 'setDraining' | 'on' | 'writeStdin' | 'closeStdinFrom' | 'setStartGate'>

/** The replicated store as task records use it. */
export type TaskStore = Pick<StateStore, 'selfId' | 'set' | 'entryOf' | 'lookupAll' | 'groupAll' | 'setCollector' | 'on' | 'off' | 'syncFrom'>

export interface TasksComponents {
  /** this node's peer id */
  peerId: NodeId
  rpc: TaskRpc
  members: TaskMembers
  store: TaskStore
  nodeRegistry: NodeRegistry
  sessions: Pick<Sessions, 'get' | 'put'>
  executor: TaskExecutor
  /** this node's warm workers: drained along with the executor */
  pool?: Pick<WorkerPool, 'setDraining' | 'list'>
  /** warm workers: typed tasks whose type has a worker go there instead of a new process */
  workers?: Pick<WorkerService, 'isWorkerType' | 'cannotServe' | 'call'>
  /** synced trees (`--sync`): sent to an executor before the offer, laid out before admission, `--fetch` brought back */
  sync?: Pick<SyncService, 'push' | 'layout' | 'fetchFrom'>
  logger: Logger
  registry: Registry
  /** this node's circuit breaker: while half-open, one trial task at a time is admitted (placement, issue 12) */
  health?: { admitTrial: () => boolean }
}

export interface TasksInit {
  nodeName: string
  region: string
  retentionMs: number
  /** most finished task records this node keeps as a writer (the oldest go first) */
  maxRecords?: number
  /** where a drain is kept across restarts (drain-mark.ts); without it a restart ends a drain */
  drainMarkPath?: string
}
