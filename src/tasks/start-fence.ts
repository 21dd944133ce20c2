/**
 * Fencing of starts (issue 13): an executor starts an attempt only while it is its coordinator's current one. An
 * attempt may have been given up by its coordinator before the executor starts it (the coordinator saw the executor
 * dead, or its offer's stream broke before the answer, and ran it elsewhere): one that waited in this node's queue;
 * one taken before or just after a stall of this node's event loop (SIGSTOP, a starved CPU); one whose offer was read
 * late (sent more than OFFER_FRESH_MS ago: TCP delivered it once a partition healed); one from a coordinator this
 * node saw suspect or dead lately. Before such a start the executor asks the coordinator (`task.confirm`), and starts
 * it only on a yes that came within CONFIRM_LEASE_MS of the question (else it asks again); a no, or no answer, ends it
 * lost without a run. The coordinator answers from what it drives now (live-attempts.ts `notCurrent`), and gives the
 * attempt up only once that lease has passed. Any other offer starts at once: its coordinator is waiting for its
 * answer. Stalls are LocalHealth's (src/membership/local-health.ts `lastStallAt`): one sampler of the event loop.
 */
import type { Logger } from 'pino'
import { TaskConfirm } from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import type { ExecTask, StartGate } from '../executor/index.ts'
import type { TasksComponents } from './components.ts'
import { catchUpWithSuccessor } from './handover.ts'
import type { CutOffs } from './cut-offs.ts'
import { supersededBy, type TaskRecords } from './records.ts'

/** An attempt admitted up to this long after a stall of this node's event loop (local-health.ts) asks too. */
export const STALL_RECENT_MS = 5_000
/** How long an executor waits for its coordinator's answer before it gives the attempt up (it ends lost). */
export const CONFIRM_TIMEOUT_MS = 5_000
/**
 * A yes holds this long from the question: an executor whose answer came later (its loop stalled, a starved CPU)
 * asks again, CONFIRM_ASKS times at most; a coordinator gives an attempt up only once its last yes is this old.
 */
export const CONFIRM_LEASE_MS = 1_000
export const CONFIRM_ASKS = 3
const REASON_MAX_CHARS = 1024
/** An offer read later than this after it was sent (by the coordinator's clock) asks before it starts. */
export const OFFER_FRESH_MS = 2_000
/** An offer from a coordinator this node saw suspect or dead less than this long ago asks before it starts. */
export const CUT_OFF_RECENT_MS = 30_000

/** The coordinator's answer: why attempt `attempt` of task `id` on `executor` is not current, or undefined if it is. */
export type NotCurrent = (id: string, attempt: number, executor: NodeId) => Promise<string | undefined> | string | undefined

export class StartFence {
  constructor (
    private readonly c: Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'store' | 'nodeRegistry'>,
    private readonly records: Pick<TaskRecords, 'aspects'>,
    private readonly cutOffs: Pick<CutOffs, 'lately'>,
    private readonly log: Logger,
    private readonly notCurrent: NotCurrent
  ) {
    c.rpc.handle(TaskConfirm, async (req, ctx) => {
      const why = await this.notCurrent(req.id, req.attempt, ctx.peer)
      return why === undefined ? { current: true } : { current: false, reason: why.slice(0, REASON_MAX_CHARS) }
    })
  }

  /** The executor's start gate: undefined to start now, else the answer to wait for (undefined: start; else why not). */
  readonly gate: StartGate = (task, how) => {
    // a stall under way or just ended counts at once (local-health.ts: its assessment is overdue)
    const stalled = (this.c.members.lastStallAt ?? -Infinity) >= how.admittedAt - STALL_RECENT_MS
    const coordinator = this.coordinatorOf(task)
    // the coordinator here checks itself: after a stall, or for a start that waited (its standby lease, standby.ts)
    if (coordinator === this.c.peerId) return stalled || how.waited ? this.confirmHere(task, stalled) : undefined
    const late = task.sentAt !== undefined && Date.now() - task.sentAt > OFFER_FRESH_MS
    const cutOff = this.cutOffs.lately(coordinator, CUT_OFF_RECENT_MS)
    if (!how.waited && !stalled && !late && !cutOff) return undefined
    return this.confirmWith(task, coordinator)
  }

  /** The coordinator the records name, when it took the task over from the offer's; else the offer's. */
  private coordinatorOf (task: ExecTask): NodeId {
    return supersededBy(this.records.aspects(task.id), task.coordinator, 0) ?? task.coordinator
  }

  /** This node coordinates it too, and stalled: catch up with the would-be successor, then ask the coordinator here. */
  private async confirmHere (task: ExecTask, stalled: boolean): Promise<string | undefined> {
    if (stalled) await catchUpWithSuccessor(this.c, this.log, task.id)
    return await this.leased(async () => await this.notCurrent(task.id, task.attempt, this.c.peerId))
  }

  private async confirmWith (task: ExecTask, coordinator: NodeId): Promise<string | undefined> {
    return await this.leased(async () => {
      try {
        const r = await this.c.rpc.request(coordinator, TaskConfirm, { id: task.id, attempt: task.attempt }, { timeoutMs: CONFIRM_TIMEOUT_MS })
        return r.current ? undefined : (r.reason ?? `its coordinator ${this.nameOf(coordinator)} gave it up`)
      } catch (err) {
        return `its coordinator ${this.nameOf(coordinator)} could not confirm it is still current: ${toGridError(err).message}`
      }
    })
  }

  /** Asks until a yes comes within CONFIRM_LEASE_MS of its question (CONFIRM_ASKS times at most); a no ends it. */
  private async leased (ask: () => Promise<string | undefined>): Promise<string | undefined> {
    let tookMs = 0
    for (let i = 0; i < CONFIRM_ASKS; i++) {
      const askedAt = performance.now()
      const why = await ask()
      if (why !== undefined) return why
      tookMs = performance.now() - askedAt
      if (tookMs <= CONFIRM_LEASE_MS) return undefined
      this.log.info({ tookMs: Math.round(tookMs), leaseMs: CONFIRM_LEASE_MS }, 'the yes to a start came after its lease: asking again')
    }
    return `its coordinator's yes came after its lease of ${CONFIRM_LEASE_MS} ms ${CONFIRM_ASKS} times (the last after ${Math.round(tookMs)} ms)`
  }

  private nameOf (node: NodeId): string {
    return this.c.nodeRegistry.get(node)?.value.name ?? node
  }
}
