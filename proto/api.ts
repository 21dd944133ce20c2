/**
 * The control API (HTTP/1.1 + JSON on the Unix socket, versioned under /v1): response shapes shared by the daemon
 * and gridctl. Errors are `{"error": {"code", "message", "hint"?}}` with the HTTP status of the code
 * (src/interface/errors.ts). Streams are NDJSON, one JSON object per line.
 */
import type { BreakerState, GpuInfo, LoadReport, MemberState, NodeHealth, SelfState, WireError } from '../src/interface/index.ts'

export const API_PREFIX = '/v1'

export interface ApiErrorBody { error: WireError }

export interface StatusResponse {
  id: string
  name: string
  cluster: string
  version: string
  /** Full multiaddrs including /p2p/<id>, as other nodes would use them in --bootstrap. */
  addrs: string[]
  region: string
  labels: Record<string, string>
  capabilities: string[]
  state: SelfState
  startedAt: string
  uptimeMs: number
  dataDir: string
  socket: string
  /** false only in the insecure lab mode */
  swarmKeyProtected: boolean
  /** first 16 hex characters of sha256(swarm key): compare across nodes without showing the key */
  swarmKeyFingerprint: string | null
  metrics: { enabled: boolean, listen: string | null, error: string | null }
  /** peers with an open connection */
  connections: number
  /** every known node (this one included) by state */
  counts: Record<MemberState, number> & { total: number }
  /** whether tasks' --memory and --cpus are enforced here (a cgroup per task), and why not */
  limits: LimitsStatus
}

export interface LimitsStatus {
  enforced: boolean
  cgroup: 'v2' | 'v1' | null
  /** why limits are not enforced (null when they are) */
  reason: string | null
}

export interface NodeEntry {
  id: string
  name: string
  state: MemberState
  /** true for the node that answered */
  self: boolean
  addrs: string[]
  region: string
  labels: Record<string, string>
  capabilities: string[]
  /** this node's GPUs with live use; other nodes' inventory from the registry (use is in `load`) */
  gpus: Array<Pick<GpuInfo, 'index' | 'uuid' | 'name' | 'memoryTotalMiB'> & Partial<GpuInfo>>
  drain: boolean
  version: string | null
  incarnation: number
  load: LoadReport | null
  /** ISO time of the last heartbeat heard (for this node: sent); null if never */
  lastSeen: string | null
  heartbeatAgeMs: number | null
  /** placement (issue 12): its health, why and since when, its breaker, whether its queue is paused, its role */
  health: NodeHealth
  healthReason: string
  healthSince: string
  breaker: BreakerState
  paused: boolean
  role: 'router' | 'worker'
}

export interface HealthEntry {
  id: string
  name: string
  state: MemberState
  self: boolean
  heartbeatAgeMs: number | null
  /** round trip of the last direct probe of this peer, ms */
  rttMs: number | null
  incarnation: number
  connected: boolean
  history: Array<{ state: MemberState, at: string, reason: string }>
  health: NodeHealth
  healthReason: string
  healthSince: string
  breaker: BreakerState
  paused: boolean
}

export interface SessionEntry {
  id: string
  value: unknown
  /** node id of the session's owner (where its warm state lives), or null */
  owner: string | null
  ownerName: string | null
  createdAt: string
  updatedAt: string
  ttlMs: number | null
  expiresAt: string | null
  writer: string
  worker?: unknown
}

/** GET /v1/stats: the cluster's figures, summed over alive nodes (as this node sees them). */
export interface StatsResponse {
  at: string
  nodes: { total: number, alive: number, suspect: number, dead: number, left: number, draining: number }
  slots: { total: number, free: number }
  gpus: { total: number, free: number, utilizationPercent: number, memoryUsedBytes: number, memoryTotalBytes: number }
  tasks: {
    running: number
    queued: number
    /** task attempts finished since each node started */
    done: number
    failed: number
    /** over the last few seconds (null until two samples exist) */
    donePerSecond: number | null
    failedPerSecond: number | null
  }
  sessions: number
  workers: number
  /** this node's blob cache of synced trees (`--sync`): bytes held, blobs, and its bound (executor.syncCacheSize) */
  syncCache?: { bytes: number, blobs: number, limitBytes: number }
  perNode: Array<{
    id: string
    name: string
    state: string
    drain: boolean
    cpu: number
    memUsed: number
    slots: number
    freeSlots: number
    gpus: number
    freeGpus: number
    gpuUtilizationPercent: number
    running: number
    queued: number
  }>
}
