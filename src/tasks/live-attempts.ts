/**
 * The attempts a coordinator still waits on (issue 13): which attempt, on which node, an executor may start (`live`),
 * watching one again when its stream breaks while its executor lives (`task.attach`), and the answer to an executor's
 * `task.confirm` (`notCurrent`). A yes holds for CONFIRM_LEASE_MS (start-fence.ts): the executor starts only within
 * that lease of asking, and an attempt given up after a yes is run elsewhere only once the lease has passed. Split
 * out of coordinator.ts, which drives the attempts; this file decides when one is over.
 */
import type { Logger } from 'pino'
import { TaskAttach, TaskCancel, type ExecAspect, type TaskEvent } from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import { delay } from '../util/index.ts'
import type { TasksComponents, TasksInit } from './components.ts'
import type { Coordinated, Outcome } from './coordinated.ts'
import type { DeathWatch } from './death-watch.ts'
import { generationOf, supersededBy, type TaskRecords } from './records.ts'
import type { Standby } from './standby.ts'
import { CONFIRM_LEASE_MS } from './start-fence.ts'

/** How long a broken stream's executor may stay suspect before the attempt counts as lost. */
const REATTACH_DEADLINE_MS = 30_000
/**
 * How long an executor must stay dead in this node's view before re-attaching gives up and the task runs again: a
 * death declared by another node can be stale (it suspected the executor during a partition that has healed since)
 * and be refuted a moment later; retrying at once ran the task a second time beside the run that was ending fine.
 */
export const REATTACH_DEAD_CONFIRM_MS = 1_500
const REATTACH_POLL_MS = 200
const UNSURE_CANCEL_TIMEOUT_MS = 5_000

/** What watching an attempt needs of the coordinator: how a result ends the attempt, where its events go. */
export interface AttemptSink {
  classify: (co: Coordinated, result: ExecAspect) => Outcome
  forward: (co: Coordinated, node: NodeId, ev: TaskEvent) => boolean
  runDeadline: (co: Coordinated) => number
}

export class LiveAttempts {
  constructor (
    private readonly c: Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'nodeRegistry'>,
    private readonly init: Pick<TasksInit, 'nodeName'>,
    private readonly records: Pick<TaskRecords, 'aspects' | 'writeCoord'>,
    private readonly coordinated: ReadonlyMap<string, Coordinated>,
    private readonly deaths: DeathWatch,
    private readonly standby: Pick<Standby, 'hold'>,
    private readonly sink: AttemptSink,
    private readonly running: () => boolean,
    private readonly log: Logger
  ) {}

  /**
   * Runs `body` with attempt `co.coord.attempt` on `node` as the live one (an executor that asks may start it; the
   * same attempt re-attached to stays live). Once it is over, nobody hears yes for it, and the result comes back
   * (unless it is done) only after the lease of the last yes has passed: an executor that heard it has started by then
   * or never will.
   */
  async during (co: Coordinated, node: NodeId, body: () => Promise<Outcome>): Promise<Outcome> {
    const live = co.live?.node === node && co.live.attempt === co.coord.attempt ? co.live : { attempt: co.coord.attempt, node }
    co.live = live
    let outcome: Outcome | undefined
    try {
      outcome = await body()
      return outcome
    } finally {
      if (co.live === live) {
        co.live = undefined
        const left = (live.confirmedAt ?? -Infinity) + CONFIRM_LEASE_MS - performance.now()
        if (left > 0 && outcome?.kind !== 'done') await delay(left)
      }
    }
  }

  /** The stream to a running task broke: watch it again if its executor lives, else the attempt is lost. */
  async reattach (co: Coordinated, node: NodeId): Promise<Outcome> {
    return await this.during(co, node, async () => await this.watchAgain(co, node))
  }

  private async watchAgain (co: Coordinated, node: NodeId): Promise<Outcome> {
    const deadline = Date.now() + REATTACH_DEADLINE_MS
    let deadSince: number | undefined
    while (this.running() && Date.now() < deadline) {
      if (this.supersededBy(co) !== undefined) return { kind: 'retry', reason: 'another node took the task over' }
      const state = this.c.members.state(node)
      if (state === 'dead') deadSince ??= Date.now()
      else deadSince = undefined
      if (state === 'left' || (deadSince !== undefined && Date.now() - deadSince >= REATTACH_DEAD_CONFIRM_MS)) return { kind: 'retry', reason: `node ${this.nameOf(node)} ${state === 'dead' ? 'died' : 'left'} while the task ran` }
      if (state === 'alive') {
        const dead = this.deaths.untilDead(node)
        try {
          const result = await this.c.rpc.request(node, TaskAttach, { id: co.id, attempt: co.coord.attempt, from: co.offset }, {
            timeoutMs: this.sink.runDeadline(co),
            signal: AbortSignal.any([co.abort.signal, dead.signal]),
            onEvent: ev => { this.sink.forward(co, node, ev) }
          })
          return this.sink.classify(co, result)
        } catch (err) {
          const e = toGridError(err)
          if (e.code === 'NOT_FOUND') {
            // it may have been reading the offer late: from now on its question hears no, and a start a yes already
            // let through (the question crossed this answer) shows once that yes's lease has passed: ask once more
            const live = co.live
            if (live !== undefined && live.givingUp !== true) {
              live.givingUp = true
              if (live.confirmedAt !== undefined) {
                const left = live.confirmedAt + CONFIRM_LEASE_MS - performance.now()
                if (left > 0) await delay(left)
                continue
              }
            }
            return { kind: 'retry', reason: `node ${this.nameOf(node)} lost the task` }
          }
          // stopped by the death watch: the loop sees the death and decides
          if (e.code === 'CANCELLED' && !dead.signal.aborted) return { kind: 'retry', reason: 'coordinator stopping' }
        } finally {
          dead.done()
        }
      }
      await delay(REATTACH_POLL_MS)
    }
    return { kind: 'retry', reason: `node ${this.nameOf(node)} stopped answering while the task ran` }
  }

  /**
   * `task.confirm` (start-fence.ts): why attempt `attempt` of task `id` on `executor` must not start (this node does
   * not drive it, or gave that attempt up: it ran it elsewhere, or is about to; or it may itself have been taken over:
   * standby.ts), or undefined when it is current. A yes is remembered: giving the attempt up waits out its lease.
   */
  async notCurrent (id: string, attempt: number, executor: NodeId): Promise<string | undefined> {
    const why = this.notCurrentNow(id, attempt, executor)
    if (why !== undefined) return why
    const co = this.coordinated.get(id) as Coordinated
    const fenced = await this.standby.hold(co)
    if (fenced !== undefined) return `its coordinator ${this.init.nodeName} cannot vouch for it: ${fenced}`
    // the answer took a while: the attempt may have been given up meanwhile
    const after = this.notCurrentNow(id, attempt, executor)
    if (after !== undefined) return after
    const live = co.live as NonNullable<Coordinated['live']>
    live.confirmedAt = performance.now()
    return undefined
  }

  private notCurrentNow (id: string, attempt: number, executor: NodeId): string | undefined {
    const me = this.init.nodeName
    const co = this.coordinated.get(id)
    if (co === undefined || !this.running()) return `${me} does not coordinate task ${id} (any more)`
    const by = this.supersededBy(co)
    if (by !== undefined) return `node ${this.nameOf(by)} took task ${id} over from ${me}`
    if (co.coord.attempt !== attempt) return `its coordinator ${me} is at attempt ${co.coord.attempt} of it`
    if (co.live?.attempt !== attempt || co.live.node !== executor || co.live.givingUp === true) return `its coordinator ${me} gave attempt ${attempt} up`
    // seen dead here: the attempt is about to be given up (the re-attach deadline), and run elsewhere
    const state = this.c.members.state(executor)
    if (state === 'dead' || state === 'left') return `its coordinator ${me} sees ${this.nameOf(executor)} ${state}`
    return undefined
  }

  /**
   * The offer to `node` failed on the way and may have been admitted there: that node is asked to drop the task, and
   * what follows is a new attempt (spending no retry, as a move does), so a copy it runs never shares one's record.
   */
  abandon (co: Coordinated, node: NodeId, reason: string): void {
    void this.c.rpc.request(node, TaskCancel, { id: co.id, by: this.c.peerId }, { timeoutMs: UNSURE_CANCEL_TIMEOUT_MS }).catch(() => {})
    co.moves = (co.moves ?? 0) + 1
    co.coord = { ...co.coord, attempt: co.coord.attempt + 1 }
    this.records.writeCoord(co.id, co.coord)
    this.log.info({ task: co.id, peer: node, attempt: co.coord.attempt, reason }, 'offer failed on the way: the next one is a new attempt')
  }

  /** The node that took this task over from this one (the records name it with a later generation), if any. */
  supersededBy (co: Coordinated): NodeId | undefined {
    return supersededBy(this.records.aspects(co.id), this.c.peerId, generationOf(co.coord))
  }

  private nameOf (node: NodeId): string {
    return this.c.nodeRegistry.get(node)?.value.name ?? node
  }
}
