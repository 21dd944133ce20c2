/**
 * SWIM probing: a routine probe of one connected member each protocol period, the investigation of a peer that fell
 * silent or dropped its connection (a direct probe, then k others asked to probe it), and the indirect probes this
 * node serves for others. It answers member.ping with this node's incarnation and state.
 */
import type { Logger } from 'pino'
import { MemberPing, MemberProbe, type Notice, type ProbeResponse } from '../../proto/index.ts'
import { toGridError, type NodeId, type SelfState } from '../interface/index.ts'
import { INDIRECT_PROBE_SLACK_MS } from './constants.ts'
import type { FailureDetector, Transition } from './detector.ts'
import type { MembershipMetrics } from './membership-metrics.ts'
import { classifyProbeError, type ProbeFailure, type ProbeOutcome } from './probe-outcome.ts'
import { nextProbeAt, probePhase, probeTarget } from './schedule.ts'
import type { MembershipMesh } from './types.ts'

export interface ProberComponents {
  mesh: Pick<MembershipMesh, 'rpc' | 'isConnected'>
  logger: Logger
  detector: FailureDetector
  metrics: MembershipMetrics
  /** Probe deadlines stretch by its multiplier while this node is slow. */
  health: { readonly multiplier: number }
  /** What member.ping answers. */
  self: { readonly incarnation: number, readonly selfState: SelfState }
  /** Told every state change a probe caused. */
  announce: (t: Transition) => void
  /** Gossips a suspicion or death this node found itself. */
  notify: (kind: Notice['kind'], t: Transition) => Promise<void>
}

export interface ProberInit {
  /** One protocol period: how often a routine probe goes out. */
  heartbeatIntervalMs: number
  probeTimeoutMs: number
  indirectProbes: number
}

export class Prober {
  private readonly log: Logger
  private readonly investigating = new Set<NodeId>()
  private running = false
  private timer?: ReturnType<typeof setTimeout>
  /** A routine probe still waiting for its answer: the next period's is skipped (a slow node probes less). */
  private routineInFlight = false
  private readonly phase: number

  constructor (private readonly components: ProberComponents, private readonly init: ProberInit) {
    this.log = components.logger
    this.phase = probePhase(components.detector.selfId)
    const rpc = components.mesh.rpc
    rpc.handle(MemberPing, () => ({ inc: components.self.incarnation, state: components.self.selfState }))
    rpc.handle(MemberProbe, async req => await this.probeFor(req.target, req.timeoutMs))
  }

  start (): void {
    this.running = true
    this.schedule()
  }

  stop (): void {
    this.running = false
    clearTimeout(this.timer)
  }

  /** The next routine probe, at this node's phase of the next protocol period on the wall clock (schedule.ts). */
  private schedule (): void {
    if (!this.running) return
    const now = Date.now()
    const { at, period } = nextProbeAt(now, this.init.heartbeatIntervalMs, this.phase)
    this.timer = setTimeout(() => {
      this.schedule()
      if (this.routineInFlight) return
      this.routineInFlight = true
      this.routineProbe(period).catch(err => { this.log.error({ err }, 'membership loop failed') }).finally(() => { this.routineInFlight = false })
    }, at - now)
    this.timer.unref?.()
  }

  private get timeoutMs (): number { return this.init.probeTimeoutMs * this.components.health.multiplier }

  /**
   * SWIM's protocol period: each period, probe the member the rotation names (schedule.ts: while views agree, every
   * member is probed by exactly one other each period, and each node visits every member in turn). This is what
   * finds a silent member in a large cluster, whose heartbeats are far apart; it also measures the round trip shown
   * by `health`, and notices a frozen peer on the long-lived stream even if gossip still flows.
   */
  private async routineProbe (period: number): Promise<void> {
    const { detector, mesh, metrics } = this.components
    const id = probeTarget(detector.ring, detector.selfId, period)
    if (id === undefined || this.investigating.has(id) || detector.state(id) !== 'alive' || !mesh.isConnected(id)) return
    const sentAt = Date.now()
    const r = await this.probe(id, this.timeoutMs)
    detector.recordProbe(id, r.ok, r.ok ? r.rttMs : undefined)
    metrics.probes.inc({ kind: 'routine', outcome: r.ok ? 'ok' : r.reason })
    if (r.ok) {
      metrics.probeRtt.observe(r.rttMs / 1000)
      detector.onProbeSuccess(id, r.rttMs, r.inc)
    } else if ((detector.get(id)?.lastSeen ?? 0) >= sentAt) {
      // its heartbeats still arrive (a slow stream, a node starting up): probe it once more before suspecting it
      void this.investigate(id, `routine probe: ${r.detail}; heartbeats still arriving`)
    } else {
      // silent on both paths: this was a direct probe with the investigation's deadline, so it goes straight on to
      // suspicion and helpers (a frozen node stops heartbeating, so it always takes this way)
      void this.investigate(id, 'routine probe', r)
    }
  }

  /**
   * Probes a peer directly (unless `failed`, a direct probe that just went unanswered, is given); if that fails the
   * peer is suspected and k others are asked to probe it. If one of them reaches it, it stays alive; each that
   * answers that it could not reach it either confirms the suspicion, which shortens its timeout (Lifeguard). If every
   * prober, this one included, got "connection refused" (the process is gone but its host answers), it is declared
   * dead at once; otherwise the suspicion timeout decides.
   */
  async investigate (id: NodeId, trigger: string, failed?: ProbeFailure): Promise<void> {
    if (!this.running || this.investigating.has(id)) return
    const { detector, metrics, announce, notify } = this.components
    this.investigating.add(id)
    try {
      const direct = failed ?? await this.probe(id, this.timeoutMs)
      if (failed === undefined) {
        detector.recordProbe(id, direct.ok, direct.ok ? direct.rttMs : undefined)
        metrics.probes.inc({ kind: 'direct', outcome: direct.ok ? 'ok' : direct.reason })
      }
      if (direct.ok) {
        metrics.probeRtt.observe(direct.rttMs / 1000)
        const t = detector.onProbeSuccess(id, direct.rttMs, direct.inc)
        if (t !== undefined) announce(t)
        return
      }
      const t = detector.suspect(id, `${trigger}; direct probe: ${direct.detail}`)
      if (t !== undefined) {
        metrics.suspicions.inc({ source: 'local' })
        announce(t)
        void notify('suspect', t)
      }
      if (detector.state(id) !== 'suspect') return
      const helpers = this.pickHelpers(id, this.init.indirectProbes)
      const results = await Promise.all(helpers.map(async h => {
        const r = await this.askToProbe(h, id)
        // a helper that answered "unreachable" is an independent confirmation; one that did not answer is not
        if (!r.ok && r.answered) detector.confirm(id, h)
        return r
      }))
      const reached = results.find(r => r.ok)
      if (reached !== undefined) {
        // the helper's word on the target's incarnation is not taken: only the target itself speaks for that
        const t = detector.onProbeSuccess(id, reached.rttMs ?? 0)
        if (t !== undefined) announce(t)
        return
      }
      if (direct.reason === 'refused' && results.every(r => r.reason === 'refused')) {
        const t = detector.declareDead(id, `connection refused to this node${helpers.length > 0 ? ` and to ${helpers.length} other${helpers.length > 1 ? 's' : ''}` : ''}`)
        if (t !== undefined) {
          metrics.deaths.inc({ source: 'local' })
          announce(t)
          void notify('dead', t)
        }
      }
    } catch (err) {
      this.log.error({ err, peer: id }, 'probe sequence failed')
    } finally {
      this.investigating.delete(id)
    }
  }

  /** k connected alive members other than the target, drawn at random from the ring (no pass over the table). */
  private pickHelpers (target: NodeId, k: number): NodeId[] {
    const { detector, mesh } = this.components
    const ring = detector.ring
    const picked: NodeId[] = []
    const ok = (id: NodeId): boolean => id !== target && id !== detector.selfId && !picked.includes(id) && detector.state(id) === 'alive' && mesh.isConnected(id)
    for (let tries = 0; picked.length < k && tries < k * 8; tries++) {
      const id = ring.at(Math.floor(Math.random() * ring.size))
      if (id !== undefined && ok(id)) picked.push(id)
    }
    // a small or mostly unreachable ring: take the rest in order, from a random start
    if (picked.length < k && ring.size > 0) {
      const start = Math.floor(Math.random() * ring.size)
      for (let i = 0; i < ring.size && picked.length < k; i++) {
        const id = ring.at((start + i) % ring.size) as NodeId
        if (ok(id)) picked.push(id)
      }
    }
    return picked
  }

  private async askToProbe (helper: NodeId, target: NodeId): Promise<ProbeResponse & { answered: boolean }> {
    const { mesh, metrics } = this.components
    const timeoutMs = this.timeoutMs
    try {
      const r = await mesh.rpc.request(helper, MemberProbe, { target, timeoutMs }, { timeoutMs: timeoutMs * 2 + INDIRECT_PROBE_SLACK_MS })
      metrics.probes.inc({ kind: 'indirect', outcome: r.ok ? 'ok' : (r.reason ?? 'failed') })
      return { ...r, answered: true }
    } catch (err) {
      metrics.probes.inc({ kind: 'indirect', outcome: 'helper-failed' })
      return { ok: false, reason: `helper ${helper} did not answer (${toGridError(err).code})`, answered: false }
    }
  }

  /** Serves an indirect probe for another member. */
  private async probeFor (target: NodeId, timeoutMs: number): Promise<ProbeResponse> {
    const r = await this.probe(target, timeoutMs)
    return r.ok ? { ok: true, rttMs: r.rttMs, inc: r.inc } : { ok: false, reason: r.reason }
  }

  private async probe (id: NodeId, timeoutMs: number): Promise<ProbeOutcome> {
    for (let attempt = 0; ; attempt++) {
      const started = performance.now()
      try {
        const r = await this.components.mesh.rpc.request(id, MemberPing, {}, { timeoutMs })
        return { ok: true, rttMs: performance.now() - started, inc: r.inc }
      } catch (err) {
        const outcome = classifyProbeError(err)
        // a stream that closed under us says nothing yet: try once more on a fresh connection
        if (outcome.reason === 'unreachable' && outcome.streamClosed && attempt === 0) continue
        return outcome
      }
    }
  }
}
