/**
 * Fencing of starts (issue 13): an executor starts an attempt only while it is its coordinator's current one. An
 * attempt may have been given up by its coordinator before the executor starts it (the coordinator saw the executor
 * dead, or its offer's stream broke before the answer, and ran it elsewhere): one that waited in this node's queue;
 * one taken before or just after a stall of this node's event loop (SIGSTOP, a starved CPU); one whose offer was read
 * late (sent more than OFFER_FRESH_MS ago: TCP delivered it once a partition healed); one from a coordinator this
 * node saw suspect or dead lately. Before such a start the executor asks the coordinator (`task.confirm`), and starts
 * it only on a yes; a no, or no answer, ends it lost without a run. The coordinator answers from what it drives now
 * (coordinator.ts `notCurrent`). Any other offer starts at once: its coordinator is waiting for its answer.
 */
import type { Logger } from 'pino'
import { TaskConfirm } from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import type { ExecTask, StartGate } from '../executor/index.ts'
import type { TasksComponents } from './components.ts'
import { catchUpWithSuccessor } from './handover.ts'
import { supersededBy, type TaskRecords } from './records.ts'

/** The event loop held this long past its tick (SIGSTOP, a starved CPU) counts as a stall. */
export const STALL_MS = 1_000
const STALL_TICK_MS = 250
/** Stalls this long or longer are logged at info (shorter ones at debug). */
const STALL_INFO_MS = 3_000
/** An attempt admitted up to this long after a stall asks too (offers read from the socket once it woke). */
export const STALL_RECENT_MS = 5_000
/** How long an executor waits for its coordinator's answer before it gives the attempt up (it ends lost). */
export const CONFIRM_TIMEOUT_MS = 5_000
const REASON_MAX_CHARS = 1024
/** An offer read later than this after it was sent (by the coordinator's clock) asks before it starts. */
export const OFFER_FRESH_MS = 2_000
/** An offer from a coordinator this node saw suspect or dead less than this long ago asks before it starts. */
export const CUT_OFF_RECENT_MS = 30_000
const CUT_OFF_MAX_PEERS = 4096

/** The coordinator's answer: why attempt `attempt` of task `id` on `executor` is not current, or undefined if it is. */
export type NotCurrent = (id: string, attempt: number, executor: NodeId) => string | undefined

export class StartFence {
  private lastTick = performance.now()
  /** when the latest stall ended (performance.now()) */
  private lastStall = -Infinity
  private timer?: NodeJS.Timeout
  /** when each peer was last seen other than alive here (performance.now()); the oldest go first when too many */
  private readonly cutOff = new Map<NodeId, number>()
  private readonly onMember = (t: { id: NodeId, from: string | null, to: string }): void => {
    if (t.to === 'alive' && (t.from === null || t.from === 'alive')) return
    this.cutOff.delete(t.id)
    this.cutOff.set(t.id, performance.now())
    if (this.cutOff.size > CUT_OFF_MAX_PEERS) this.cutOff.delete(this.cutOff.keys().next().value as NodeId)
  }

  constructor (
    private readonly c: Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'store' | 'nodeRegistry'>,
    private readonly records: Pick<TaskRecords, 'aspects'>,
    private readonly log: Logger,
    private readonly notCurrent: NotCurrent
  ) {
    c.rpc.handle(TaskConfirm, (req, ctx) => {
      const why = this.notCurrent(req.id, req.attempt, ctx.peer)
      return why === undefined ? { current: true } : { current: false, reason: why.slice(0, REASON_MAX_CHARS) }
    })
  }

  start (): void {
    this.c.members.on('member:state', this.onMember)
    this.lastTick = performance.now()
    this.timer = setInterval(() => {
      const now = performance.now()
      if (now - this.lastTick > STALL_MS) {
        this.lastStall = now
        const stalledMs = Math.round(now - this.lastTick - STALL_TICK_MS)
        // a loaded machine stalls for a second often; a stopped process (SIGSTOP) for longer
        this.log[stalledMs >= STALL_INFO_MS ? 'info' : 'debug']({ stalledMs }, 'the event loop stalled: attempts taken before it ask their coordinator before they start')
      }
      this.lastTick = now
    }, STALL_TICK_MS)
    this.timer.unref()
  }

  stop (): void {
    this.c.members.off('member:state', this.onMember)
    clearInterval(this.timer)
  }

  /** The executor's start gate: undefined to start now, else the answer to wait for (undefined: start; else why not). */
  readonly gate: StartGate = (task, how) => {
    const now = performance.now()
    // a stall the ticker has not seen yet (the loop just woke, and I/O came before the timers)
    const stalled = now - this.lastTick > STALL_MS || this.lastStall >= how.admittedAt - STALL_RECENT_MS
    const coordinator = this.coordinatorOf(task)
    if (coordinator === this.c.peerId) return stalled ? this.confirmHere(task) : undefined
    const late = task.sentAt !== undefined && Date.now() - task.sentAt > OFFER_FRESH_MS
    const seen = this.cutOff.get(coordinator)
    const cutOff = this.c.members.state(coordinator) !== 'alive' || (seen !== undefined && now - seen < CUT_OFF_RECENT_MS)
    if (!how.waited && !stalled && !late && !cutOff) return undefined
    return this.confirmWith(task, coordinator)
  }

  /** The coordinator the records name, when it took the task over from the offer's; else the offer's. */
  private coordinatorOf (task: ExecTask): NodeId {
    return supersededBy(this.records.aspects(task.id), task.coordinator, 0) ?? task.coordinator
  }

  /** This node coordinates it too, and stalled: catch up with the would-be successor, then ask the coordinator here. */
  private async confirmHere (task: ExecTask): Promise<string | undefined> {
    await catchUpWithSuccessor(this.c, this.log, task.id)
    return this.notCurrent(task.id, task.attempt, this.c.peerId)
  }

  private async confirmWith (task: ExecTask, coordinator: NodeId): Promise<string | undefined> {
    try {
      const r = await this.c.rpc.request(coordinator, TaskConfirm, { id: task.id, attempt: task.attempt }, { timeoutMs: CONFIRM_TIMEOUT_MS })
      return r.current ? undefined : (r.reason ?? `its coordinator ${this.nameOf(coordinator)} gave it up`)
    } catch (err) {
      return `its coordinator ${this.nameOf(coordinator)} could not confirm it is still current: ${toGridError(err).message}`
    }
  }

  private nameOf (node: NodeId): string {
    return this.c.nodeRegistry.get(node)?.value.name ?? node
  }
}
