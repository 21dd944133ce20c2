/**
 * Why a warm-worker request waits, like squeue's pending reason: computed from the pool's state when someone asks
 * (never kept up to date, so a request that does not wait costs nothing). Pure: the pool hands in what it knows.
 */
import type { WorkerTypeConfig } from './index.ts'
import type { Proc } from './worker-process.ts'

/** What of the node is free now (the executor's ledger), and how many GPUs it has. */
export interface FreeResources { slots: number, gpus: number, memoryBytes: number, totalGpus: number }

/** Why a group's first queued request cannot go to a worker now. */
export type Blocked =
  | { kind: 'draining' }
  | { kind: 'busy', workers: number }
  | { kind: 'ending' }
  | { kind: 'backoff', inMs: number }
  | { kind: 'spawner' }
  | { kind: 'resources' }
  | { kind: 'starting' }

export interface WaitContext {
  nodeName: string
  type: string
  session: string | null
  config: WorkerTypeConfig
  /** requests queued ahead of this one (in its group) */
  ahead: number
  blocked: Blocked
  /** every worker on this node (for who holds the GPUs) */
  procs: Iterable<Proc>
  free?: FreeResources
}

/** What `blockedBy` looks at: a group's workers and the pool's state. */
export interface GroupState {
  procs: Iterable<Proc>
  session: string | null
  draining: boolean
  nextStartAt: number
  spawnerRunning: boolean
  free: FreeResources | undefined
}

/** Why the first queued request of a group cannot go to a worker now (as the pool's pump decides). */
export function blockedBy (g: GroupState, t: WorkerTypeConfig): Blocked {
  if (g.draining) return { kind: 'draining' }
  const all = [...g.procs]
  const live = all.filter(p => !p.retiring)
  if (live.some(p => p.inflight.size < t.concurrency)) return { kind: 'starting' }
  if (g.session !== null ? all.length > 0 : live.length >= t.maxWorkers) return live.length > 0 ? { kind: 'busy', workers: live.length } : { kind: 'ending' }
  const now = Date.now()
  if (now < g.nextStartAt) return { kind: 'backoff', inMs: g.nextStartAt - now }
  if (!g.spawnerRunning) return { kind: 'spawner' }
  // past those, a worker could not be started only because its resources are not free (or they just came free)
  const f = g.free
  if (f === undefined || f.slots < t.cpus || f.gpus < t.gpus || f.memoryBytes < t.memory) return { kind: 'resources' }
  return { kind: 'starting' }
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`
const MIB = 1048576
/** Holders named in a reason before "and N more". */
const HOLDERS_SHOWN = 3

/** Why a queued request waits. */
export function queuedReason (w: WaitContext): string {
  const why = blockedReason(w)
  return w.ahead > 0 ? `queued behind ${plural(w.ahead, 'request')} for ${w.type} workers on ${w.nodeName}; ${why}` : why
}

/** Why a request sent to a new worker has no answer yet (undefined when the worker has answered before). */
export function startingReason (p: Proc, nodeName: string, now: number): string | undefined {
  if (p.served > 0 || p.ended) return undefined
  return `waiting for the new ${p.type} worker on ${nodeName} to answer its first request (started ${Math.round((now - p.startedAt) / 1000)} s ago)`
}

function blockedReason (w: WaitContext): string {
  const b = w.blocked
  const t = w.config
  switch (b.kind) {
    case 'draining': return `node ${w.nodeName} is draining: it starts no ${w.type} workers`
    case 'busy': return w.session !== null
      ? `session ${w.session}'s ${w.type} worker on ${w.nodeName} is busy (${plural(t.concurrency, 'request')} at once)`
      : `all ${plural(b.workers, `${w.type} worker`)} on ${w.nodeName} are busy (at most ${t.maxWorkers}, ${plural(t.concurrency, 'request')} each)`
    case 'ending': return `session ${w.session ?? ''}'s ${w.type} worker on ${w.nodeName} is ending; a new one starts after it`
    case 'backoff': return `the ${w.type} worker on ${w.nodeName} crashed; starting it again in ${Math.ceil(b.inMs / 1000)} s`
    case 'spawner': return `the worker spawner on ${w.nodeName} is restarting`
    case 'starting': return `starting a ${w.type} worker on ${w.nodeName}`
    case 'resources': return resourcesReason(w)
  }
}

/** Which resource a new worker lacks, and (for GPUs) who holds them. */
function resourcesReason (w: WaitContext): string {
  const t = w.config
  const f = w.free
  if (f === undefined) return `waiting for resources on ${w.nodeName} to start a ${w.type} worker`
  const lacks: string[] = []
  if (f.gpus < t.gpus) {
    const holders: string[] = []
    let byWorkers = 0
    for (const p of w.procs) {
      if (p.held.gpus.length === 0 || p.ended) continue
      byWorkers += p.held.gpus.length
      holders.push(`${p.session !== null ? `session ${p.session}'s` : 'a'} ${p.type} worker (${p.inflight.size > 0 ? 'busy' : 'idle'})`)
    }
    const byTasks = Math.max(0, f.totalGpus - f.gpus - byWorkers)
    if (byTasks > 0) holders.push(`running tasks (${plural(byTasks, 'GPU')})`)
    const named = holders.length > HOLDERS_SHOWN ? [...holders.slice(0, HOLDERS_SHOWN), `${holders.length - HOLDERS_SHOWN} more`] : holders
    const by = named.length > 0 ? ` held by ${named.join(', ')}` : ''
    lacks.push(f.totalGpus === 1 && t.gpus === 1
      ? `waiting for a GPU: the only one on ${w.nodeName} is${by}`
      : `waiting for ${plural(t.gpus, 'GPU')} on ${w.nodeName} (${f.gpus} of ${f.totalGpus} free${by === '' ? '' : `;${by}`})`)
  }
  if (f.slots < t.cpus) lacks.push(`waiting for ${plural(t.cpus, 'CPU slot')} on ${w.nodeName} (${f.slots} free)`)
  if (f.memoryBytes < t.memory) lacks.push(`waiting for ${Math.ceil(t.memory / MIB)} MiB of memory on ${w.nodeName} (${Math.floor(f.memoryBytes / MIB)} MiB free)`)
  return lacks.length > 0 ? lacks.join('; ') : `waiting for resources on ${w.nodeName} to start a ${w.type} worker`
}
