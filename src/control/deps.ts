import type { Registry } from 'prom-client'
import type { LimitsStatus } from '../../proto/index.ts'
import type { GridConfig } from '../config/index.ts'
import type { LocalResources } from '../executor/index.ts'
import type { Membership } from '../membership/index.ts'
import type { Mesh } from '../mesh/index.ts'
import type { ForgottenNodes, NodeRegistry, SelfRegistration, Sessions, StateStore } from '../state/index.ts'
import type { TaskService, WorkerService } from '../tasks/index.ts'

/** What the endpoints use, handed over by the composition root. */
export interface ControlDeps {
  config: GridConfig
  registry: Registry
  version: string
  startedAt: number
  mesh: Mesh
  membership: Membership
  resources: LocalResources
  state: StateStore
  nodeRegistry: NodeRegistry
  sessions: Sessions
  forgotten: ForgottenNodes
  selfRegistration: SelfRegistration
  tasks: TaskService
  workers: WorkerService
  swarmKeyFingerprint: string | null
  metricsStatus: () => { enabled: boolean, listen: string | null, error: string | null }
  /** whether task limits are enforced on this node (cgroups) */
  limits: () => LimitsStatus
}
