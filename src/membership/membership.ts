/**
 * The membership service: gossips this node's heartbeat, listens to everyone else's, probes peers that fall silent
 * or drop their connection, asks a few others to probe before declaring a peer dead, spreads suspicion and death
 * notices, and refutes notices about itself.
 *
 * This file is the facade and the clock: it builds the parts (heartbeats, prober, local health, metrics) around one
 * failure detector, runs the detector's tick, reacts to connection events, and announces every state change.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { MemberState, MemberView, NodeId, SelfState, Startable } from '../interface/index.ts'
import { delay, repeat } from '../util/index.ts'
import { DISCONNECT_SETTLE_MS, LEAVE_FLUSH_MS, SETTLED_AFTER_START_MS, SETTLED_HEARTBEAT_FACTOR, SETTLED_QUIET_MS, TICK_JITTER, TICK_MIN_INTERVAL_MS } from './constants.ts'
import { FailureDetector, type Transition } from './detector.ts'
import { Heartbeats } from './heartbeats.ts'
import { LocalHealth } from './local-health.ts'
import { createMembershipMetrics, type MembershipMetrics } from './membership-metrics.ts'
import { Prober } from './prober.ts'
import { heartbeatIntervals, type HeartbeatIntervals } from './schedule.ts'
import type { MemberStates, MembershipComponents, MembershipEvents, MembershipInit } from './types.ts'

export class Membership extends EventEmitter<MembershipEvents> implements MemberStates, Startable {
  /** The state machine itself; other modules read `state()` and `view()` instead. */
  readonly detector: FailureDetector
  private readonly log: Logger
  private readonly metrics: MembershipMetrics
  private readonly health: LocalHealth
  private readonly heartbeats: Heartbeats
  private readonly prober: Prober
  private tickLoop?: { stop: () => void }
  private running = false
  /** This node's heartbeat gaps for the cluster's size now (schedule.ts). */
  private readonly intervals: () => HeartbeatIntervals

  constructor (private readonly components: MembershipComponents, private readonly init: MembershipInit) {
    super()
    const { mesh, logger } = components
    this.log = logger
    this.detector = new FailureDetector(mesh.peerId, {
      heartbeatIntervalMs: init.heartbeatIntervalMs,
      suspectAfterMissed: init.suspectAfterMissed,
      suspicionTimeoutMs: init.suspicionTimeoutMs,
      expectedConfirmations: init.indirectProbes,
      memberExpiryMs: init.deadMemberExpiryMs
    })
    const detector = this.detector
    this.health = new LocalHealth({ logger, detector, eventLoopLag: components.eventLoopLag }, { intervalMs: init.heartbeatIntervalMs })
    this.metrics = createMembershipMetrics(components.registry, {
      self: { id: mesh.peerId, name: init.name },
      peers: () => detector.list(),
      localHealth: () => this.health.multiplier
    })
    const announce = (t: Transition): void => { this.announce(t) }
    // receivers probe a member silent for suspectAfterMissed intervals: settled heartbeats stay an interval inside that
    const factor = Math.max(1, Math.min(SETTLED_HEARTBEAT_FACTOR, init.suspectAfterMissed - 1))
    this.intervals = (): HeartbeatIntervals => {
      // an older member's deadline is the configured interval whatever ours announce: the pace stays while one is live
      if (detector.hasLegacyMembers) return { busyMs: init.heartbeatIntervalMs, settledMs: init.heartbeatIntervalMs * factor }
      return heartbeatIntervals(init.heartbeatIntervalMs, detector.memberCount, factor)
    }
    this.heartbeats = new Heartbeats(
      { mesh, logger, detector, metrics: this.metrics, health: this.health, load: components.load, isRegistered: components.isRegistered, announce, intervals: this.intervals, settled: () => detector.settled(SETTLED_QUIET_MS, SETTLED_AFTER_START_MS), ...(components.selfHealth === undefined ? {} : { selfHealth: components.selfHealth }), ...(components.paused === undefined ? {} : { paused: components.paused }) },
      {
        cluster: init.cluster,
        name: init.name,
        version: init.version,
        heartbeatIntervalMs: init.heartbeatIntervalMs,
        settledIntervalMs: init.heartbeatIntervalMs * factor
      }
    )
    this.prober = new Prober(
      { mesh, logger, detector, metrics: this.metrics, health: this.health, self: this.heartbeats, announce, notify: async (kind, t) => { await this.heartbeats.notify(kind, t) } },
      { heartbeatIntervalMs: init.heartbeatIntervalMs, probeTimeoutMs: init.probeTimeoutMs, indirectProbes: init.indirectProbes }
    )
  }

  async start (): Promise<void> {
    this.running = true
    const mesh = this.components.mesh
    mesh.on('peer:disconnect', this.onDisconnect)
    mesh.on('peer:connect', this.onConnect)
    this.heartbeats.start()
    const onError = (err: unknown): void => { this.log.error({ err }, 'membership loop failed') }
    this.tickLoop = repeat(() => { this.tick() }, Math.max(TICK_MIN_INTERVAL_MS, Math.round(this.init.heartbeatIntervalMs / 4)), onError, { jitter: TICK_JITTER })
    this.prober.start()
    this.health.start()
  }

  /** Announces `left` (so peers do not wait for a timeout) and stops gossiping. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.heartbeats.stop()
    this.tickLoop?.stop()
    this.prober.stop()
    this.health.stop()
    this.components.mesh.off('peer:disconnect', this.onDisconnect)
    this.components.mesh.off('peer:connect', this.onConnect)
    try {
      await this.heartbeats.announceLeave()
      await delay(LEAVE_FLUSH_MS)
    } catch (err) {
      this.log.warn({ err }, 'could not announce leave')
    }
  }

  /** 1 while this node keeps up; more while it is slow: its probe and suspicion deadlines stretch by this much. */
  get healthMultiplier (): number { return this.health.multiplier }

  /** Since when this node's event loop has lagged without a break (epoch ms), 0 while it keeps up. */
  get slowSince (): number { return this.health.slowSince }

  /** When this node's event loop last stalled (performance.now(); local-health.ts), for the tasks' start fence. */
  get lastStallAt (): number { return this.health.lastStallAt }

  /** The last direct probes of a peer (newest last), for `gridctl health NODE`. */
  probes (id: NodeId): Array<{ at: number, rttMs: number | null, ok: boolean }> { return this.detector.probes(id) }

  /** This node's own state in its heartbeats: draining keeps it alive but takes no new work. */
  setSelfState (state: SelfState): void { this.heartbeats.setSelfState(state) }

  getSelfState (): SelfState { return this.heartbeats.selfState }

  /** Gossips this node's heartbeat now: something it carries (health, a paused queue) changed. */
  heartbeatNow (): void { this.heartbeats.sendNow() }

  /** Every known member, this node first. */
  view (): MemberView[] {
    return [this.selfView(), ...this.detector.list()]
  }

  get (id: NodeId): MemberView | undefined {
    return id === this.components.mesh.peerId ? this.selfView() : this.detector.get(id)
  }

  /** What this node believes about a peer; undefined for a peer it does not know, and for this node itself. */
  state (id: NodeId): MemberState | undefined {
    return this.detector.state(id)
  }

  /** Removes a dead or departed member from the view (gridctl nodes forget). */
  forget (id: NodeId): boolean {
    this.components.mesh.forget(id)
    return this.detector.forget(id)
  }

  private selfView (): MemberView {
    return {
      id: this.components.mesh.peerId,
      name: this.init.name,
      state: 'alive',
      selfState: this.heartbeats.selfState,
      incarnation: this.heartbeats.incarnation,
      lastSeen: this.heartbeats.lastSent,
      since: Date.now(),
      load: this.components.load(),
      version: this.init.version,
      history: [],
      ...(this.components.selfHealth === undefined ? {} : { health: this.components.selfHealth() }),
      ...(this.components.paused?.() === true ? { paused: true } : {})
    }
  }

  private readonly onDisconnect = (peer: NodeId): void => {
    const state = this.detector.state(peer)
    if (state !== 'alive' && state !== 'suspect') return
    // a trim back to the connection cap (a cluster larger than it) is no sign of failure; heartbeats still come
    if (this.components.mesh.closedOnPurpose?.(peer) === true) return
    // let libp2p finish tearing the connection down, so the probe dials afresh rather than using a dying stream
    setTimeout(() => { void this.prober.investigate(peer, 'connection closed') }, DISCONNECT_SETTLE_MS).unref()
  }

  private readonly onConnect = (peer: NodeId): void => {
    // a dead or suspect peer that connects is probably back: probe it now rather than wait for its heartbeat
    const state = this.detector.state(peer)
    if (state === 'dead' || state === 'suspect') void this.prober.investigate(peer, 'reconnected')
  }

  private tick (): void {
    // a member's heartbeats are expected at least as often as this node's own would be in a cluster of the size it sees
    this.detector.setIntervalFloor(this.intervals().busyMs)
    const { overdue, dead, expired } = this.detector.tick()
    // late heartbeats on a busy machine are common; a probe that goes unanswered is what makes a suspect
    for (const o of overdue) void this.prober.investigate(o.id, o.reason)
    for (const t of dead) {
      this.metrics.deaths.inc({ source: 'local' })
      this.announce(t)
      // the connection of a peer this node found dead itself (a frozen process, a lost host) is dropped once the notice
      // is out; if the peer comes back, a dial or its heartbeat says so. A death heard in a notice drops nothing: one
      // forged notice must not cut links, and the subject may still refute through this node
      void this.heartbeats.notify('dead', t).then(async () => {
        if (this.running && this.detector.state(t.id) === 'dead') await this.components.mesh.hangUp(t.id)
      })
    }
    for (const v of expired) {
      this.metrics.expired.inc()
      // one that is not in the registry is not dialled either; a registered one is, slowly, and its heartbeat adds it back
      if (!this.components.isRegistered(v.id)) this.components.mesh.forget(v.id)
      this.log.info({ peer: v.id, name: v.name, state: v.state, since: new Date(v.since).toISOString() }, 'member expired from the member table')
    }
  }

  private announce (t: Transition): void {
    this.metrics.transitions.inc({ to: t.to })
    const name = this.detector.get(t.id)?.name ?? t.id
    const fields = { peer: t.id, name, from: t.from, to: t.to, reason: t.reason, incarnation: t.incarnation }
    if (t.to === 'dead' || t.to === 'suspect') this.log.warn(fields, 'member state changed')
    else this.log.info(fields, 'member state changed')
    try {
      this.emit('member:state', t)
    } catch (err) {
      this.log.error({ err }, 'member:state listener failed')
    }
  }
}
