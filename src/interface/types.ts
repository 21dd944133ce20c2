/** A node's identity: the base58 string of its libp2p peer id. */
export type NodeId = string

/** What the failure detector believes about a peer. */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'
export const MEMBER_STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left']

/** Whether a node should get work: healthy, degraded (its breaker is open, its GPUs lost...), unavailable. */
export type NodeHealth = 'healthy' | 'degraded' | 'unavailable'
export const NODE_HEALTHS: readonly NodeHealth[] = ['healthy', 'degraded', 'unavailable']

/** A node's circuit breaker: closed (in use), open (ejected for a cool-down), half-open (one trial at a time). */
export type BreakerState = 'closed' | 'open' | 'half-open'

/** A node's verdict on itself, gossiped in its heartbeats (every node shows the same, the node's own wins). */
export interface HealthReport {
  health: NodeHealth
  reason: string
  /** epoch ms when `health` last changed */
  since: number
  breaker: BreakerState
}

/** What a node says of itself in its heartbeats. */
export type SelfState = 'alive' | 'draining' | 'leaving'

/** One GPU as nvidia-smi reports it. Utilisation in percent, memory in MiB. */
export interface GpuInfo {
  index: number
  uuid: string
  name: string
  memoryTotalMiB: number
  memoryUsedMiB: number
  utilizationPercent: number
}

/** Dynamic load: gossiped every heartbeat, never stored in the replicated state. */
export interface LoadReport {
  /** 1-minute load average divided by the number of CPUs (0 = idle, 1 = every CPU busy). */
  cpu: number
  /** Number of CPUs on the machine. */
  cpus: number
  memTotalMiB: number
  memFreeMiB: number
  /** memory the executor offers to tasks (`--task-memory`, else the machine's RAM), and how much of it no task holds */
  taskMemoryMiB?: number
  taskMemoryFreeMiB?: number
  running: number
  queued: number
  /** Task slots in all (CPU slots the executor hands out). */
  slots: number
  /** Task slots free now. */
  freeSlots: number
  gpus: number
  /** GPUs not assigned to a task. */
  freeGpus: number
  gpuUtilizationPercent: number
  gpuMemoryUsedMiB: number
  gpuMemoryTotalMiB: number
  /** task attempts this node finished since it started: completed, and failed or timed out */
  done?: number
  failed?: number
}

/** Static facts about a node, as its registry entry holds them. */
export interface NodeFacts {
  id: NodeId
  name: string
  addrs: string[]
  region: string
  labels: Record<string, string>
  capabilities: string[]
  gpus: Array<Pick<GpuInfo, 'index' | 'uuid' | 'name' | 'memoryTotalMiB'>>
  version: string
  drain: boolean
  /** Epoch ms when the node first registered and when it last updated its entry. */
  joinedAt: number
  updatedAt: number
}

/** The membership module's view of one peer (or of this node). */
export interface MemberView {
  id: NodeId
  name: string
  state: MemberState
  selfState: SelfState
  incarnation: number
  /** Epoch ms of the last heartbeat received (or sent, for this node); 0 if never. */
  lastSeen: number
  load?: LoadReport
  version?: string
  /** Round-trip time of the last successful direct probe, ms. */
  rttMs?: number
  /** Epoch ms when the state last changed. */
  since: number
  /** The most recent state changes, newest last. */
  history: Array<{ state: MemberState, at: number, reason: string }>
  /** its own health verdict, from its last heartbeat (absent from nodes that do not send one) */
  health?: HealthReport
  /** its queue is paused: it takes no new tasks and starts none of its queued ones */
  paused?: boolean
  /** its health changes as its heartbeats told them, newest last */
  healthHistory?: Array<{ health: NodeHealth, at: number, reason: string }>
}

/** Statuses of a task record (see proto/tasks.ts). */
export const TASK_STATUS_SET: ReadonlySet<string> = new Set(['pending', 'running', 'completed', 'failed', 'timeout', 'cancelled'])
