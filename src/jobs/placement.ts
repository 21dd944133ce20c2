/**
 * Where a job's runs go (pure). Runs are tasks and go through tasks' routing: round-robin, random and least-loaded
 * are the routing strategies of the same names, map-reduce's runs are least-loaded; broadcast is one run on each
 * eligible alive node, named explicitly. How many runs exist at once defaults to what the eligible nodes fit.
 */
import type { JobStrategy, Strategy, TaskSpec } from '../../proto/index.ts'
import type { MemberView, NodeId } from '../interface/index.ts'

/** Runs past what the nodes' slots hold, per node, so that a slot never idles while its next run is on its way. */
export const QUEUED_RUNS_PER_NODE = 2
/** The default cap on a job's runs at once, however large the cluster. */
export const MAX_PARALLEL_DEFAULT_CAP = 4096

/** The routing strategy of a job's runs. */
export function runStrategy (s: JobStrategy): Strategy {
  return s === 'round-robin' || s === 'random' ? s : 'least-loaded'
}

/** broadcast: the eligible alive nodes (as routing ranked them), each once, in a stable order (by name, then id). */
export function broadcastTargets (eligible: NodeId[], nameOf: (id: NodeId) => string): NodeId[] {
  return [...new Set(eligible)].sort((a, b) => nameOf(a).localeCompare(nameOf(b)) || (a < b ? -1 : 1))
}

/**
 * As many runs as fit at once: on each eligible node, its CPU slots over the run's CPUs (GPUs over GPUs for a GPU
 * run), at least one, plus QUEUED_RUNS_PER_NODE waiting; capped at MAX_PARALLEL_DEFAULT_CAP.
 */
export function fitParallel (eligible: NodeId[], members: MemberView[], spec: Pick<TaskSpec, 'cpus' | 'gpus'>): number {
  const byId = new Map(members.map(m => [m.id, m]))
  let n = 0
  for (const id of new Set(eligible)) {
    const load = byId.get(id)?.load
    const fits = load === undefined
      ? 1
      : spec.gpus > 0 ? Math.floor(load.gpus / spec.gpus) : Math.floor(load.slots / Math.max(spec.cpus, 0.001))
    n += Math.max(1, fits) + QUEUED_RUNS_PER_NODE
  }
  return Math.max(1, Math.min(MAX_PARALLEL_DEFAULT_CAP, n))
}
