/**
 * The gossip side of membership, on the cluster's heartbeat topic: this node's heartbeats (incarnation, sequence,
 * state, load, version), its suspicion and death notices, and what it makes of everyone else's. A notice about this
 * node is refuted by raising the incarnation and sending a heartbeat at once.
 *
 * Who may say what (issue 17): gossip is signed (the mesh hands us the signer as `author`), a heartbeat is taken only
 * from the node it describes and a notice only from the node that names itself as its sender, and only from authors
 * this node is connected to or finds in the node registry; anything else is dropped before it is relayed.
 */
import type { Logger } from 'pino'
import {
  HEARTBEAT_MAX_BYTES, decode, encode, heartbeatTopic, membershipMessage,
  type Heartbeat, type MembershipMessage, type Notice
} from '../../proto/index.ts'
import type { HealthReport, LoadReport, NodeId, SelfState } from '../interface/index.ts'
import type { GossipSource, GossipVerdict } from '../mesh/index.ts'
import { LogLimiter, repeat } from '../util/index.ts'
import { HEARTBEAT_JITTER, REFUSED_LOG_EVERY_MS } from './constants.ts'
import type { FailureDetector, Transition } from './detector.ts'
import type { MembershipMetrics } from './membership-metrics.ts'
import type { HeartbeatIntervals } from './schedule.ts'
import type { MembershipMesh } from './types.ts'

export interface HeartbeatsComponents {
  mesh: Pick<MembershipMesh, 'peerId' | 'subscribe' | 'publish' | 'isConnected' | 'learn'>
  logger: Logger
  detector: FailureDetector
  metrics: MembershipMetrics
  health: { raise: (why: string) => void }
  load: () => LoadReport
  /** this node's health verdict and paused queue, carried in its heartbeats when given */
  selfHealth?: () => HealthReport
  paused?: () => boolean
  /** Whether a node is in the node registry: with a connection, what makes a message's author one worth hearing. */
  isRegistered: (id: NodeId) => boolean
  /** Told every state change a message caused. */
  announce: (t: Transition) => void
  /** Whether the cluster is settled (nobody suspect, no change for a while, this node keeping up): heartbeats slow down. */
  settled?: () => boolean
  /** The heartbeat gaps for the cluster's size now (schedule.ts); `heartbeatIntervalMs` and `settledIntervalMs` without it. */
  intervals?: () => HeartbeatIntervals
}

export interface HeartbeatsInit {
  cluster: string
  name: string
  version: string
  heartbeatIntervalMs: number
  /** How far apart heartbeats go while settled (at most the receivers' missed-heartbeat deadline less one interval). */
  settledIntervalMs?: number
}

export class Heartbeats {
  private readonly log: Logger
  private readonly topic: string
  private readonly refusedLog = new LogLimiter(REFUSED_LOG_EVERY_MS)
  private inc = Math.floor(Date.now() / 1000)
  private seq = 0
  private state: SelfState = 'alive'
  private lastSentAt = 0
  /** What the last heartbeat said about the work here: a change is sent at once, settled or not. */
  private lastWork = ''
  private running = false
  private loop?: { stop: () => void }
  /** What validate() decoded, for onMessage (gossipsub hands both the same bytes): each message is decoded once. */
  private readonly accepted = new WeakMap<Uint8Array, MembershipMessage>()

  constructor (private readonly components: HeartbeatsComponents, private readonly init: HeartbeatsInit) {
    this.log = components.logger
    this.topic = heartbeatTopic(init.cluster)
    components.mesh.subscribe(this.topic, (data, from) => { this.onMessage(data, from) }, (data, from) => this.validate(data, from))
  }

  /** This node's incarnation: starts at the process's start time in seconds, raised to refute. */
  get incarnation (): number { return this.inc }
  get selfState (): SelfState { return this.state }
  /** When this node last published a heartbeat (epoch ms; 0 before the first). */
  get lastSent (): number { return this.lastSentAt }

  start (): void {
    this.running = true
    this.loop = repeat(async () => { await this.beat() }, this.init.heartbeatIntervalMs, err => { this.log.error({ err }, 'membership loop failed') }, { jitter: HEARTBEAT_JITTER, immediate: true })
  }

  stop (): void {
    this.running = false
    this.loop?.stop()
  }

  /** Gossips `left` once (after stop), so peers do not wait for a timeout. */
  async announceLeave (): Promise<void> {
    await this.publish(this.heartbeat('left'))
  }

  /** This node's own state in its heartbeats: draining keeps it alive but takes no new work. */
  setSelfState (state: SelfState): void {
    if (this.state === state) return
    this.state = state
    if (this.running) void this.send().catch(() => {})
  }

  /** Sends a heartbeat now (what it carries changed: a paused queue, say), not at the next interval. */
  sendNow (): void {
    if (this.running) void this.send().catch(() => {})
  }

  /** Gossips "I suspect X" or "X is dead" at X's incarnation; a failure is logged here. */
  async notify (kind: Notice['kind'], t: Transition): Promise<void> {
    try {
      await this.publish({ t: 'notice', kind, id: t.id, inc: t.incarnation, by: this.components.mesh.peerId })
    } catch (err) {
      this.log.warn({ err, kind, peer: t.id }, 'could not gossip notice')
    }
  }

  private heartbeat (state: Heartbeat['state'] = this.state, iv?: number): Heartbeat {
    const h = this.components.selfHealth?.()
    const paused = this.components.paused?.()
    return {
      ...(h === undefined ? {} : { health: { s: h.health, r: h.reason.slice(0, 300), since: h.since, br: h.breaker } }),
      ...(paused === true ? { paused } : {}),
      t: 'hb',
      id: this.components.mesh.peerId,
      name: this.init.name,
      inc: this.inc,
      seq: ++this.seq,
      state,
      load: this.components.load(),
      ver: this.init.version,
      ts: Date.now(),
      ...(iv === undefined ? {} : { iv })
    }
  }

  private intervals (): HeartbeatIntervals {
    const base = this.init.heartbeatIntervalMs
    return this.components.intervals?.() ?? { busyMs: base, settledMs: this.init.settledIntervalMs ?? base }
  }

  /**
   * The gap until the next heartbeat, settled or busy. A gap that grew since the last heartbeat announced a shorter
   * one (the cluster grew) is covered by the receivers' floor: they expect at least their own busy interval.
   */
  private gap (): number {
    const { busyMs, settledMs } = this.intervals()
    return settledMs > busyMs && this.components.settled?.() === true ? settledMs : busyMs
  }

  /**
   * One tick of the heartbeat loop (every base interval): a heartbeat every busy interval while anything is in the
   * air (a suspect, a recent change, this node slow), every settled interval once the cluster is settled, and a change
   * of this node's work at once, but never sooner than a busy interval after the last heartbeat. Up to 12 members the
   * busy interval is the base one (schedule.ts): an idle cluster's gossip, signatures and checks, are its main cost
   * (README, Membership), and past 12 the cluster's heartbeat rate stays bounded.
   */
  private async beat (): Promise<void> {
    const half = this.init.heartbeatIntervalMs / 2
    const since = Date.now() - this.lastSentAt
    if (since >= this.gap() - half) { await this.send(); return }
    if (since >= this.intervals().busyMs - half && workOf(this.components.load()) !== this.lastWork) await this.send()
  }

  private async send (): Promise<void> {
    if (!this.running) return
    const iv = this.gap()
    const hb = this.heartbeat(this.state, iv)
    this.lastWork = workOf(hb.load)
    await this.publish(hb)
    this.lastSentAt = Date.now()
    this.components.metrics.heartbeatsSent.inc()
  }

  private async publish (msg: MembershipMessage): Promise<void> {
    await this.components.mesh.publish(this.topic, encode(msg))
  }

  /**
   * Heartbeats and notices travel through other members (the mesh relays them), signed by their author. A message
   * that speaks for someone other than its signer is rejected (no honest relay forwards one, so the peer that
   * delivered it is penalised). One from an author this node neither is connected to nor finds in the registry, or
   * a heartbeat whose incarnation is beyond this node's clock plus a day, is ignored: not used, not relayed, no
   * penalty (another member may know the author, or keep a different clock).
   */
  private validate (data: Uint8Array, from: GossipSource): GossipVerdict {
    const invalid = this.components.metrics.invalid
    if (data.byteLength > HEARTBEAT_MAX_BYTES) { invalid.inc(); return 'reject' }
    let msg: unknown
    try { msg = decode(data) } catch { invalid.inc(); return 'reject' }
    if (!membershipMessage.check(msg)) { invalid.inc(); return 'reject' }
    const { author } = from
    if ((msg.t === 'hb' ? msg.id : msg.by) !== author) return this.refuse('not-author', msg, from, 'reject')
    if (!this.components.mesh.isConnected(author) && !this.components.isRegistered(author)) return this.refuse('unknown-author', msg, from, 'ignore')
    if (msg.t === 'hb' && !this.components.detector.plausibleIncarnation(msg.inc)) return this.refuse('incarnation-ahead', msg, from, 'ignore')
    this.accepted.set(data, msg)
    return 'accept'
  }

  private refuse (reason: string, msg: MembershipMessage, from: GossipSource, verdict: GossipVerdict): GossipVerdict {
    this.components.metrics.refused.inc({ reason })
    if (this.refusedLog.allow(reason)) {
      this.log.warn({ reason, kind: msg.t, subject: msg.id, inc: msg.inc, author: from.author, via: from.via }, 'refused a membership message (logged once a minute per reason)')
    }
    return verdict
  }

  private onMessage (data: Uint8Array, from: GossipSource): void {
    const msg = this.accepted.get(data) ?? decode(data) as MembershipMessage // validated by validate() before delivery
    this.accepted.delete(data)
    if (msg.t === 'hb') { this.onHeartbeat(msg); return }
    this.onNotice(msg, from.via)
  }

  private onHeartbeat (hb: Heartbeat): void {
    const { mesh, detector } = this.components
    this.components.metrics.heartbeatsReceived.inc()
    const t = detector.onHeartbeat(hb)
    if (t !== undefined) this.components.announce(t)
    if (hb.state === 'left') mesh.learn(hb.id, [], { left: true })
    else if (!mesh.isConnected(hb.id)) mesh.learn(hb.id)
  }

  private onNotice (n: Notice, from: NodeId): void {
    const { detector, metrics } = this.components
    const r = detector.onNotice(n)
    if (r === 'refute') { this.refute(n, from); return }
    if (r === undefined) return
    // no probe of our own: the subject refutes if it is alive (one heartbeat reaches everyone), else the suspicion
    // timeout decides; a probe from every receiver would multiply the load by the cluster's size just when a node is
    // slow, and turn one late heartbeat into a storm
    if (r.to === 'suspect') metrics.suspicions.inc({ source: 'notice' })
    if (r.to === 'dead') metrics.deaths.inc({ source: 'notice' })
    this.components.announce(r)
  }

  /**
   * Refutes a notice about this node that names its current incarnation (one naming another is old, or made up):
   * the incarnation goes up by one from this node's own value, never from the notice's, and only while it stays within
   * this node's clock in seconds, so it never runs ahead of the clock and a restarted process (its incarnation is
   * its start time) always outranks the old one. Past that, the heartbeat sent now refutes with a higher sequence.
   */
  private refute (n: Notice, from: NodeId): void {
    if (n.inc !== this.inc) return
    if (this.inc + 1 <= Math.floor(Date.now() / 1000)) this.inc += 1
    this.components.metrics.refutations.inc()
    // being suspected is a hint that this node is slow (Lifeguard)
    this.components.health.raise(`suspected by ${n.by}`)
    this.log.warn({ kind: n.kind, by: n.by, via: from, incarnation: this.inc }, 'refuting a notice about this node')
    void this.send().catch(err => { this.log.warn({ err }, 'refutation heartbeat failed') })
  }
}

/** The part of a load report that placement acts on: a change of it is gossiped at once, even while settled. */
function workOf (l: LoadReport): string {
  return `${l.running}/${l.queued}/${l.freeSlots}/${l.freeGpus}/${l.taskMemoryFreeMiB ?? ''}`
}
