/**
 * Placement as a pure pipeline (after Nomad's scheduler): feasibility filters drop nodes that can never run the
 * task, a ranker per strategy orders the rest, and the result is a first choice with fallbacks. No I/O, no timers:
 * randomness and this node's recent dispatches come in through the context, so every decision is testable.
 */
import type { RehomeReason, Strategy } from '../../proto/index.ts'
import type { MemberState, NodeHealth, NodeId } from '../interface/index.ts'

/** What routing knows of a node: static facts (registry) and load (last heartbeat). */
export interface Candidate {
  id: NodeId
  name: string
  alive: boolean
  /** what the failure detector believes (alive when absent and `alive`, else dead): says why a node cannot take it now */
  state?: MemberState
  draining: boolean
  region: string
  labels: Record<string, string>
  capabilities: string[]
  /** task types its configuration defines */
  types: string[]
  /** totals */
  slots: number
  gpus: number
  /** memory the node offers to tasks (its `--task-memory`, else the machine's RAM) */
  memoryMiB: number
  /** now, as last reported */
  freeSlots: number
  freeGpus: number
  memFreeMiB: number
  running: number
  queued: number
  /** its own gossiped verdict (absent: healthy): a degraded node is used only when no healthy one fits */
  health?: NodeHealth
  healthReason?: string
  /** its queue is paused: it takes no new tasks */
  paused?: boolean
}

export interface Requirements {
  cpus: number
  gpus: number
  /** bytes */
  memory: number
  require: string[]
  labels: Record<string, string>
  region?: string | undefined
  /** a task type: only nodes that define it can run the task */
  type?: string | undefined
  strategy: Strategy
  /** explicit placement: a peer id */
  node?: string | undefined
}

export interface RouteContext {
  /** this node: its region is the `region` strategy's preference when the task names none */
  origin: { id: NodeId, region: string }
  /** the session's owner, for `affinity` */
  sessionOwner?: NodeId | null
  /** tasks this node sent to a peer in the last few seconds that its heartbeats may not show yet */
  recentlySent: (id: NodeId) => number
  random: () => number
  /** a counter the caller increments per decision, for `round-robin` */
  turn: number
  /** nodes where this task (or a job's item) already failed: ranked after every other (GNU parallel's rule) */
  avoid?: ReadonlySet<NodeId>
}

/**
 * Affinity's plan for a session's task. The owner keeps the session while it is alive, not draining and fits the
 * task; whether it has room now is the owner's own call (its reports are up to a second old): the origin offers it
 * the task asking it to start at once (`startNow`, when another candidate could), and moves the session to whoever
 * accepts if it refuses. The session's new owner is the node that accepted the task, never just the first choice.
 */
export interface SessionPlan {
  /** the session's owner now, null when it has none yet */
  owner: NodeId | null
  /** the owner is the first candidate */
  ownerFirst: boolean
  /** the owner should refuse rather than queue the task: another candidate can start it now */
  startNow: boolean
  /** why the owner is not first (set when ownerFirst is false) */
  reason?: RehomeReason
  message?: string
}

export type RouteResult =
  /** `passed`: alive nodes that could run it but were passed by or put last, and why (paused, degraded...: run -v) */
  | { ok: true, candidates: NodeId[], strategy: Strategy, session?: SessionPlan, passed?: Array<{ name: string, reason: string }> }
  /**
   * No node can take it now. `wait`: a node known to the cluster could run it but is draining, suspect or dead (the
   * task waits for it, with `reason`); otherwise no known node could ever run it (`reason` names the requirement).
   */
  | { ok: false, reason: string, wait?: true }

interface Filter {
  /** says what no node meets, given the best any node offers */
  explain: (req: Requirements, nodes: Candidate[]) => string
  test: (n: Candidate, req: Requirements) => boolean
}

const MIB = 1024 * 1024

/** The label every node has for pools (`gridd --pool NAME`); a node without one is in the pool `default`. */
export const POOL_LABEL = 'pool'
export const DEFAULT_POOL = 'default'

/** A node's value for label `k`: its own, or for `pool` the default pool when it names none. */
export function labelOf (labels: Record<string, string>, k: string): string | undefined {
  return labels[k] ?? (k === POOL_LABEL ? DEFAULT_POOL : undefined)
}

/** A node is a router (`gridd --slots 0`, no GPUs): it routes and coordinates but never runs a task. */
export function isRouter (n: Pick<Candidate, 'slots' | 'gpus'>): boolean {
  return n.slots === 0 && n.gpus === 0
}

/** Static feasibility: could this node ever run the task (with everything else on it finished)? */
const FILTERS: Filter[] = [
  {
    test: (n, r) => r.type === undefined || n.types.includes(r.type),
    explain: (r, ns) => `no node defines task type ${r.type ?? ''} (types: ${[...new Set(ns.flatMap(n => n.types))].sort().join(', ') || 'none'})`
  },
  {
    test: (n, r) => n.gpus >= r.gpus,
    explain: (r, ns) => `no node has ${r.gpus} GPU${r.gpus === 1 ? '' : 's'} (the most any alive node has is ${Math.max(0, ...ns.map(n => n.gpus))})`
  },
  {
    test: (n, r) => n.slots >= r.cpus,
    explain: (r, ns) => `no node has ${r.cpus} CPU slots (the most any alive node has is ${Math.max(0, ...ns.map(n => n.slots))})`
  },
  {
    test: (n, r) => n.memoryMiB * MIB >= r.memory,
    explain: (r, ns) => `no node offers ${Math.ceil(r.memory / MIB)} MiB of memory to tasks (the most any node offers is ${Math.max(0, ...ns.map(n => n.memoryMiB))} MiB)`
  },
  {
    test: (n, r) => r.strategy === 'capability' || r.require.every(c => n.capabilities.includes(c)),
    explain: (r, ns) => {
      const missing = r.require.filter(c => !ns.some(n => n.capabilities.includes(c)))
      const offered = [...new Set(ns.flatMap(n => n.capabilities))].sort()
      return missing.length > 0
        ? `no node offers capability ${missing.join(', ')} (${offered.length === 0 ? 'no node offers any capability' : `capabilities offered: ${offered.join(', ')}`})`
        : `no single node offers all of the capabilities ${r.require.join(', ')}`
    }
  },
  {
    test: (n, r) => Object.entries(r.labels).every(([k, v]) => labelOf(n.labels, k) === v),
    explain: (r, ns) => {
      const missing = Object.entries(r.labels).filter(([k, v]) => !ns.some(n => labelOf(n.labels, k) === v)).map(([k, v]) => `${k}=${v}`)
      if (missing.length === 0) return `no single node has all of the labels ${Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(', ')}`
      // what the nodes have under each key asked for, so the user sees what to ask for instead
      const offered = [...new Set(Object.keys(r.labels))].map(k => {
        const vs = [...new Set(ns.map(n => labelOf(n.labels, k)).filter(v => v !== undefined))].sort()
        return vs.length === 0 ? `no node has a ${k} label` : `${k} on the nodes: ${vs.join(', ')}`
      })
      return `no node has label ${missing.join(', ')} (${offered.join('; ')})`
    }
  },
  {
    test: (n, r) => r.region === undefined || r.strategy === 'region' || n.region === r.region,
    explain: (r, ns) => `no node is in region ${r.region ?? ''} (regions: ${[...new Set(ns.map(n => n.region))].sort().join(', ')})`
  }
]

/**
 * Orders every alive node that could run the task, first choice first. When none can take it now, says whether a
 * draining, suspect or dead node could (the task waits, and the reason names that node), or which requirement no
 * node known to the cluster meets (the task fails at once).
 */
export function route (nodes: Candidate[], req: Requirements, ctx: RouteContext): RouteResult {
  const alive = nodes.filter(n => n.alive)
  if (req.node !== undefined) return explicit(alive, nodes, req)
  const open = alive.filter(n => takesWork(n))
  const feasible = open.filter(n => fitsStatically(n, req))
  if (feasible.length > 0) {
    const r = preferOthers(byHealth(feasible, req, ctx, nodes), ctx.avoid)
    const passed = passedBy(alive, feasible, req)
    return r.ok && passed.length > 0 ? { ...r, passed } : r
  }
  // nodes that left (or are leaving) said goodbye: they are not waited for
  const known = nodes.filter(n => stateOf(n) !== 'left' && (n.alive || stateOf(n) !== 'alive'))
  const fitting = known.filter(n => fitsStatically(n, req))
  if (fitting.length > 0) return { ok: false, wait: true, reason: unavailable(fitting) }
  if (known.length === 0) return { ok: false, reason: 'no node is alive' }
  // name the requirement nobody meets, looking at every known node (not only those earlier filters kept)
  const culprit = FILTERS.find(g => !known.some(n => g.test(n, req)))
  return { ok: false, reason: culprit === undefined ? `no single node meets every requirement (${describe(req)})` : culprit.explain(req, known) }
}

/** A retry goes first to a node where it has not failed, when there is one (a session keeps its owner first). */
function preferOthers (r: RouteResult, avoid: ReadonlySet<NodeId> | undefined): RouteResult {
  if (!r.ok || avoid === undefined || avoid.size === 0 || r.session !== undefined) return r
  return { ...r, candidates: [...r.candidates.filter(n => !avoid.has(n)), ...r.candidates.filter(n => avoid.has(n))] }
}

/** Alive and taking new tasks: not draining, not paused, not unavailable. */
function takesWork (n: Candidate): boolean {
  return !n.draining && n.paused !== true && n.health !== 'unavailable' && !isRouter(n)
}

/** The alive nodes that could run the task but are paused or unavailable, or degraded and so ranked last. */
function passedBy (alive: Candidate[], feasible: Candidate[], req: Requirements): Array<{ name: string, reason: string }> {
  const out: Array<{ name: string, reason: string }> = []
  const healthyFits = feasible.some(isHealthy)
  for (const n of alive) {
    if (n.draining || isRouter(n) || !fitsStatically(n, req)) continue
    if (n.paused === true) out.push({ name: n.name, reason: 'paused' })
    else if (n.health === 'unavailable') out.push({ name: n.name, reason: `unavailable: ${n.healthReason ?? 'cannot run tasks now'}` })
    else if (n.health === 'degraded' && healthyFits) out.push({ name: n.name, reason: `degraded, tried last: ${n.healthReason ?? ''}` })
  }
  return out
}

function isHealthy (n: Candidate): boolean {
  return n.health === undefined || n.health === 'healthy'
}

/**
 * Healthy nodes first, ranked by the strategy; degraded ones only after them (tried when every healthy one refused),
 * or ranked alone when no healthy node fits (Envoy's outlier detection: an ejected host is used only in panic).
 */
function byHealth (feasible: Candidate[], req: Requirements, ctx: RouteContext, all: Candidate[]): RouteResult {
  const healthy = feasible.filter(isHealthy)
  if (healthy.length === 0 || healthy.length === feasible.length) return rank(feasible, req, ctx, all)
  const r = rank(healthy, req, ctx, all)
  if (!r.ok) return r
  const degraded = byLoad(feasible.filter(n => !isHealthy(n)), req, ctx).map(n => n.id)
  return { ...r, candidates: [...r.candidates, ...degraded] }
}

function fitsStatically (n: Candidate, req: Requirements): boolean {
  return FILTERS.every(f => f.test(n, req))
}

function stateOf (n: Candidate): MemberState {
  return n.state ?? (n.alive ? 'alive' : 'dead')
}

/** Why the nodes that could run a task cannot take it now: each one's state (draining, suspect, dead). */
function unavailable (fitting: Candidate[]): string {
  const why = (n: Candidate): string => !n.alive ? stateOf(n) : n.draining ? 'draining' : n.paused === true ? 'paused' : n.health === 'unavailable' ? `unavailable (${n.healthReason ?? 'cannot run tasks now'})` : 'draining'
  if (fitting.length === 1) {
    const n = fitting[0] as Candidate
    return `the only node that can run it, ${n.name}, is ${why(n)}`
  }
  const byWhy = new Map<string, string[]>()
  for (const n of fitting) byWhy.set(why(n), [...(byWhy.get(why(n)) ?? []), n.name])
  const shown = [...byWhy].map(([w, names]) => `${w} (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''})`)
  return `the ${fitting.length} nodes that can run it are ${shown.join(', ')}`
}

function explicit (alive: Candidate[], all: Candidate[], req: Requirements): RouteResult {
  const target = all.find(n => n.id === req.node)
  if (target === undefined) return { ok: false, reason: `no node ${req.node ?? ''} in this cluster` }
  if (!alive.includes(target)) return { ok: false, reason: `node ${target.name} is not alive` }
  if (isRouter(target)) return { ok: false, reason: `node ${target.name} is a router (--slots 0): it runs no tasks` }
  if (target.draining) return { ok: false, reason: `node ${target.name} is draining` }
  // pinned to a paused or unavailable node: the task waits for it (it never moves elsewhere)
  if (target.paused === true) return { ok: false, wait: true, reason: `node ${target.name} is paused` }
  if (target.health === 'unavailable') return { ok: false, wait: true, reason: `node ${target.name} is unavailable (${target.healthReason ?? 'cannot run tasks now'})` }
  for (const f of FILTERS) {
    if (!f.test(target, req)) return { ok: false, reason: `node ${target.name} cannot run it: ${f.explain(req, [target]).replace(/^no node/, 'it')}` }
  }
  return { ok: true, candidates: [target.id], strategy: req.strategy }
}

function describe (req: Requirements): string {
  const parts = [`${req.cpus} CPU`, `${req.gpus} GPU`]
  if (req.memory > 0) parts.push(`${Math.ceil(req.memory / MIB)} MiB`)
  if (req.require.length > 0) parts.push(`capabilities ${req.require.join(',')}`)
  const labels = Object.entries(req.labels)
  if (labels.length > 0) parts.push(`labels ${labels.map(([k, v]) => `${k}=${v}`).join(',')}`)
  if (req.region !== undefined) parts.push(`region ${req.region}`)
  return parts.join(', ')
}

/** Free capacity for this task's kind of resource, corrected for what this node sent recently: 0 (full) .. 1 (idle). */
export function freeFraction (n: Candidate, req: Requirements, ctx: RouteContext): number {
  const sent = ctx.recentlySent(n.id)
  if (req.gpus > 0) return n.gpus === 0 ? 0 : Math.max(0, n.freeGpus - sent * req.gpus) / n.gpus
  const perTask = Math.max(req.cpus, 0.001)
  return n.slots === 0 ? 0 : Math.max(0, n.freeSlots - n.queued * perTask - sent * perTask) / n.slots
}

/** True when the node can start the task now (rather than queue it). */
export function hasRoom (n: Candidate, req: Requirements, ctx: RouteContext): boolean {
  const sent = ctx.recentlySent(n.id)
  return n.freeSlots - sent * req.cpus >= req.cpus && n.freeGpus - sent * req.gpus >= req.gpus && n.memFreeMiB * MIB >= req.memory
}

/** Freer first (free fraction, corrected for what this node sent recently), then fewer queued, fewer running. */
function loadOrder (req: Requirements, ctx: RouteContext): (a: Candidate, b: Candidate) => number {
  return (a, b) => freeFraction(b, req, ctx) - freeFraction(a, req, ctx) || a.queued - b.queued || a.running - b.running || (a.id < b.id ? -1 : 1)
}

function byLoad (nodes: Candidate[], req: Requirements, ctx: RouteContext): Candidate[] {
  return [...nodes].sort(loadOrder(req, ctx))
}

function leastLoaded (nodes: Candidate[], req: Requirements, ctx: RouteContext): Candidate[] {
  const order = loadOrder(req, ctx)
  const sorted = byLoad(nodes, req, ctx)
  // the two choices are drawn among the nodes that can start the task now, when any can: a full node would queue
  // it while another would run it at once
  const roomy = nodes.filter(n => hasRoom(n, req, ctx))
  const pool = roomy.length > 0 ? roomy : nodes
  if (pool.length < 2) return pool.length === 1 ? [pool[0] as Candidate, ...sorted.filter(n => n !== pool[0])] : sorted
  // power of two choices: two random nodes, the freer one first; stale load reports then spread work instead of
  // sending every origin's tasks to the same idle node
  const i = Math.floor(ctx.random() * pool.length)
  let j = Math.floor(ctx.random() * (pool.length - 1))
  if (j >= i) j++
  const a = pool[i] as Candidate
  const b = pool[j] as Candidate
  const first = order(a, b) <= 0 ? a : b
  return [first, ...sorted.filter(n => n !== first)]
}

/** Why the session's owner cannot be first: gone, not alive, draining, or unable to run this task. */
function ownerProblem (all: Candidate[], owner: NodeId | null | undefined, req: Requirements): { reason: RehomeReason, message: string } {
  if (owner == null) return { reason: 'no-owner', message: 'the session has no owner yet' }
  const n = all.find(c => c.id === owner)
  if (n === undefined) return { reason: 'dead', message: `its owner ${owner} is no longer in the cluster` }
  if (!n.alive) return { reason: 'dead', message: `its owner ${n.name} is not alive` }
  if (n.draining) return { reason: 'draining', message: `its owner ${n.name} is draining` }
  if (n.paused === true) return { reason: 'unfit', message: `its owner ${n.name} is paused` }
  if (!isHealthy(n)) return { reason: 'unfit', message: `its owner ${n.name} is ${n.health ?? 'degraded'}${n.healthReason === undefined ? '' : ` (${n.healthReason})`}` }
  const f = FILTERS.find(g => !g.test(n, req))
  return { reason: 'unfit', message: `its owner ${n.name} cannot run this task${f === undefined ? '' : `: ${f.explain(req, [n]).replace(/^no node/, 'it')}`}` }
}

function rank (nodes: Candidate[], req: Requirements, ctx: RouteContext, all: Candidate[] = nodes): RouteResult {
  const ids = (list: Candidate[]): NodeId[] => list.map(n => n.id)
  switch (req.strategy) {
    case 'least-loaded':
      return { ok: true, strategy: req.strategy, candidates: ids(leastLoaded(nodes, req, ctx)) }
    case 'round-robin': {
      const sorted = [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1))
      const start = ((ctx.turn % sorted.length) + sorted.length) % sorted.length
      return { ok: true, strategy: req.strategy, candidates: ids([...sorted.slice(start), ...sorted.slice(0, start)]) }
    }
    case 'random': {
      const shuffled = [...nodes]
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(ctx.random() * (i + 1))
        ;[shuffled[i], shuffled[j]] = [shuffled[j] as Candidate, shuffled[i] as Candidate]
      }
      return { ok: true, strategy: req.strategy, candidates: ids(shuffled) }
    }
    case 'capability': {
      // the listed capabilities are preferences here: most matches first, then the least loaded
      const matches = (n: Candidate): number => req.require.filter(c => n.capabilities.includes(c)).length
      const loaded = byLoad(nodes, req, ctx)
      return { ok: true, strategy: req.strategy, candidates: ids([...loaded].sort((a, b) => matches(b) - matches(a) || loaded.indexOf(a) - loaded.indexOf(b))) }
    }
    case 'region': {
      const want = req.region ?? ctx.origin.region
      const loaded = byLoad(nodes, req, ctx)
      return { ok: true, strategy: req.strategy, candidates: ids([...loaded.filter(n => n.region === want), ...loaded.filter(n => n.region !== want)]) }
    }
    case 'affinity': {
      const ownerId = ctx.sessionOwner ?? null
      const owner = ownerId === null ? undefined : nodes.find(n => n.id === ownerId)
      const rest = leastLoaded(nodes.filter(n => n !== owner), req, ctx)
      if (owner !== undefined) {
        // the owner decides whether it has room: it refuses when another node could start the task now
        return { ok: true, strategy: req.strategy, candidates: ids([owner, ...rest]), session: { owner: ownerId, ownerFirst: true, startNow: rest.some(n => hasRoom(n, req, ctx)) } }
      }
      // the owner is gone, draining or unfit (or there is none yet): the node that accepts the task becomes the owner
      return { ok: true, strategy: req.strategy, candidates: ids(rest), session: { owner: ownerId, ownerFirst: false, startNow: false, ...ownerProblem(all, ownerId, req) } }
    }
  }
}
