/**
 * Taking over: when a task's coordinator is dead or gone, a deterministic successor among the live nodes (rendezvous
 * hashing on the task id) records itself as coordinator and resumes the task where the replicated record says it is:
 * finished (make the record final), running (re-attach to its executor), lost (retry), or never placed (place it).
 * A node that restarts resumes what it coordinated, once it has caught up with its peers' records: while it was down a
 * successor may have taken the task over and finished it, and its disk alone would have it run the task again. A cancel written into the record reaches the coordinator and the
 * executor wherever they are. It must not run tasks or decide placement.
 */
import type { Logger } from 'pino'
import type { NodeId } from '../interface/index.ts'
import type { Transition } from '../membership/index.ts'
import type { ChangeEvent } from '../state/index.ts'
import { CancelledError } from '../interface/index.ts'
import { delay, repeat } from '../util/index.ts'
import type { TasksComponents } from './components.ts'
import { REATTACH_DEAD_CONFIRM_MS, type Coordinator, type Outcome } from './coordinator.ts'
import { generationOf, isFinalStatus, statusOf, type TaskRecords } from './records.ts'
import { successor } from './successor.ts'
import type { Standby } from './standby.ts'
import type { TaskMetrics } from './task-metrics.ts'

/** A new coordinator waits this long for an executor's record still in flight before placing the task again. */
const TAKEOVER_GRACE_MS = 1_000
const ORPHAN_SWEEP_MS = 15_000
/**
 * A successor takes a task over only once its coordinator has stayed dead this long in its own view: a death declared
 * by another node can be stale (it suspected the coordinator during a partition that healed since, or while the
 * coordinator was stopped), and taking over on it made two coordinators drive one task.
 */
export const TAKEOVER_DEAD_CONFIRM_MS = REATTACH_DEAD_CONFIRM_MS
/**
 * A restarted node waits at most this long for a live peer to catch up from before it resumes what it coordinated
 * (alone, it resumes then); and it catches up from at most RESTART_CATCH_UP_PEERS of them.
 */
export const RESTART_CATCH_UP_MS = 10_000
const RESTART_CATCH_UP_PEERS = 2
const RESTART_POLL_MS = 100

export class Takeover {
  private sweep?: { stop: () => void }
  private readonly confirming = new Map<NodeId, NodeJS.Timeout>()

  constructor (
    private readonly c: TasksComponents,
    private readonly coordinator: Coordinator,
    private readonly records: TaskRecords,
    private readonly m: TaskMetrics,
    private readonly log: Logger,
    /** the leases this node granted coordinators as their would-be successor: no takeover before they pass */
    private readonly standby: Pick<Standby, 'promisedFor'>
  ) {}

  start (): void {
    const mine = this.coordinatedHere()
    if (mine.length > 0) void this.resumeAfterRestart(mine).catch(err => { this.log.error({ err }, 'resuming tasks after a restart failed') })
    this.c.members.on('member:state', this.onMember)
    this.c.store.on('change', this.onChange)
    this.sweep = repeat(() => { this.adoptOrphans() }, ORPHAN_SWEEP_MS, err => { this.log.error({ err }, 'orphan sweep failed') }, { jitter: 0.3 })
  }

  stop (): void {
    this.sweep?.stop()
    this.c.members.off('member:state', this.onMember)
    this.c.store.off('change', this.onChange)
    for (const t of this.confirming.values()) clearTimeout(t)
    this.confirming.clear()
  }

  /** The unfinished tasks whose record names this node as coordinator. */
  private coordinatedHere (): string[] {
    const self = this.c.peerId
    return [...this.records.all()].filter(([, a]) => a.coord?.aspect.coordinator === self && !isFinalStatus(statusOf(a))).map(([id]) => id)
  }

  /**
   * After a restart: catches up from live peers first (a successor may have taken over, and finished, what this node
   * coordinated before it died), then resumes only what still names this node as coordinator and is not over.
   */
  private async resumeAfterRestart (ids: string[]): Promise<void> {
    const self = this.c.peerId
    const others = [...this.c.nodeRegistry.list().keys()].filter(id => id !== self)
    if (others.length > 0) {
      const deadline = Date.now() + RESTART_CATCH_UP_MS
      let alive: NodeId[] = []
      while (this.coordinator.running && Date.now() < deadline) {
        alive = this.c.members.view().filter(v => v.id !== self && v.state === 'alive').map(v => v.id)
        if (alive.length > 0) break
        await delay(RESTART_POLL_MS)
      }
      for (const peer of alive.slice(0, RESTART_CATCH_UP_PEERS)) {
        try { await this.c.store.syncFrom(peer) } catch (err) { this.log.debug({ err, peer }, 'catching up after a restart failed') }
      }
    }
    const still = new Set(this.coordinatedHere())
    for (const id of ids) {
      if (still.has(id)) void this.resume(id)
      else this.log.info({ task: id }, 'a task this node coordinated before its restart was taken over or ended meanwhile')
    }
  }

  /** Resumes coordinating a task this node is (now) the coordinator of. */
  async resume (id: string): Promise<void> {
    const co0 = this.coordinator
    if (co0.coordinated.has(id) || !co0.running) return
    const a = this.records.aspects(id)
    if (a.coord === undefined || isFinalStatus(statusOf(a))) return
    const co = co0.track(id, { ...a.coord.aspect, coordinator: this.c.peerId })
    co.cancelRequested = a.cancelRequested
    let e = a.exec?.aspect
    if (e === undefined) {
      // the executor's record may still be on its way
      await delay(TAKEOVER_GRACE_MS)
      e = this.records.aspects(id).exec?.aspect
    }
    let pending: Outcome | undefined
    if (e !== undefined && e.lost !== true && isFinalStatus(e.status)) pending = co0.classify(co, e)
    else if (e !== undefined && e.lost === true) pending = { kind: 'retry', reason: e.error ?? 'executor lost the task' }
    else if (e !== undefined) {
      co.executor = e.node
      co.placed = true
      pending = await co0.reattach(co, e.node)
    }
    if (pending?.kind === 'done') {
      // already over: make sure the record says so, then stop
      if (!isFinalStatus(statusOf(this.records.aspects(id)))) co0.complete(co, pending.result)
      co0.coordinated.delete(id)
      return
    }
    await co0.drive(co, undefined, pending)
  }

  private readonly onMember = (t: Transition): void => {
    if (t.to === 'left') {
      try { this.adoptOrphans(t.id) } catch (err) { this.log.error({ err, peer: t.id }, 'taking over tasks failed') }
      return
    }
    if (t.to !== 'dead' || this.confirming.has(t.id)) return
    // a death is acted on once it has held for a while here (it may be refuted a moment later), and once the lease
    // this node granted that coordinator has passed (standby.ts: it may have started an attempt just before)
    this.confirmDeath(t.id, TAKEOVER_DEAD_CONFIRM_MS)
  }

  private confirmDeath (peer: NodeId, ms: number): void {
    const armedAt = performance.now()
    const timer = setTimeout(() => {
      this.confirming.delete(peer)
      // this node stalled meanwhile (SIGSTOP, a starved CPU): its view is as old as the stall, and the coordinator may
      // be back; it waits again, so the heartbeats that came in while it was stopped are read first
      if ((this.c.members.lastStallAt ?? -Infinity) >= armedAt) { this.confirmDeath(peer, TAKEOVER_DEAD_CONFIRM_MS); return }
      const s = this.c.members.state(peer)
      if (s !== 'dead' && s !== 'left') { this.log.info({ peer, state: s }, 'a coordinator declared dead came back before its tasks were taken over'); return }
      const promised = this.standby.promisedFor(peer)
      if (promised > 0) { this.confirmDeath(peer, promised); return }
      try { this.adoptOrphans(peer) } catch (err) { this.log.error({ err, peer }, 'taking over tasks failed') }
    }, ms)
    timer.unref()
    this.confirming.set(peer, timer)
  }

  /** Takes over the unfinished tasks whose coordinator is dead or gone, where this node is their successor. */
  private adoptOrphans (deadNode?: NodeId): void {
    if (!this.coordinator.running) return
    const self = this.c.peerId
    const alive = this.c.members.view().filter(v => v.state === 'alive').map(v => v.id)
    const gone = (id: NodeId): boolean => {
      if (id === deadNode) return true
      const s = this.c.members.state(id)
      return s === 'dead' || s === 'left' || (s === undefined && id !== self && this.c.nodeRegistry.get(id) === undefined)
    }
    for (const [id, a] of this.records.all()) {
      const coord = a.coord?.aspect
      if (coord === undefined || coord.coordinator === self || this.coordinator.coordinated.has(id)) continue
      if (!gone(coord.coordinator) || isFinalStatus(statusOf(a))) continue
      // this node let that coordinator go on a moment ago (standby.ts): its lease has not passed
      if (this.standby.promisedFor(coord.coordinator) > 0) continue
      if (successor(id, alive.filter(n => n !== coord.coordinator)) !== self) continue
      // a later generation: the previous coordinator, should it come back, sees it and stops driving the task
      this.records.writeCoord(id, { ...coord, coordinator: self, generation: generationOf(coord) + 1 })
      this.m.failedOver.inc()
      this.log.warn({ task: id, previous: coord.coordinator }, 'took over the coordination of a task whose coordinator is gone')
      void this.resume(id)
    }
  }

  /** A cancel mark written elsewhere: wake the task's coordination here, and stop it if it runs here. */
  private readonly onChange = (e: ChangeEvent): void => {
    if (e.collection !== 'tasks' || e.local) return
    const id = e.key
    const co = this.coordinator.coordinated.get(id)
    const running = this.c.executor.get(id)
    if (co === undefined && (running === undefined || isFinalStatus(running.state.status))) return
    const a = this.records.aspects(id)
    // another node took it over from this one: stop waiting on the executor's stream, the drive loop hands it over
    if (co !== undefined && this.coordinator.supersededBy(co) !== undefined && !co.abort.signal.aborted) {
      co.abort.abort(new CancelledError('another node took the task over'))
      co.waker?.()
    }
    if (!a.cancelRequested) return
    if (co !== undefined && !co.cancelRequested) { co.cancelRequested = true; co.waker?.() }
    if (running !== undefined && !isFinalStatus(running.state.status)) this.c.executor.cancel(id)
  }
}
