/**
 * Coordination: the origin's (or its successor's) side of one task. It asks routing for ranked candidates, offers
 * the task to the first, then the next if refused; streams the output to the client; re-attaches when the stream
 * breaks while the executor lives; retries with backoff when the executor dies (or the program fails and asked for
 * retries); moves a session to the node that accepted its task when its owner could not; and gives the final
 * verdict when the attempts run out. It must not run processes itself (the executor does) nor decide placement
 * (routing does).
 */
import type { Logger } from 'pino'
import {
  TASK_REASON_MAX_CHARS, TaskCancel, TaskRun,
  type CoordAspect, type ExecAspect, type TaskEvent, type TaskOffer, type TaskSpec
} from '../../proto/index.ts'
import { CancelledError, toGridError, type NodeId } from '../interface/index.ts'
import type { Watcher } from '../executor/index.ts'
import { exitCodeOf } from '../executor/index.ts'
import type { RouteResult } from '../routing/index.ts'
import { backoffMs } from '../util/index.ts'
import type { TasksComponents, TasksInit } from './components.ts'
import { DispatchLedger } from './dispatch-ledger.ts'
import { admitOffer, refuseSuperseded } from './admission.ts'
import type { ClientEvent, Coordinated, Outcome } from './coordinated.ts'
import { TaskRecords, generationOf, isFinalStatus, statusOf, storedSpec } from './records.ts'
import type { TaskMetrics } from './task-metrics.ts'
import { fetchThenEnd, readySynced } from './sync-offer.ts'
import { catchUpWithSuccessor, followRecordsToEnd } from './handover.ts'
import { DeathWatch } from './death-watch.ts'
import { LiveAttempts, REATTACH_DEAD_CONFIRM_MS } from './live-attempts.ts'
import type { Standby } from './standby.ts'
import { TaskRouter } from './task-router.ts'
import { rehomeIfMoved } from './session-rehome.ts'

export type { ClientEvent, Coordinated, Outcome } from './coordinated.ts'
export { REATTACH_DEAD_CONFIRM_MS } from './live-attempts.ts'

const RETRY_BASE_MS = 100
const RETRY_CAP_MS = 30_000
/** No alive node can take the task now: it stays pending and is routed again, backing off up to 10 s... */
const ROUTE_RETRY_BASE_MS = 1_000
const ROUTE_RETRY_CAP_MS = 10_000
/** ...for at most this long; attempts count runs, so waiting for a node spends none of them. */
const ROUTE_WAIT_LIMIT_MS = 120_000
const REFUSED_RETRY_CAP_MS = 5_000
/** A coordinator its would-be successor did not let go on asks again after this long, backing off (standby.ts). */
const STANDBY_RETRY_BASE_MS = 250
const STANDBY_RETRY_CAP_MS = 2_000
/**
 * An offer that failed on the way (the stream broke, the deadline passed) before the executor said it admitted it may
 * have been admitted all the same: the coordinator re-attaches to it (while that node lives) and gives it up only
 * when the node says it has none of it, or has been dead for REATTACH_DEAD_CONFIRM_MS; then that node is asked to
 * drop the task, and the next candidate gets a new attempt (spending no retry), so that two executions never share an
 * attempt's record. An offer read after that (delivered late) asks before it starts, and hears no (start-fence.ts).
 */
const UNSURE_OFFER_CODES = new Set(['PEER_UNREACHABLE', 'TIMEOUT'])
/** A run's RPC stream stays open this long past the task's own timeout (TERM, grace, KILL, last output). */
const RUN_DEADLINE_MARGIN_MS = 60_000
const MAX_TIMER_MS = 2_147_483_647
/** The coordinator writes the final record itself if the executor's has not arrived this long after the answer. */
const FINAL_RECORD_GRACE_MS = 3_000

/**
 * What a task's error says when a node that took it over could not place it again without the env values only its
 * origin held: whoever submitted it (a workflow's driver, which holds GRID_NEEDS itself) may submit it again.
 */
export const ENV_LOST_MARK = 'was held only by its origin'
export function lostItsEnv (error: string | null | undefined): boolean {
  return error?.includes(ENV_LOST_MARK) === true
}

export function runDeadline (spec: TaskSpec): number {
  return spec.timeoutMs === undefined ? MAX_TIMER_MS : Math.min(MAX_TIMER_MS, spec.timeoutMs + RUN_DEADLINE_MARGIN_MS)
}

export class Coordinator {
  readonly coordinated = new Map<string, Coordinated>()
  readonly ledger = new DispatchLedger()
  running = false
  private readonly router: TaskRouter
  /** stops a request to an executor once it has been dead a while (a death heard in a notice drops no stream) */
  readonly deaths: DeathWatch
  /** the attempts it waits on: re-attaching, the answer to `task.confirm` (live-attempts.ts) */
  readonly live: LiveAttempts

  constructor (
    private readonly c: TasksComponents,
    private readonly init: TasksInit,
    private readonly records: TaskRecords,
    private readonly m: TaskMetrics,
    private readonly log: Logger,
    /** asks the would-be successor before an attempt starts, when this node may have been taken for dead */
    private readonly standby: Pick<Standby, 'hold'>
  ) {
    this.router = new TaskRouter(c, init, this.ledger, m)
    this.deaths = new DeathWatch(id => this.c.members.state(id), id => this.nameOf(id), REATTACH_DEAD_CONFIRM_MS)
    this.live = new LiveAttempts(c, init, records, this.coordinated, this.deaths, standby, {
      classify: (co, result) => this.classify(co, result),
      forward: (co, node, ev) => this.forward(co, node, ev),
      runDeadline: co => runDeadline(co.spec)
    }, () => this.running, log)
  }

  /**
   * Starts keeping a task's coordination. The spec's env values (a submission's) stay here, in memory, and go out
   * with each offer; a record holds their names only, so a task taken over from one has none (`envLost`).
   */
  track (id: string, coord: CoordAspect): Coordinated {
    const { env, envNames, ...rest } = coord.spec
    const spec: TaskSpec = { ...rest, env: env ?? {} }
    const stored = storedSpec(coord.spec)
    const co: Coordinated = { id, spec, coord: { ...coord, spec: stored }, placed: false, cancelRequested: false, offset: 0, submittedAt: Date.now(), abort: new AbortController() }
    if (env === undefined && envNames !== undefined && envNames.length > 0) co.envLost = envNames
    this.coordinated.set(id, co)
    return co
  }

  /** Why a task taken over without its env values cannot be placed again, or undefined when it can. */
  private envLostReason (co: Coordinated): string | undefined {
    if (co.envLost === undefined) return undefined
    const names = co.envLost.join(', ')
    const why = co.coord.origin === this.c.peerId ? 'which restarted' : 'which died'
    return `its environment (${names.length > 1024 ? `${names.slice(0, 1024)}...` : names}) ${ENV_LOST_MARK} ${co.coord.originName}, ${why}; resubmit it`
  }

  route (spec: TaskSpec, failedOn?: ReadonlySet<NodeId>): RouteResult {
    return this.router.route(spec, failedOn)
  }

  /** Runs attempts until the task ends or the attempts run out. `first` is the route the submission computed. */
  async drive (co: Coordinated, first?: RouteResult, pending?: Outcome): Promise<void> {
    let routed = first
    let refusals = 0
    let misses = 0
    let holds = 0
    let waitingSince = 0
    try {
      for (;;) {
        if (!this.running) return
        if (this.handedOver(co)) return
        let outcome = pending
        pending = undefined
        if (outcome === undefined) {
          if (co.cancelRequested) { this.finalize(co, 'cancelled', 'cancelled before it started'); return }
          const envLost = this.envLostReason(co)
          if (envLost !== undefined) { this.finalize(co, 'failed', `cannot place it: ${envLost}`); return }
          routed ??= this.route(co.spec, co.failedOn)
          if (!routed.ok) {
            // the nodes that could run it are dead, suspect or draining right now (a failover while another is
            // briefly suspect): the task stays pending and is routed again; it fails only after waiting a long while
            const reason = `no node can run it now: ${routed.reason}`
            routed = undefined
            if (misses === 0) waitingSince = Date.now()
            if (Date.now() - waitingSince >= ROUTE_WAIT_LIMIT_MS) {
              this.finalize(co, 'failed', `${reason} (waited ${Math.round((Date.now() - waitingSince) / 1000)} s)`)
              return
            }
            const wait = backoffMs(misses++, ROUTE_RETRY_BASE_MS, ROUTE_RETRY_CAP_MS)
            if (misses === 1) this.log.info({ task: co.id, reason, attempt: co.coord.attempt }, 'task waits for a node that can run it')
            this.waitingFor(co, reason)
            co.sink?.push({ type: 'waiting', id: co.id, reason, delayMs: wait })
            await this.wait(co, wait)
            continue
          }
          misses = 0
          // a coordinator others may have taken for dead starts nothing before its would-be successor says it goes on
          const fenced = await this.standby.hold(co)
          if (fenced !== undefined) {
            await this.catchUpWithSuccessor(co)
            if (this.handedOver(co)) return
            const wait = backoffMs(holds++, STANDBY_RETRY_BASE_MS, STANDBY_RETRY_CAP_MS)
            if (holds === 1) this.log.info({ task: co.id, reason: fenced, attempt: co.coord.attempt }, 'task waits: this node may have been taken for dead')
            this.waitingFor(co, fenced)
            co.sink?.push({ type: 'waiting', id: co.id, reason: fenced, delayMs: wait })
            await this.wait(co, wait)
            continue
          }
          holds = 0
          outcome = await this.offerAll(co, routed)
          routed = undefined
        }
        if (outcome === undefined || outcome.kind === 'refused') {
          // every candidate refused (queues full, draining): the task stays pending and routing runs again
          const wait = backoffMs(refusals++, 250, REFUSED_RETRY_CAP_MS)
          const reason = `every node that can run it refused it now${outcome === undefined ? '' : `: ${outcome.reason}`}`
          this.waitingFor(co, reason)
          co.sink?.push({ type: 'waiting', id: co.id, reason, delayMs: wait })
          await this.wait(co, wait)
          continue
        }
        refusals = 0
        if (outcome.kind === 'done') { this.complete(co, outcome.result); return }
        // another node took the task over meanwhile (this one was cut off or stopped): it drives it, not this one
        if (this.handedOver(co)) return
        if (outcome.kind === 'moved') {
          // the old executor took it out of its queue before answering: it runs on the thief only (a new attempt, so
          // the records never mix two executions of one attempt; it spends no retry)
          co.moves = (co.moves ?? 0) + 1
          co.coord = { ...co.coord, attempt: co.coord.attempt + 1 }
          co.placed = false
          co.offset = 0
          this.records.writeCoord(co.id, co.coord)
          this.log.info({ task: co.id, to: outcome.node, attempt: co.coord.attempt }, 'task moved by work stealing')
          if (co.cancelRequested) { this.finalize(co, 'cancelled', 'cancelled before it started'); return }
          routed = { ok: true, strategy: co.spec.strategy, candidates: [outcome.node] }
          continue
        }
        if (co.cancelRequested) { this.finalize(co, 'cancelled', `cancelled (${outcome.reason})`); return }
        const envLost = this.envLostReason(co)
        if (envLost !== undefined) { this.finalize(co, 'failed', `cannot run it again (${outcome.reason}): ${envLost}`.slice(0, 4096)); return }
        // a retry (or the verdict) is for the task's one coordinator: first catch up with the node that would have
        // taken it over while this one was cut off or stopped, and stop here if it did
        await this.catchUpWithSuccessor(co)
        if (this.handedOver(co)) return
        if (co.coord.attempt >= co.spec.retries + 1 + (co.moves ?? 0)) {
          this.finalize(co, 'failed', `gave up after ${co.coord.attempt} attempt${co.coord.attempt === 1 ? '' : 's'}: ${outcome.reason}`)
          return
        }
        const wait = backoffMs(co.coord.attempt - 1, RETRY_BASE_MS, RETRY_CAP_MS)
        // the next attempt prefers a node where this one did not fail (GNU parallel's rule)
        if (co.executor !== undefined) (co.failedOn ??= new Set()).add(co.executor)
        co.coord = { ...co.coord, attempt: co.coord.attempt + 1 }
        co.placed = false
        co.offset = 0
        this.records.writeCoord(co.id, co.coord)
        this.m.retried.inc()
        this.log.info({ task: co.id, attempt: co.coord.attempt, reason: outcome.reason, delayMs: wait }, 'retrying task')
        co.sink?.push({ type: 'retry', id: co.id, attempt: co.coord.attempt, reason: outcome.reason, delayMs: wait })
        await this.wait(co, wait)
      }
    } catch (err) {
      this.log.error({ err, task: co.id }, 'task coordination failed')
      co.sink?.close(toGridError(err))
    } finally {
      this.ledger.ended(co.id)
      if (this.coordinated.get(co.id) === co) this.coordinated.delete(co.id)
      co.onPlaced?.()
    }
  }

  /** Offers the task to each candidate in turn until one takes it; the session's owner is asked to start it now. */
  private async offerAll (co: Coordinated, routed: Extract<RouteResult, { ok: true }>): Promise<Outcome | undefined> {
    co.session = routed.session
    co.passed = routed.passed
    let outcome: Outcome | undefined
    for (const node of routed.candidates) {
      if (co.abort.signal.aborted) break
      const ownerTurn = routed.session?.ownerFirst === true && node === routed.session.owner
      outcome = await this.attempt(co, node, ownerTurn && routed.session?.startNow === true)
      if (outcome.kind !== 'refused') break
      if (outcome.unsure === true) {
        // it may have been admitted all the same: re-attach's rule decides, so the attempt is given up only once that
        // node says it has none of it or has been dead a while, never while it may be running it (issue 13)
        co.executor = node
        const back = await this.reattach(co, node)
        if (back.kind !== 'retry' || !this.running || this.supersededBy(co) !== undefined) { outcome = back; break }
        this.live.abandon(co, node, `${outcome.reason}; then ${back.reason}`)
      }
      if (ownerTurn && co.session !== undefined) {
        const name = this.nameOf(node)
        co.session.refused = outcome.full === true
          ? { reason: 'full', message: `its owner ${name} cannot start it now (${outcome.reason})` }
          : { reason: 'unreachable', message: `its owner ${name} did not take it: ${outcome.reason}` }
      }
    }
    return outcome
  }

  /** One offer: local or remote; ends when the attempt ends (or the offer is refused). */
  private async attempt (co: Coordinated, node: NodeId, startNow: boolean): Promise<Outcome> {
    return await this.live.during(co, node, async () => await this.offer(co, node, startNow))
  }

  private async offer (co: Coordinated, node: NodeId, startNow: boolean): Promise<Outcome> {
    const offer: TaskOffer = { id: co.id, spec: co.spec, attempt: co.coord.attempt, origin: co.coord.origin, coordinator: this.c.peerId, generation: generationOf(co.coord), sentAt: Date.now() }
    if (startNow) offer.startNow = true
    this.ledger.sent(node, co.id)
    const refused = (err: unknown): Outcome => {
      this.ledger.ended(co.id)
      const e = toGridError(err)
      return { kind: 'refused', reason: e.message, full: e.code === 'UNAVAILABLE' && (e.details as { full?: boolean } | undefined)?.full === true, unsure: node !== this.c.peerId && UNSURE_OFFER_CODES.has(e.code) }
    }
    // a synced tree: what the executor lacks goes first (here: laid out from this node's own cache)
    let syncDir: string | undefined
    try {
      syncDir = await readySynced(this.c, co, node, offer, this.nameOf(node))
    } catch (err) {
      this.log.warn({ err, task: co.id, peer: node }, 'cannot ready the synced tree on the node; offering the task to the next')
      return refused(err)
    }
    if (node === this.c.peerId) {
      return await new Promise<Outcome>(resolve => {
        const watcher: Watcher = {
          primary: true,
          event: ev => this.forward(co, node, ev),
          drain: async () => { await co.sink?.drained() },
          done: result => { resolve(this.classify(co, result)) }
        }
        try {
          refuseSuperseded(this.c, this.records, offer)
          const { queued, reason } = admitOffer(this.c, offer, watcher, this.c.peerId, syncDir)
          this.placed(co, node, this.init.nodeName, queued, reason)
        } catch (err) {
          resolve(refused(err))
        }
      })
    }
    let admitted = false
    const dead = this.deaths.untilDead(node)
    try {
      const result = await this.c.rpc.request(node, TaskRun, offer, {
        timeoutMs: runDeadline(co.spec),
        signal: AbortSignal.any([co.abort.signal, dead.signal]),
        onEvent: ev => {
          if (ev.k === 'admitted') { admitted = true; this.placed(co, node, ev.nodeName, ev.queued, ev.reason); return }
          this.forward(co, node, ev)
        }
      })
      return this.classify(co, result)
    } catch (err) {
      // stopped by the death watch: unsure whether it was admitted (re-attaching decides)
      if (!admitted) return refused(dead.signal.aborted ? dead.signal.reason : err)
      if (!this.running) return { kind: 'retry', reason: 'coordinator stopping' }
      return await this.reattach(co, node)
    } finally {
      dead.done()
    }
  }

  /** The stream to a running task broke: watch it again if its executor lives, else the attempt is lost. */
  async reattach (co: Coordinated, node: NodeId): Promise<Outcome> {
    return await this.live.reattach(co, node)
  }

  private async catchUpWithSuccessor (co: Coordinated): Promise<void> {
    await catchUpWithSuccessor(this.c, this.log, co.id)
  }

  /** The node that took this task over from this one (the records name it with a later generation), if any. */
  supersededBy (co: Coordinated): NodeId | undefined {
    return this.live.supersededBy(co)
  }

  /**
   * True when another node took the task over: this node stops driving it (no offer, no retry, no record) and, for
   * its client, follows the records to the task's end (its output goes on in `gridctl logs`).
   */
  private handedOver (co: Coordinated): boolean {
    const by = this.supersededBy(co)
    if (by === undefined) return false
    this.m.handedOver.inc()
    this.log.warn({ task: co.id, coordinator: by, attempt: co.coord.attempt, generation: generationOf(co.coord) }, 'another node took the task over: this one stops driving it')
    co.abort.abort(new CancelledError('another node took the task over'))
    if (co.sink !== undefined) void this.followToEnd(co, by)
    return true
  }

  /** Tells a handed-over task's client how it ended, from the records, once they say so. */
  private async followToEnd (co: Coordinated, by: NodeId): Promise<void> {
    await followRecordsToEnd(this.records, co, this.nameOf(by), () => this.running)
  }

  classify (co: Coordinated, result: ExecAspect): Outcome {
    if (result.movedTo !== undefined && !co.cancelRequested) return { kind: 'moved', node: result.movedTo, reason: result.error ?? 'moved' }
    if (result.lost === true) return { kind: 'retry', reason: result.error ?? `node ${result.nodeName} lost the task` }
    if ((result.status === 'failed' || result.status === 'timeout') && co.spec.retryOnFailure && !co.cancelRequested) {
      return co.coord.attempt >= co.spec.retries + 1 + (co.moves ?? 0) ? { kind: 'done', result } : { kind: 'retry', reason: result.error ?? result.status }
    }
    return { kind: 'done', result }
  }

  private placed (co: Coordinated, node: NodeId, nodeName: string, queued: boolean, reason?: string): void {
    co.executor = node
    co.placed = true
    co.onPlaced?.()
    this.log.debug({ task: co.id, peer: node, nodeName, attempt: co.coord.attempt, queued, reason }, 'task placed')
    if (co.coord.attempt === 1) this.m.dispatch.observe((Date.now() - co.submittedAt) / 1000)
    // from here the executor's record says why it waits, if it does
    if (co.coord.reason !== undefined) {
      const { reason: _waited, ...coord } = co.coord
      co.coord = coord
      this.records.writeCoord(co.id, co.coord)
    }
    co.sink?.push({ type: 'placed', id: co.id, node, nodeName, attempt: co.coord.attempt, queued, ...(queued && reason !== undefined ? { reason } : {}), ...(co.passed === undefined ? {} : { passed: co.passed }) })
    rehomeIfMoved(this.c, this.m, this.log, co, node, nodeName, id => this.nameOf(id))
    // a cancel that arrived while the offer was in flight
    if (co.cancelRequested) void this.cancelOn(node, co.id)
  }

  /** Passes a task event to the client; false makes a local task slow down. */
  forward (co: Coordinated, node: NodeId, ev: TaskEvent): boolean {
    if (ev.k === 'out') {
      co.offset = ev.o + ev.d.byteLength
      return co.sink?.push({ type: 'output', stream: ev.s === 1 ? 'stdout' : 'stderr', data: ev.d, offset: ev.o }, true) ?? true
    }
    if (ev.k === 'started') co.sink?.push({ type: 'started', id: co.id, node, attempt: co.coord.attempt, pid: ev.pid, gpus: ev.gpus })
    else if (ev.k === 'gap') co.sink?.push({ type: 'gap', bytes: ev.bytes })
    return true
  }

  complete (co: Coordinated, result: ExecAspect): void {
    this.ledger.ended(co.id)
    if (co.sink !== undefined && co.sink.dropped > 0) co.sink.push({ type: 'gap', bytes: co.sink.dropped })
    const exit: ClientEvent = {
      type: 'exit',
      id: co.id,
      status: result.status,
      exitCode: result.exitCode ?? null,
      code: exitCodeOf(result),
      signal: result.signal ?? null,
      error: result.error ?? null,
      node: result.node,
      nodeName: result.nodeName,
      attempts: co.coord.attempt
    }
    if (result.result !== undefined) exit.result = result.result
    if (!fetchThenEnd(this.c, this.log, co, result, exit)) {
      co.sink?.push(exit)
      co.sink?.close()
    }
    // the executor records the result; if its record does not arrive (it died just after answering), write it here
    setTimeout(() => {
      const a = this.records.aspects(co.id)
      if (!isFinalStatus(statusOf(a)) && a.coord?.aspect.coordinator === this.c.peerId) {
        this.records.writeCoord(co.id, { ...co.coord, final: result.status as CoordAspect['final'] & string, exitCode: result.exitCode ?? null, ...(result.error === undefined ? {} : { error: result.error }), finishedAt: result.finishedAt ?? Date.now() })
      }
    }, FINAL_RECORD_GRACE_MS).unref()
  }

  /** The coordinator's own verdict: retries exhausted, cancelled before it ran. */
  private finalize (co: Coordinated, status: 'failed' | 'cancelled', error: string): void {
    co.coord = { ...co.coord, final: status, error, finishedAt: Date.now() }
    this.records.writeCoord(co.id, co.coord)
    this.m.completed.inc({ status, type: co.spec.type ?? 'command' })
    this.log.info({ task: co.id, status, error }, 'task ended by its coordinator')
    co.sink?.push({ type: 'exit', id: co.id, status, exitCode: null, code: status === 'cancelled' ? 130 : 1, signal: null, error, node: null, nodeName: null, attempts: co.coord.attempt })
    co.sink?.close()
  }

  /** The task waits before any node took it: its record says why (written when the reason changes). */
  private waitingFor (co: Coordinated, reason: string): void {
    const r = reason.slice(0, TASK_REASON_MAX_CHARS)
    if (co.coord.reason === r) return
    co.coord = { ...co.coord, reason: r }
    this.records.writeCoord(co.id, co.coord)
  }

  /** Waits `ms`, or less if a cancel wakes the task. */
  private async wait (co: Coordinated, ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(done, ms)
      co.waker = done
      function done (): void { clearTimeout(t); resolve() }
    })
    co.waker = undefined
  }

  /** Asks the executor to stop the task; the cancel mark in the replicated record reaches it anyway. */
  async cancelOn (node: NodeId, id: string): Promise<void> {
    try {
      if (node === this.c.peerId) this.c.executor.cancel(id)
      else await this.c.rpc.request(node, TaskCancel, { id, by: this.c.peerId }, { timeoutMs: 5_000 })
    } catch (err) {
      this.log.debug({ task: id, node, err }, 'cancel request did not reach the executor')
    }
  }

  /** Wakes every coordinated task so it notices that this node is stopping. */
  stopAll (): void {
    for (const co of this.coordinated.values()) { co.abort.abort(new CancelledError('node is stopping')); co.waker?.() }
  }

  private nameOf (node: NodeId): string {
    return this.c.nodeRegistry.get(node)?.value.name ?? node
  }
}
