/**
 * Work stealing (issue 12, after Dask's): a node with room and an empty queue asks the peer with the most queued
 * tasks (from its heartbeats) for tasks that have waited there longer than a threshold (2 s by default) and that it
 * could run: highest priority first, within its free slots, GPUs and memory, its task types, capabilities, labels
 * and region. Pinned tasks (`--node`), a session's tasks, tasks with an open stdin, and tasks that started never move.
 *
 * The handoff is exactly once: the victim takes each task out of its queue before it answers (it will never start
 * it), and the task's coordinator hears from the victim's run stream that it moved (`movedTo`) and offers it to the
 * thief as a new attempt. The thief never starts a task on its own say.
 */
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { QueueRebalance, QueueSteal, type RebalanceEntry, type RequestOf } from '../../proto/index.ts'
import type { NodeHealth, NodeId } from '../interface/index.ts'
import type { Executor } from '../executor/index.ts'
import { labelOf } from '../routing/index.ts'
import { repeat } from '../util/index.ts'
import type { TaskMembers, TaskRpc } from './components.ts'
import { nodeName, type RegistryReader } from './view.ts'

/** How often a node with room looks for work to take. */
export const STEAL_INTERVAL_MS = 500
/** A queued task waits at least this long before a peer may take it (config placement.stealAfter). */
export const STEAL_AFTER_MS = 2_000
const STEAL_TIMEOUT_MS = 5_000
/** A task this node took is counted against its room until it arrives, for at most this long. */
const PROMISED_TTL_MS = 5_000
/**
 * A thief keeps each slot busy and this many tasks per slot waiting behind it, so a slot that frees does not idle
 * for a round trip to the victim (Dask's saturation); a short local queue, which another node may steal in turn.
 */
const QUEUED_PER_SLOT = 1
/** After one of its tasks ends, a node looks for work this soon rather than at the next interval. */
const STEAL_ON_END_DELAY_MS = 10

export interface StealerComponents {
  peerId: NodeId
  rpc: TaskRpc
  members: Pick<TaskMembers, 'view'>
  nodeRegistry: RegistryReader
  executor: Pick<Executor, 'usage' | 'queuedTasks' | 'moveOut' | 'isPaused' | 'isDraining' | 'get' | 'slots' | 'taskTypes' | 'on'>
  /** this node's own health: a node that is not healthy takes nothing */
  health: () => NodeHealth
  logger: Logger
  registry: Registry
}

export interface StealerInit {
  nodeName: string
  capabilities: string[]
  labels: Record<string, string>
  region: string
  /** steal on its own (rebalance works either way) */
  enabled: boolean
  stealAfterMs: number
}

type StealRequest = RequestOf<typeof QueueSteal>

export class Stealer {
  private loop?: { stop: () => void }
  private readonly stolen: Counter
  /** tasks this node took and expects its coordinator to offer: id → when taken */
  private readonly promised = new Map<string, number>()
  private busy = false
  private running = false
  private soon?: NodeJS.Timeout

  constructor (private readonly c: StealerComponents, private readonly init: StealerInit) {
    this.stolen = new Counter({ name: 'grid_tasks_stolen_total', help: 'Queued tasks this node handed to a node with room before they started (work stealing and rebalance)', registers: [c.registry] })
    c.rpc.handle(QueueSteal, (req, ctx) => ({ tasks: this.handOver(req, ctx.peer) }))
    c.rpc.handle(QueueRebalance, async req => ({ moved: await this.round({ dryRun: req.dryRun, now: true, all: true }) }))
  }

  start (): void {
    if (!this.init.enabled) return
    this.running = true
    this.loop = repeat(async () => { await this.tick() }, STEAL_INTERVAL_MS, err => { this.c.logger.warn({ err }, 'work stealing round failed') })
    // a slot that frees looks for work at once
    this.c.executor.on('task:state', (_id, state) => {
      if (!this.running || state.finishedAt === undefined || this.soon !== undefined) return
      this.soon = setTimeout(() => {
        this.soon = undefined
        void this.tick().catch(err => { this.c.logger.warn({ err }, 'work stealing round failed') })
      }, STEAL_ON_END_DELAY_MS)
    })
  }

  stop (): void {
    this.running = false
    clearTimeout(this.soon)
    this.loop?.stop()
  }

  /** gridctl rebalance: every alive node with room takes what it can now; says what moved (or would, dryRun). */
  async rebalance (dryRun: boolean): Promise<RebalanceEntry[]> {
    const nodes = this.c.members.view().filter(m => m.state === 'alive' && m.selfState === 'alive' && m.paused !== true)
    const out: RebalanceEntry[] = []
    // one thief at a time, so two do not count the same victim's tasks
    for (const m of nodes) {
      const to = m.id
      try {
        const moved = to === this.c.peerId ? await this.round({ dryRun, now: true, all: true }) : (await this.c.rpc.request(to, QueueRebalance, { dryRun }, { timeoutMs: STEAL_TIMEOUT_MS * 4 })).moved
        for (const t of moved) out.push({ ...t, to, toName: this.nameOf(to) })
      } catch (err) {
        this.c.logger.debug({ err, peer: to }, 'rebalance: a node did not answer')
      }
    }
    return out
  }

  private async tick (): Promise<void> {
    if (this.busy) return
    this.busy = true
    try { await this.round({ dryRun: false, now: false, all: false }) } finally { this.busy = false }
  }

  /** This node's room now: free slots, GPUs and memory less what it took and has not received yet. */
  private room (): { slots: number, gpus: number, memoryBytes: number } | undefined {
    const ex = this.c.executor
    if (ex.isPaused() || ex.isDraining() || this.c.health() !== 'healthy') return undefined
    const u = ex.usage()
    const now = Date.now()
    for (const [id, at] of this.promised) if (now - at > PROMISED_TTL_MS || ex.get(id) !== undefined) this.promised.delete(id)
    // its slots busy and QUEUED_PER_SLOT waiting behind each: what it lacks of that, in slots
    const want = Math.floor(ex.slots * (1 + QUEUED_PER_SLOT) - (ex.slots - u.freeSlots) - u.queued - this.promised.size)
    if (want <= 0 || u.queued >= ex.slots * QUEUED_PER_SLOT) return undefined
    return { slots: want, gpus: u.freeGpus, memoryBytes: u.freeMemoryBytes }
  }

  /** One round as the thief: asks the peers with queued tasks (the one with most, or all of them), most first. */
  private async round (how: { dryRun: boolean, now: boolean, all: boolean }): Promise<Array<Omit<RebalanceEntry, 'to' | 'toName'>>> {
    const moved: Array<Omit<RebalanceEntry, 'to' | 'toName'>> = []
    const victims = this.c.members.view().slice(1)
      .filter(m => m.state === 'alive' && (m.load?.queued ?? 0) > 0 && m.id !== this.c.peerId)
      .sort((a, b) => (b.load?.queued ?? 0) - (a.load?.queued ?? 0))
    for (const v of how.all ? victims : victims.slice(0, 1)) {
      const room = this.room()
      if (room === undefined) break
      const req: StealRequest = {
        ...room,
        types: this.c.executor.taskTypes(),
        capabilities: this.init.capabilities,
        labels: this.init.labels,
        region: this.init.region,
        max: Math.max(1, Math.floor(room.slots)),
        ...(how.dryRun ? { dryRun: true } : {}),
        ...(how.now ? { now: true } : {})
      }
      try {
        const r = await this.c.rpc.request(v.id, QueueSteal, req, { timeoutMs: STEAL_TIMEOUT_MS })
        const fromName = this.nameOf(v.id)
        for (const t of r.tasks) {
          if (!how.dryRun) this.promised.set(t.task, Date.now())
          moved.push({ task: t.task, from: v.id, fromName, priority: t.priority })
        }
        if (r.tasks.length > 0 && !how.dryRun) this.c.logger.info({ from: v.id, fromName, tasks: r.tasks.map(t => t.task) }, 'took queued tasks from a busy node (work stealing)')
      } catch (err) {
        this.c.logger.debug({ err, peer: v.id }, 'work stealing: the peer did not answer')
      }
    }
    return moved
  }

  /** As the victim: hands over queued tasks the thief could run, highest priority first (the queue's order). */
  private handOver (req: StealRequest, thief: NodeId): Array<{ task: string, priority: number, waitingMs: number }> {
    if (thief === this.c.peerId) return []
    const now = Date.now()
    let slots = req.slots
    let gpus = req.gpus
    let memory = req.memoryBytes
    const out: Array<{ task: string, priority: number, waitingMs: number }> = []
    const thiefName = this.nameOf(thief)
    for (const t of this.c.executor.queuedTasks()) {
      if (out.length >= req.max) break
      const s = t.spec
      const waited = now - t.queuedAt
      if (req.now !== true && waited < this.init.stealAfterMs) continue
      // pinned and session tasks stay; an open stdin is held here
      if (s.node !== undefined || s.session !== undefined || t.stdin) continue
      if (s.cpus > slots || s.gpus > gpus || s.memory > memory) continue
      if (s.type !== undefined && !req.types.includes(s.type)) continue
      if (s.strategy !== 'capability' && !s.require.every(cap => req.capabilities.includes(cap))) continue
      if (!Object.entries(s.labels).every(([k, v]) => labelOf(req.labels, k) === v)) continue
      if (s.region !== undefined && s.strategy !== 'region' && s.region !== req.region) continue
      if (req.dryRun !== true && !this.c.executor.moveOut(t.id, thief, thiefName)) continue
      if (req.dryRun !== true) this.stolen.inc()
      slots -= s.cpus
      gpus -= s.gpus
      memory -= s.memory
      out.push({ task: t.id, priority: t.priority, waitingMs: waited })
    }
    return out
  }

  private nameOf (id: NodeId): string {
    const m = this.c.members.view().find(v => v.id === id)
    return nodeName(id, m, this.c.nodeRegistry.get(id)?.value)
  }
}
