import type { Registry } from 'prom-client'
import type { LimitsStatus } from '../../proto/index.ts'
import type { GridConfig } from '../config/index.ts'
import type { LocalResources } from '../executor/index.ts'
import type { Membership } from '../membership/index.ts'
import type { Mesh } from '../mesh/index.ts'
import type { ForgottenNodes, NodeRegistry, Sessions, StateStore } from '../state/index.ts'
import type { QueueControl, Stealer, TaskService, WorkerService } from '../tasks/index.ts'
import type { NodeHealthMonitor } from '../health/index.ts'
import type { JobService } from '../jobs/index.ts'
import type { SyncService } from '../sync/index.ts'
import type { WorkflowService } from '../workflows/index.ts'

/**
 * What the endpoints use, handed over by the composition root: each module as the few calls control makes (the
 * components pattern), never a whole class, so control cannot reach into a module's internals.
 */
export interface ControlDeps {
  config: GridConfig
  registry: Registry
  version: string
  startedAt: number
  mesh: Pick<Mesh, 'peerId' | 'addrs' | 'connections' | 'isConnected' | 'join' | 'discover'>
  membership: Pick<Membership, 'view' | 'getSelfState' | 'forget' | 'probes'>
  resources: Pick<LocalResources, 'gpus'>
  nodeRegistry: Pick<NodeRegistry, 'get' | 'list'>
  sessions: Pick<Sessions, 'list' | 'require' | 'put' | 'remove'>
  forgotten: Pick<ForgottenNodes, 'forget' | 'isWriter'>
  tasks: Pick<TaskService, 'submit' | 'get' | 'list' | 'cancel' | 'logs' | 'drain' | 'abandoned' | 'writeStdin'>
  workers: Pick<WorkerService, 'call' | 'close'>
  jobs: Pick<JobService, 'submit' | 'list' | 'get' | 'summary' | 'resultParts' | 'cancel' | 'retry'>
  workflows: Pick<WorkflowService, 'submit' | 'list' | 'get' | 'stdout' | 'pause' | 'resume' | 'cancel' | 'retry'>
  swarmKeyFingerprint: string | null
  metricsStatus: () => { enabled: boolean, listen: string | null, error: string | null }
  /** synced trees: the client's uploads and manifests, the cache's size (absent: this node takes no --sync) */
  sync?: Pick<SyncService, 'accept' | 'missing' | 'missingOf' | 'put' | 'read' | 'stats' | 'takeChange'>
  /** whether task limits are enforced on this node (cgroups) */
  limits: () => LimitsStatus
  /** this node's own health verdict and its changes (placement, issue 12) */
  health: Pick<NodeHealthMonitor, 'report' | 'history'>
  /** queue control: pause, resume, list (placement, issue 12) */
  queue: Pick<QueueControl, 'setPaused' | 'list'>
  /** gridctl rebalance: queued work moved to nodes with room now */
  stealer: Pick<Stealer, 'rebalance'>
  /** the replicated state's merged reads, for GET /v1/state/hash (fault testing compares nodes by it); flush, so an
   * accepted task or an acknowledged session write is in this node's log (and on its way to peers) before the answer */
  state: Pick<StateStore, 'groupAll' | 'writers' | 'flush'>
}
