/**
 * The failure detector's state machine: what this node believes about each peer (alive, suspect, dead, left).
 *
 * Pure: no I/O and no timers of its own. The membership service feeds it heartbeats, notices, lost connections and
 * probe results, calls `tick()` on its timer, and acts on what it returns. The clock is injected, so tests drive it
 * with fake timers.
 *
 * Rules (SWIM with suspicion, incarnations and a fast path for refused connections):
 * - A fresh heartbeat (higher incarnation, or the same incarnation with a higher sequence) means alive.
 * - Missed heartbeats get a peer probed (`suspectAfterMissed` of the interval the peer announced in its last
 *   heartbeat, `iv`; the configured interval for a peer that announces none); an unanswered direct probe makes it suspect (a peer that answers stays
 *   alive, however late its heartbeats). A suspect that does not come back within the suspicion timeout is dead.
 * - The suspicion timeout shrinks with independent confirmations (Lifeguard's dynamic suspicion): each other member
 *   that failed to reach the suspect too (an indirect probe's helper that answered "unreachable", or a suspicion
 *   notice from another member at the same incarnation) brings it down from `suspicionTimeoutMs` towards a floor of
 *   SUSPICION_MIN_FRACTION of it, scaled by log10 of the cluster's size (a larger cluster needs more gossip rounds
 *   for a refutation to get round). Unconfirmed, it stays at `suspicionTimeoutMs`.
 * - A node never declares itself dead; it refutes a suspicion or death notice about itself by raising its
 *   incarnation.
 * - A notice applies only at exactly the incarnation we know for its subject: an old suspicion cannot undo a
 *   refutation, and one naming a future incarnation cannot pre-empt the subject's next refutation. It applies only
 *   from an author alive here, and back from suspect or dead for NOTICE_AFTER_REJOIN_MS: a member back from a
 *   partition replays what it saw there.
 * - An incarnation is taken only when plausible: at most this node's clock in seconds plus `incarnationAheadMaxS`
 *   (incarnations start at a process's start time in seconds and never run ahead of the subject's own clock).
 * - A `left` heartbeat (graceful leave) is final until the node sends a fresh heartbeat again.
 * - Dead and left members are dropped from the table `memberExpiryMs` after they became so (tick returns them);
 *   a later heartbeat adds them back.
 * - Local health (Lifeguard): while this node itself is slow (its event loop lags, so heartbeats it receives are
 *   handled late), the caller raises a multiplier that stretches both the missed-heartbeat and the suspicion
 *   deadlines: a starved node must not accuse healthy peers.
 */
import type { Heartbeat, Notice } from '../../proto/index.ts'
import type { HealthReport, LoadReport, MemberState, MemberView, NodeId, SelfState } from '../interface/index.ts'
import { DEAD_MEMBER_EXPIRY_MS, HEARTBEAT_INTERVAL_MAX_MS, INCARNATION_AHEAD_MAX_S, NOTICE_AFTER_REJOIN_MS, SUSPICION_MIN_FRACTION } from './constants.ts'
import { MemberRing } from './schedule.ts'

export interface DetectorOptions {
  heartbeatIntervalMs: number
  suspectAfterMissed: number
  suspicionTimeoutMs: number
  /** Confirmations after which a suspicion's timeout is at its floor (the indirect probes' k; 3 by default). */
  expectedConfirmations?: number
  /** How many state changes each member keeps in its history. */
  historyLength?: number
  /** How far ahead of this node's clock (in seconds) an incarnation may be; INCARNATION_AHEAD_MAX_S by default. */
  incarnationAheadMaxS?: number
  /** How long a dead or left member stays in the table; DEAD_MEMBER_EXPIRY_MS by default. */
  memberExpiryMs?: number
  now?: () => number
}

/** An alive peer whose heartbeats are overdue: to be probed. */
export interface Overdue {
  id: NodeId
  reason: string
}

export interface Transition {
  id: NodeId
  /** null when the member was not known before */
  from: MemberState | null
  to: MemberState
  reason: string
  incarnation: number
}

interface Member {
  id: NodeId
  name: string
  state: MemberState
  selfState: SelfState
  incarnation: number
  seq: number
  lastSeen: number
  since: number
  load?: LoadReport
  version?: string
  rttMs?: number
  /** When it last answered a probe (its heartbeats may be late while it is still reachable). */
  reachedAt?: number
  history: MemberView['history']
  health?: HealthReport
  paused?: boolean
  healthHistory: NonNullable<MemberView['healthHistory']>
  /** When it last came back alive from suspect or dead (epoch ms; 0 if never): its notices wait a while after. */
  backAt: number
  /** Other members that confirmed the current suspicion (Lifeguard); cleared when it becomes suspect. */
  confirmedBy: Set<NodeId>
  /** the last PROBE_LOG_LENGTH direct probes, newest last */
  probes: Array<{ at: number, rttMs: number | null, ok: boolean }>
  /** The heartbeat interval it announced last (ms); undefined for a node too old to announce one. */
  intervalMs?: number
  /** What the ring and counters hold for it (place() keeps them in step with its state). */
  inRing: boolean
  legacy: boolean
  suspectNow: boolean
}

/** Direct probes kept per member for `gridctl health NODE`. */
export const PROBE_LOG_LENGTH = 100

export class FailureDetector {
  private readonly members = new Map<NodeId, Member>()
  private readonly now: () => number
  private readonly historyLength: number
  private multiplier = 1

  /** When any member last changed state or joined (epoch ms). */
  private lastChangeAt = 0
  private readonly createdAt: number
  private readonly aheadMaxS: number
  private readonly expiryMs: number
  /** Live members and this node, sorted (the probe schedule's ring); its size less one is the live count. */
  readonly ring = new MemberRing()
  private suspects = 0
  /** Live members whose heartbeats announce no interval (an older version): heartbeats do not scale while any is. */
  private legacyMembers = 0
  /** No deadline falls before this (epoch ms): tick() skips its pass over the table until then. */
  private nextCheckAt = 0
  private intervalFloorMs = 0

  constructor (readonly selfId: NodeId, private readonly opts: DetectorOptions) {
    this.now = opts.now ?? Date.now
    this.historyLength = opts.historyLength ?? 20
    this.aheadMaxS = opts.incarnationAheadMaxS ?? INCARNATION_AHEAD_MAX_S
    this.expiryMs = opts.memberExpiryMs ?? DEAD_MEMBER_EXPIRY_MS
    // a node that just started is joining: not settled until it has been quiet for a while
    this.createdAt = this.now()
    this.lastChangeAt = this.createdAt
    this.ring.add(selfId)
  }

  /** Live members (alive or suspect) and this node. */
  get memberCount (): number { return this.ring.size }

  /** Whether a live member sends heartbeats without an interval (an older version, whose deadlines do not follow ours). */
  get hasLegacyMembers (): boolean { return this.legacyMembers > 0 }

  /** Whether an incarnation is one a live node could hold: not beyond this node's clock plus the allowance. */
  plausibleIncarnation (inc: number): boolean {
    return inc <= Math.floor(this.now() / 1000) + this.aheadMaxS
  }

  /** How long without a heartbeat before a peer is probed, for a peer at the configured interval. */
  get suspectAfterMs (): number {
    return this.opts.heartbeatIntervalMs * this.opts.suspectAfterMissed * this.multiplier
  }

  /** How long without a heartbeat before this peer is probed: `suspectAfterMissed` of the interval it announced. */
  suspectAfterMsFor (id: NodeId): number {
    const m = this.members.get(id)
    return m === undefined ? this.suspectAfterMs : this.deadlineOf(m)
  }

  private deadlineOf (m: Member): number {
    const iv = Math.max(m.intervalMs ?? this.opts.heartbeatIntervalMs, this.intervalFloorMs)
    return iv * this.opts.suspectAfterMissed * this.multiplier
  }

  /**
   * The least interval any member's heartbeats are held to (this node's own busy interval for the cluster it sees):
   * a member that announced a short interval before it saw the whole cluster is not probed for keeping a longer one.
   */
  setIntervalFloor (ms: number): void {
    if (ms < this.intervalFloorMs) this.nextCheckAt = 0
    this.intervalFloorMs = ms
  }

  /** How long a suspect may refute before it is declared dead. */
  get suspicionTimeoutMs (): number {
    return this.opts.suspicionTimeoutMs * this.multiplier
  }

  /**
   * How long this suspect may refute before it is declared dead: `suspicionTimeoutMs` unconfirmed, falling with
   * each independent confirmation as log(C+1)/log(K+1) (Lifeguard) to the floor, SUSPICION_MIN_FRACTION of it times
   * log10 of the cluster's size (at least 1); stretched like every deadline while this node is slow.
   */
  suspicionTimeoutFor (id: NodeId, live = this.liveCount()): number {
    const max = this.opts.suspicionTimeoutMs
    const others = live - 1
    const k = Math.min(this.opts.expectedConfirmations ?? 3, others)
    const c = Math.min(k, this.members.get(id)?.confirmedBy.size ?? 0)
    if (k <= 0 || c <= 0) return max * this.multiplier
    const min = Math.min(max, max * SUSPICION_MIN_FRACTION * Math.max(1, Math.log10(others + 2)))
    return Math.round(Math.max(min, max - (max - min) * Math.log(c + 1) / Math.log(k + 1)) * this.multiplier)
  }

  /**
   * Whether nobody is suspect, no member has changed state for `quietMs`, this detector is `startedQuietMs` old and
   * the deadlines are not stretched.
   */
  settled (quietMs: number, startedQuietMs = 0): boolean {
    const now = this.now()
    return this.multiplier <= 1 && now - this.lastChangeAt >= quietMs && now - this.createdAt >= startedQuietMs && this.suspects === 0
  }

  /** Members alive or suspect (this node not counted). */
  private liveCount (): number {
    return this.ring.size - 1
  }

  /** Keeps the ring and the counters in step with a member's state and announced interval. */
  private place (m: Member): void {
    const inRing = m.state === 'alive' || m.state === 'suspect'
    if (inRing !== m.inRing) {
      if (inRing) this.ring.add(m.id)
      else this.ring.remove(m.id)
      m.inRing = inRing
    }
    const legacy = inRing && m.intervalMs === undefined
    if (legacy !== m.legacy) { this.legacyMembers += legacy ? 1 : -1; m.legacy = legacy }
    const suspect = m.state === 'suspect'
    if (suspect !== m.suspectNow) { this.suspects += suspect ? 1 : -1; m.suspectNow = suspect }
  }

  private unplace (m: Member): void {
    if (m.inRing) this.ring.remove(m.id)
    if (m.legacy) this.legacyMembers--
    if (m.suspectNow) this.suspects--
    m.inRing = m.legacy = m.suspectNow = false
  }

  /** Another member could not reach this suspect either (its indirect probe failed, or it gossiped a suspicion). */
  confirm (id: NodeId, by: NodeId): void {
    const m = this.members.get(id)
    if (m?.state === 'suspect' && by !== this.selfId && by !== id) { m.confirmedBy.add(by); this.nextCheckAt = 0 }
  }

  /** Stretches every deadline by `k` (1 = healthy) while this node is itself slow. */
  setHealthMultiplier (k: number): void {
    const next = Math.max(1, k)
    if (next < this.multiplier) this.nextCheckAt = 0
    this.multiplier = next
  }

  /** Applies a heartbeat from a peer; returns the transition it caused, if any. */
  onHeartbeat (hb: Heartbeat): Transition | undefined {
    if (hb.id === this.selfId || !this.plausibleIncarnation(hb.inc)) return undefined
    const now = this.now()
    let m = this.members.get(hb.id)
    if (m === undefined) {
      const state: MemberState = hb.state === 'left' ? 'left' : 'alive'
      m = { id: hb.id, name: hb.name, state, selfState: 'alive', incarnation: hb.inc, seq: hb.seq, lastSeen: now, since: now, history: [], healthHistory: [], probes: [], confirmedBy: new Set(), backAt: 0, inRing: false, legacy: false, suspectNow: false }
      this.members.set(hb.id, m)
      this.applyPayload(m, hb, now)
      this.place(m)
      this.record(m, state, 'first heartbeat')
      return { id: m.id, from: null, to: state, reason: 'first heartbeat', incarnation: m.incarnation }
    }
    const fresh = hb.inc > m.incarnation || (hb.inc === m.incarnation && hb.seq > m.seq)
    if (!fresh) return undefined
    this.applyPayload(m, hb, now)
    this.place(m)
    if (hb.state === 'left') return this.transition(m, 'left', 'announced it is leaving')
    if (m.state !== 'alive') return this.transition(m, 'alive', m.state === 'suspect' ? 'heartbeat after suspicion' : `heartbeat while ${m.state}`)
    return undefined
  }

  /**
   * Applies a notice gossiped by another member. Returns 'refute' when the notice is about this node (the caller
   * raises its incarnation and sends a heartbeat at once), or the transition it caused.
   */
  onNotice (n: Notice): Transition | 'refute' | undefined {
    if (n.id === this.selfId) return 'refute'
    const m = this.members.get(n.id)
    if (m === undefined || n.inc !== m.incarnation) return undefined
    const author = this.members.get(n.by)
    // what a member says it saw while it was cut off from this node is about a partition we no longer share: its
    // notices are taken only once it has been alive here for a while (they come late, from its gossip cache)
    if (author !== undefined && (author.state !== 'alive' || this.now() - author.backAt < NOTICE_AFTER_REJOIN_MS)) return undefined
    const by = author?.name ?? n.by
    if (n.kind === 'suspect' && m.state === 'alive') return this.transition(m, 'suspect', `suspected by ${by}`)
    if (n.kind === 'suspect' && m.state === 'suspect') { this.confirm(m.id, n.by); return undefined }
    if (n.kind === 'dead' && (m.state === 'alive' || m.state === 'suspect')) return this.transition(m, 'dead', `declared dead by ${by}`)
    return undefined
  }

  /** A failed direct probe (after a lost connection or missed heartbeats) makes an alive peer suspect. */
  suspect (id: NodeId, reason: string): Transition | undefined {
    const m = this.members.get(id)
    if (m?.state !== 'alive') return undefined
    return this.transition(m, 'suspect', reason)
  }

  /** Declares a suspect dead (indirect probes failed too). */
  declareDead (id: NodeId, reason: string): Transition | undefined {
    const m = this.members.get(id)
    if (m === undefined || (m.state !== 'suspect' && m.state !== 'alive')) return undefined
    return this.transition(m, 'dead', reason)
  }

  /** A probe answered: the peer is reachable, whatever the heartbeats say. */
  onProbeSuccess (id: NodeId, rttMs: number, incarnation?: number): Transition | undefined {
    const m = this.members.get(id)
    if (m === undefined) return undefined
    m.rttMs = rttMs
    m.reachedAt = this.now()
    if (incarnation !== undefined && incarnation > m.incarnation && this.plausibleIncarnation(incarnation)) { m.incarnation = incarnation; m.seq = 0 }
    if (m.state === 'suspect') return this.transition(m, 'alive', 'answered a probe')
    return undefined
  }

  /**
   * Checks the clocks: alive peers silent for too long are returned in `overdue`, for the caller to probe (SWIM: a
   * failed probe, not a late heartbeat, makes a suspect; a peer that answers is alive and not overdue again for
   * another `suspectAfterMs`); suspects past the suspicion timeout become dead; dead and left members past the
   * expiry are removed and returned in `expired`.
   */
  tick (): { overdue: Overdue[], dead: Transition[], expired: MemberView[] } {
    const now = this.now()
    const overdue: Overdue[] = []
    const dead: Transition[] = []
    const expired: MemberView[] = []
    // a large cluster's members are mostly far from their deadlines: the pass runs only when one may have come
    if (now < this.nextCheckAt) return { overdue, dead, expired }
    let next = Infinity
    const live = this.liveCount()
    for (const m of this.members.values()) {
      if (m.state === 'dead' || m.state === 'left') {
        if (now - m.since >= this.expiryMs) {
          expired.push(this.toView(m))
          this.members.delete(m.id)
          this.unplace(m)
        } else next = Math.min(next, m.since + this.expiryMs)
        continue
      }
      if (m.state === 'alive') {
        const due = Math.max(m.lastSeen, m.reachedAt ?? 0) + this.deadlineOf(m)
        if (now > due) overdue.push({ id: m.id, reason: `no heartbeat for ${Math.round((now - m.lastSeen) / 100) / 10}s` })
        next = Math.min(next, due + 1)
      } else if (m.state === 'suspect') {
        const due = m.since + this.suspicionTimeoutFor(m.id, live)
        if (now > due) {
          const confirmed = m.confirmedBy.size > 0 ? `, confirmed by ${m.confirmedBy.size}` : ''
          const t = this.transition(m, 'dead', `suspect for ${Math.round((now - m.since) / 100) / 10}s without refuting${confirmed}`)
          if (t !== undefined) dead.push(t)
        } else next = Math.min(next, due + 1)
      }
    }
    // an overdue member is returned again at every tick until it answers or is suspected, as before
    this.nextCheckAt = overdue.length > 0 || dead.length > 0 ? 0 : next
    return { overdue, dead, expired }
  }

  get (id: NodeId): MemberView | undefined {
    const m = this.members.get(id)
    return m === undefined ? undefined : this.toView(m)
  }

  state (id: NodeId): MemberState | undefined {
    return this.members.get(id)?.state
  }

  incarnation (id: NodeId): number | undefined {
    return this.members.get(id)?.incarnation
  }

  list (): MemberView[] {
    return [...this.members.values()].map(m => this.toView(m))
  }

  /** Removes a member entirely (gridctl nodes forget); a later heartbeat adds it back. */
  forget (id: NodeId): boolean {
    const m = this.members.get(id)
    if (m === undefined) return false
    this.unplace(m)
    this.nextCheckAt = 0
    return this.members.delete(id)
  }

  private applyPayload (m: Member, hb: Heartbeat, now: number): void {
    m.name = hb.name
    m.incarnation = hb.inc
    m.seq = hb.seq
    m.lastSeen = now
    m.load = hb.load
    m.version = hb.ver
    m.selfState = hb.state === 'left' ? 'leaving' : hb.state
    m.paused = hb.paused === true
    if (hb.iv !== undefined) m.intervalMs = Math.min(HEARTBEAT_INTERVAL_MAX_MS, hb.iv)
    else delete m.intervalMs
    this.nextCheckAt = Math.min(this.nextCheckAt, now + this.deadlineOf(m))
    if (hb.health !== undefined) {
      const h: HealthReport = { health: hb.health.s, reason: hb.health.r, since: hb.health.since, breaker: hb.health.br }
      if (m.health?.health !== h.health) {
        m.healthHistory.push({ health: h.health, at: now, reason: h.reason })
        if (m.healthHistory.length > this.historyLength) m.healthHistory.splice(0, m.healthHistory.length - this.historyLength)
      }
      m.health = h
    }
  }

  /** Records one direct probe of a member (routine or investigating), for `gridctl health NODE`. */
  recordProbe (id: NodeId, ok: boolean, rttMs?: number): void {
    const m = this.members.get(id)
    if (m === undefined) return
    m.probes.push({ at: this.now(), rttMs: ok && rttMs !== undefined ? Math.round(rttMs * 1000) / 1000 : null, ok })
    if (m.probes.length > PROBE_LOG_LENGTH) m.probes.splice(0, m.probes.length - PROBE_LOG_LENGTH)
  }

  probes (id: NodeId): Member['probes'] {
    return [...(this.members.get(id)?.probes ?? [])]
  }

  private transition (m: Member, to: MemberState, reason: string): Transition | undefined {
    if (m.state === to) return undefined
    const from = m.state
    m.state = to
    m.since = this.now()
    if (to === 'suspect') m.confirmedBy.clear()
    if (to === 'alive' && (from === 'suspect' || from === 'dead')) m.backAt = m.since
    this.place(m)
    this.nextCheckAt = 0
    this.record(m, to, reason)
    return { id: m.id, from, to, reason, incarnation: m.incarnation }
  }

  private record (m: Member, state: MemberState, reason: string): void {
    this.lastChangeAt = this.now()
    m.history.push({ state, at: this.now(), reason })
    if (m.history.length > this.historyLength) m.history.splice(0, m.history.length - this.historyLength)
  }

  private toView (m: Member): MemberView {
    const v: MemberView = {
      id: m.id,
      name: m.name,
      state: m.state,
      selfState: m.selfState,
      incarnation: m.incarnation,
      lastSeen: m.lastSeen,
      since: m.since,
      history: [...m.history]
    }
    if (m.load !== undefined) v.load = m.load
    if (m.version !== undefined) v.version = m.version
    if (m.rttMs !== undefined) v.rttMs = m.rttMs
    if (m.health !== undefined) v.health = m.health
    if (m.paused === true) v.paused = true
    if (m.healthHistory.length > 0) v.healthHistory = [...m.healthHistory]
    return v
  }
}
