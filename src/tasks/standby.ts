/**
 * Fencing a takeover (issue 13): a coordinator that others may have taken for dead (its event loop stalled: SIGSTOP,
 * a starved CPU; or it saw the task's would-be successor cut off: a partition) may have been superseded, or be about
 * to be: the successor can take its task over a moment after it starts an attempt, and run that attempt again. Before
 * it starts one (an offer, or a yes to an executor's `task.confirm`), such a coordinator asks the successor
 * (`task.standby`). The successor grants a lease when it sees the coordinator alive and has not taken the task over:
 * it takes over none of that coordinator's tasks until the lease and a margin have passed (takeover.ts waits them
 * out), and the coordinator lets the attempt start only within the lease, counted from before it asked. A refusal,
 * or no answer, and the coordinator starts nothing and waits: the successor takes the task over, or stops seeing it
 * dead. A coordinator sure of itself (no stall, its successor not cut off in the last UNSURE_RECENT_MS) asks nothing.
 */
import type { Logger } from 'pino'
import { TaskStandby } from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import type { TasksComponents } from './components.ts'
import type { Coordinated } from './coordinated.ts'
import type { CutOffs } from './cut-offs.ts'
import { generationOf, supersededBy, type TaskRecords } from './records.ts'
import { successor } from './successor.ts'

/** How long a grant lets the coordinator start attempts (from before it asked). */
export const STANDBY_LEASE_MS = 2_000
/** The successor keeps its promise this much past the lease (the asker's clock, the answer's way back). */
export const STANDBY_MARGIN_MS = 1_000
/** A coordinator asks for this long after its event loop stalled, or after it saw the successor other than alive. */
export const UNSURE_RECENT_MS = 30_000
const STANDBY_TIMEOUT_MS = 3_000
const REASON_MAX_CHARS = 1024

export class Standby {
  /** until when (performance.now()) this node promised to take over none of a coordinator's tasks */
  private readonly promised = new Map<NodeId, number>()

  constructor (
    private readonly c: Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'nodeRegistry'>,
    private readonly records: Pick<TaskRecords, 'aspects'>,
    private readonly cutOffs: Pick<CutOffs, 'lately' | 'anyLately'>,
    private readonly log: Logger,
    private readonly nodeName: string
  ) {
    c.rpc.handle(TaskStandby, (req, ctx) => this.grant(req.id, req.generation, ctx.peer))
  }

  /** The successor's side: a lease, or why not. */
  grant (id: string, generation: number, asker: NodeId): { granted: boolean, leaseMs?: number, reason?: string } {
    const by = supersededBy(this.records.aspects(id), asker, generation)
    if (by !== undefined) return { granted: false, reason: `node ${this.nameOf(by)} took task ${id} over`.slice(0, REASON_MAX_CHARS) }
    const state = this.c.members.state(asker)
    if (state !== 'alive') return { granted: false, reason: `${this.nodeName} sees ${this.nameOf(asker)} ${state ?? 'unknown'}, and may take its tasks over`.slice(0, REASON_MAX_CHARS) }
    const until = performance.now() + STANDBY_LEASE_MS + STANDBY_MARGIN_MS
    if ((this.promised.get(asker) ?? 0) < until) this.promised.set(asker, until)
    return { granted: true, leaseMs: STANDBY_LEASE_MS }
  }

  /** How long (ms) this node must still wait before taking over `coordinator`'s tasks (0: it may now). */
  promisedFor (coordinator: NodeId): number {
    const until = this.promised.get(coordinator)
    if (until === undefined) return 0
    const left = until - performance.now()
    if (left <= 0) { this.promised.delete(coordinator); return 0 }
    return left
  }

  /**
   * The coordinator's side, right before it lets an attempt of `co` start: undefined when it may (sure of itself, or
   * granted a lease still running), else why not.
   */
  async hold (co: Pick<Coordinated, 'id' | 'coord'>): Promise<string | undefined> {
    // sure of itself, the common case, decided before the view is copied and hashed (this runs before every start)
    const stalled = performance.now() - (this.c.members.lastStallAt ?? -Infinity) < UNSURE_RECENT_MS
    if (!stalled && !this.cutOffs.anyLately(UNSURE_RECENT_MS)) return undefined
    const self = this.c.peerId
    const peer = successor(co.id, this.c.members.view().filter(v => v.state === 'alive' && v.id !== self).map(v => v.id))
    if (peer === undefined) return undefined
    if (!stalled && !this.cutOffs.lately(peer, UNSURE_RECENT_MS)) return undefined
    const askedAt = performance.now()
    try {
      const r = await this.c.rpc.request(peer, TaskStandby, { id: co.id, generation: generationOf(co.coord) }, { timeoutMs: STANDBY_TIMEOUT_MS })
      if (!r.granted) return `its would-be successor ${this.nameOf(peer)} did not confirm it may go on: ${r.reason ?? 'refused'}`
      const took = performance.now() - askedAt
      if (took > (r.leaseMs ?? 0)) return `the lease of its would-be successor ${this.nameOf(peer)} ran out before its answer came (${Math.round(took)} ms)`
      return undefined
    } catch (err) {
      this.log.debug({ err, task: co.id, peer }, 'the would-be successor did not answer task.standby')
      return `its would-be successor ${this.nameOf(peer)} could not confirm it may go on: ${toGridError(err).message}`
    }
  }

  private nameOf (node: NodeId): string {
    return this.c.nodeRegistry.get(node)?.value.name ?? node
  }
}
