import { hostname } from 'node:os'
import { join } from 'node:path'
import {
  bool, capability, duration, int, labels, list, listenAddress, multiaddrString, nodeName, oneOf, size, str, taskTypes,
  type FieldDef, type TaskTypeDef
} from './fields.ts'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]
/** How gridd writes its log: readable lines (pino-pretty) or one JSON object per line. */
export const LOG_FORMATS = ['pretty', 'json'] as const
export type LogFormat = typeof LOG_FORMATS[number]
/** executor.syncLayout: how a synced tree's files are placed for an attempt (src/sync/layout.ts) */
export const SYNC_LAYOUT_MODES = ['copy', 'link', 'auto'] as const
export type SyncLayoutMode = typeof SYNC_LAYOUT_MODES[number]

/** The validated, frozen configuration of one gridd. Durations are in ms. */
export interface GridConfig {
  cluster: string
  name: string
  dataDir: string
  socket: string
  listen: string[]
  announce: string[]
  bootstrap: string[]
  /** Path of the swarm key file; null only when the insecure lab mode is on. */
  swarmKey: string | null
  /** The key path is the default one (not named by the user): a missing key is generated on first start. */
  swarmKeyGenerate: boolean
  /** Lab mode: no private network (any libp2p node can connect). Off unless asked for. */
  insecureNoSwarmKey: boolean
  region: string
  labels: Record<string, string>
  capabilities: string[]
  logLevel: LogLevel
  /** null: pretty when stdout is a terminal, else json (decided by the process, daemon/gridd-main.ts) */
  logFormat: LogFormat | null
  nvidiaSmi: string
  /** HOST:PORT of the Prometheus endpoint, or null when off. */
  metricsListen: string | null
  membership: {
    heartbeatIntervalMs: number
    /** Missed heartbeats before a peer is suspected. */
    suspectAfterMissed: number
    probeTimeoutMs: number
    indirectProbes: number
    /** How long a suspect may refute before it is declared dead. */
    suspicionTimeoutMs: number
    /** How long a dead or left member stays in the member table. */
    deadMemberExpiryMs: number
  }
  mesh: {
    maxConnections: number
    dialConcurrency: number
    rendezvousIntervalMs: number
  }
  executor: {
    /** CPU slots handed to tasks; 0 means one per CPU unless `router` */
    slots: number
    /** `--slots 0` given explicitly: a router, which routes and coordinates but runs no task or worker (issue 12) */
    router: boolean
    /** memory handed to tasks, bytes; 0 means all of the machine's */
    memory: number
    queueLimit: number
    killGraceMs: number
    maxLogBytes: number
    retainedLogBytes: number
    /** where task cgroups go: '' under gridd's own cgroup, a cgroup path (/grid), or 'off' (limits not enforced) */
    cgroupRoot: string
    /** the user tasks and warm workers run as ('' : gridd's own); checked at start (executor/task-user.ts) */
    taskUser: string
    /** bytes of synced files (`gridctl run --sync`) this node's blob cache keeps; least recently used go first */
    syncCacheSize: number
    /** how a synced tree's files are placed for an attempt: copy (each its own), link (hard links to the cache, read-only; needs taskUser), auto (link with a task user, else copy) */
    syncLayout: SyncLayoutMode
  }
  /** placement health (issue 12): each node's circuit breaker and what degrades it */
  health: {
    /** consecutive dispatch failures (not the task's own exit) that open a node's breaker */
    ejectAfterFailures: number
    /** the first ejection's cool-down; each further one adds as much again */
    baseEjectionMs: number
    /** at most this share of the alive nodes is ejected at once (at least one may be) */
    maxEjectedPercent: number
    /** the data directory's disk is nearly full (the node degraded) below this share free */
    diskFreeMinPercent: number
  }
  /** work stealing (issue 12) */
  placement: {
    /** a node with room takes queued tasks from busy peers on its own */
    steal: boolean
    /** a queued task waits at least this long before a peer may take it */
    stealAfterMs: number
  }
  /** how long finished task records are kept */
  taskRetentionMs: number
  control: {
    /** connections the control socket keeps open at once */
    maxConnections: number
  }
  sessions: {
    /** sessions this node's own document may hold */
    maxPerWriter: number
    /** bytes of session values (JSON) and ids this node's own document may hold */
    maxBytesPerWriter: number
  }
  /** task types, by name */
  tasks: Record<string, TaskTypeDef>
  /** The config file that was read, if any. */
  configFile: string | null
}

/** Where each default comes from: under systemd the unit's StateDirectory/RuntimeDirectory, else ./.grid. */
export function defaultDataDir (env: NodeJS.ProcessEnv): string {
  return env.STATE_DIRECTORY?.split(':')[0] ?? join(process.cwd(), '.grid')
}

export function defaultSocket (env: NodeJS.ProcessEnv, dataDir: string): string {
  const runtime = env.RUNTIME_DIRECTORY?.split(':')[0]
  return runtime !== undefined ? join(runtime, 'gridd.sock') : join(dataDir, 'gridd.sock')
}

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/7470'
export const DEFAULT_CONFIG_FILE = '/etc/grid/gridd.yaml'

/** Defaults that do not depend on other keys (dataDir, socket and swarmKey are derived after merging). */
export function defaults (): Record<string, unknown> {
  return {
    cluster: 'grid',
    name: sanitizeHostname(hostname()),
    listen: [DEFAULT_LISTEN],
    announce: [],
    bootstrap: [],
    insecureNoSwarmKey: false,
    region: 'default',
    labels: {},
    capabilities: [],
    logLevel: 'info',
    nvidiaSmi: 'nvidia-smi',
    metricsListen: '127.0.0.1:9464',
    'membership.heartbeatInterval': '1s',
    'membership.suspectAfterMissed': 3,
    'membership.probeTimeout': '1s',
    'membership.indirectProbes': 3,
    'membership.suspicionTimeout': '4s',
    'membership.deadMemberExpiry': '24h',
    'mesh.maxConnections': 200,
    'mesh.dialConcurrency': 4,
    'mesh.rendezvousInterval': '10s',
    'executor.slots': 0,
    'executor.memory': 0,
    'executor.queueLimit': 1000,
    'executor.killGrace': '10s',
    'executor.maxLogBytes': '4MiB',
    'executor.retainedLogBytes': '256MiB',
    'executor.cgroupRoot': '',
    'executor.taskUser': '',
    'executor.syncCacheSize': '10GiB',
    'executor.syncLayout': 'copy',
    'health.ejectAfterFailures': 5,
    'health.baseEjection': '30s',
    'health.maxEjectedPercent': 50,
    'health.diskFreeMinPercent': 5,
    'placement.steal': true,
    'placement.stealAfter': '2s',
    taskRetention: '24h',
    'control.maxConnections': 512,
    'sessions.maxPerWriter': 10_000,
    'sessions.maxBytesPerWriter': '64MiB',
    tasks: {}
  }
}

function sanitizeHostname (h: string): string {
  const s = h.split('.')[0]?.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63) ?? ''
  return s === '' ? 'node' : s
}

const path = str({ min: 1, max: 4096 })
const taskUser = str({ max: 64, pattern: /^(|[A-Za-z_][A-Za-z0-9_.-]*\$?|\d+)$/, patternHelp: 'must be a user name (as in grid-task) or a uid, or empty (tasks run as gridd\'s user)' })
const cgroupRoot = str({ max: 4096, pattern: /^(|off|\/[^\0]*)$/, patternHelp: 'must be a cgroup path starting with "/", or off' })

export const FIELDS: FieldDef[] = [
  { key: 'cluster', env: 'GRID_CLUSTER', flag: 'cluster', convert: str({ min: 1, max: 63, pattern: /^[a-z0-9][a-z0-9-]*$/, patternHelp: 'must be lowercase letters, digits and "-"' }), help: 'cluster name; namespaces gossip topics and the DHT rendezvous (default grid)' },
  { key: 'name', env: 'GRID_NAME', flag: 'name', convert: nodeName, help: 'this node\'s name (default: the host name)' },
  { key: 'dataDir', env: 'GRID_DATA_DIR', flag: 'data-dir', convert: path, help: 'identity key, swarm key, state (default ./.grid; $STATE_DIRECTORY under systemd)' },
  { key: 'socket', env: 'GRID_SOCKET', flag: 'socket', convert: path, help: 'control socket (default DATA_DIR/gridd.sock; $RUNTIME_DIRECTORY/gridd.sock under systemd)' },
  { key: 'listen', env: 'GRID_LISTEN', flag: 'listen', multiple: true, convert: list(multiaddrString, { max: 16 }), help: `multiaddr to listen on, repeatable (default ${DEFAULT_LISTEN})` },
  { key: 'announce', env: 'GRID_ANNOUNCE', flag: 'announce', multiple: true, convert: list(multiaddrString, { max: 16 }), help: 'multiaddr to advertise instead of the listen addresses (behind NAT), repeatable' },
  { key: 'bootstrap', env: 'GRID_BOOTSTRAP', flag: 'bootstrap', multiple: true, convert: list(multiaddrString, { max: 256 }), help: 'multiaddr of a member to join through (with /p2p/ID), repeatable' },
  { key: 'swarmKey', env: 'GRID_SWARM_KEY', flag: 'swarm-key', convert: path, help: 'swarm key file, the cluster secret (default DATA_DIR/swarm.key, generated on first start)' },
  { key: 'insecureNoSwarmKey', env: 'GRID_INSECURE_NO_SWARM_KEY', flag: 'insecure-no-swarm-key', boolean: true, convert: bool, help: 'lab only: run without a swarm key, so any libp2p node can connect' },
  { key: 'region', env: 'GRID_REGION', flag: 'region', convert: str({ min: 1, max: 63, pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, patternHelp: 'must be letters, digits, ".", "_" or "-"' }), help: 'region or zone of this node (default "default")' },
  { key: 'labels', env: 'GRID_LABELS', flag: 'label', multiple: true, convert: labels, help: 'K=V label, repeatable' },
  { key: 'capabilities', env: 'GRID_CAPABILITIES', flag: 'capability', multiple: true, convert: list(capability, { max: 128 }), help: 'capability this node offers (as in cuda, nvme), repeatable' },
  { key: 'logLevel', env: 'GRID_LOG_LEVEL', flag: 'log-level', convert: oneOf(LOG_LEVELS), help: `log level: ${LOG_LEVELS.join(', ')} (default info)` },
  { key: 'logFormat', env: 'GRID_LOG_FORMAT', flag: 'log-format', convert: oneOf(LOG_FORMATS), help: 'log format: pretty (readable lines) or json (one JSON object per line) (default: pretty on a terminal, else json)' },
  { key: 'nvidiaSmi', env: 'GRID_NVIDIA_SMI', flag: 'nvidia-smi', convert: path, help: 'nvidia-smi executable used to find GPUs (default nvidia-smi on PATH)' },
  { key: 'metricsListen', env: 'GRID_METRICS_LISTEN', flag: 'metrics-listen', convert: listenAddress, help: 'HOST:PORT of the Prometheus endpoint, or off (default 127.0.0.1:9464)' },
  { key: 'membership.heartbeatInterval', env: 'GRID_HEARTBEAT_INTERVAL', flag: 'heartbeat-interval', convert: duration(100, 60_000), help: 'how often this node gossips its heartbeat while anything is in the air; every other interval once the cluster is settled (default 1s)' },
  { key: 'membership.suspectAfterMissed', env: 'GRID_SUSPECT_AFTER_MISSED', convert: int(2, 100), help: 'missed heartbeats before a peer is suspected (default 3)' },
  { key: 'membership.probeTimeout', env: 'GRID_PROBE_TIMEOUT', convert: duration(50, 60_000), help: 'deadline of a direct or indirect probe (default 1s)' },
  { key: 'membership.indirectProbes', env: 'GRID_INDIRECT_PROBES', convert: int(0, 16), help: 'peers asked to probe a suspect before it is declared dead (default 3)' },
  { key: 'membership.suspicionTimeout', env: 'GRID_SUSPICION_TIMEOUT', convert: duration(100, 600_000), help: 'how long a suspect may refute before it is declared dead, unconfirmed (default 4s); each other member that cannot reach it either shortens this, down to half of it at up to 10 nodes' },
  { key: 'membership.deadMemberExpiry', env: 'GRID_DEAD_MEMBER_EXPIRY', convert: duration(1000, 365 * 86_400_000), help: 'how long a dead or left member stays in the member table (default 24h)' },
  { key: 'mesh.maxConnections', env: 'GRID_MAX_CONNECTIONS', convert: int(4, 10_000), help: 'most open peer connections (default 200); a larger cluster gets a headroom past it for newcomers, trimmed back' },
  { key: 'mesh.dialConcurrency', env: 'GRID_DIAL_CONCURRENCY', convert: int(1, 64), help: 'peers dialled at once when joining (default 4)' },
  { key: 'mesh.rendezvousInterval', env: 'GRID_RENDEZVOUS_INTERVAL', convert: duration(1000, 3_600_000), help: 'how often the DHT is asked for other members (default 10s)' },
  { key: 'executor.slots', env: 'GRID_SLOTS', flag: 'slots', convert: int(0, 100_000), help: 'CPU slots for tasks (default: one per CPU); 0 makes a router, which runs no task' },
  { key: 'pool', env: 'GRID_POOL', flag: 'pool', convert: str({ min: 1, max: 63, pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, patternHelp: 'must be letters, digits, ".", "_" or "-"' }), help: 'the pool this node belongs to (the label pool=NAME; default: the pool "default")' },
  { key: 'executor.memory', env: 'GRID_TASK_MEMORY', flag: 'task-memory', convert: size(0, 2 ** 53), help: 'memory for tasks, as in 64GiB (default: all of the machine\'s)' },
  { key: 'executor.queueLimit', env: 'GRID_QUEUE_LIMIT', convert: int(0, 1_000_000), help: 'tasks that may wait on this node for resources (default 1000)' },
  { key: 'executor.killGrace', env: 'GRID_KILL_GRACE', convert: duration(0, 600_000), help: 'time between TERM and KILL when a task is stopped (default 10s)' },
  { key: 'executor.maxLogBytes', env: 'GRID_MAX_LOG_BYTES', convert: size(1024, 2 ** 40), help: 'output kept per task (default 4MiB; older output is dropped)' },
  { key: 'executor.retainedLogBytes', env: 'GRID_RETAINED_LOG_BYTES', convert: size(0, 2 ** 44), help: 'output kept for finished tasks, all together (default 256MiB)' },
  { key: 'executor.cgroupRoot', env: 'GRID_CGROUP_ROOT', flag: 'cgroup-root', convert: cgroupRoot, help: 'cgroup that task cgroups go under, as in /grid, or off (default: gridd\'s own cgroup)' },
  { key: 'executor.taskUser', env: 'GRID_TASK_USER', flag: 'task-user', convert: taskUser, help: 'user tasks and warm workers run as, so they cannot read gridd\'s data dir; needs root or CAP_SETUID, CAP_SETGID, CAP_KILL (default: gridd\'s own)' },
  { key: 'executor.syncCacheSize', env: 'GRID_SYNC_CACHE_SIZE', convert: size(1024 * 1024, 2 ** 50), help: 'bytes of synced files (gridctl run --sync) kept in this node\'s blob cache; least recently used go first (default 10GiB)' },
  { key: 'executor.syncLayout', env: 'GRID_SYNC_LAYOUT', convert: oneOf(SYNC_LAYOUT_MODES), help: 'how a synced tree (gridctl run --sync) is laid out for each attempt: copy (every file copied; the task may change them), link (hard links to the cache, read-only to the task, no data copied; needs executor.taskUser), auto (link with a task user, else copy) (default copy)' },
  { key: 'health.ejectAfterFailures', env: 'GRID_HEALTH_EJECT_AFTER_FAILURES', convert: int(1, 1000), help: 'consecutive dispatch failures (spawn, fork, GPU: not the task\'s own exit) that open a node\'s circuit breaker (default 5)' },
  { key: 'health.baseEjection', env: 'GRID_HEALTH_BASE_EJECTION', convert: duration(100, 3_600_000), help: 'cool-down of a node\'s first ejection; each further one adds as much again, up to 5 minutes (default 30s)' },
  { key: 'health.maxEjectedPercent', env: 'GRID_HEALTH_MAX_EJECTED_PERCENT', convert: int(0, 100), help: 'most alive nodes ejected at once, in percent (at least one may be; default 50)' },
  { key: 'health.diskFreeMinPercent', env: 'GRID_HEALTH_DISK_FREE_MIN_PERCENT', convert: int(0, 100), help: 'the node is degraded while its data directory\'s disk has less free, in percent (default 5)' },
  { key: 'placement.steal', env: 'GRID_STEAL', convert: bool, help: 'a node with room takes queued tasks from busy peers (work stealing; default true)' },
  { key: 'placement.stealAfter', env: 'GRID_STEAL_AFTER', convert: duration(0, 3_600_000), help: 'how long a queued task waits before a peer may take it (default 2s)' },
  { key: 'taskRetention', env: 'GRID_TASK_RETENTION', flag: 'task-retention', convert: duration(1000, 365 * 86_400_000), help: 'how long finished task records are kept (default 24h)' },
  { key: 'control.maxConnections', env: 'GRID_CONTROL_MAX_CONNECTIONS', convert: int(8, 100_000), help: 'connections the control socket keeps open at once; at the cap the longest-idle one is closed (default 512)' },
  { key: 'sessions.maxPerWriter', env: 'GRID_SESSIONS_MAX', convert: int(1, 10_000_000), help: 'sessions this node may hold (written through it); a put past it is TOO_LARGE (default 10000)' },
  { key: 'sessions.maxBytesPerWriter', env: 'GRID_SESSIONS_MAX_BYTES', convert: size(65_536, 2 ** 40), help: 'bytes of session values this node may hold; a put past it is TOO_LARGE (default 64MiB)' },
  { key: 'tasks', convert: taskTypes, help: 'task types (config file only): {NAME: {command: [...], env: {...}, cwd: DIR}}' }
]

export const FIELD_BY_KEY = new Map(FIELDS.map(f => [f.key, f]))
