/**
 * SWIM probing: a routine probe of one connected member each protocol period, the investigation of a peer that fell
 * silent or dropped its connection (a direct probe, then k others asked to probe it), and the indirect probes this
 * node serves for others. It answers member.ping with this node's incarnation and state.
 */
import type { Logger } from 'pino'
import { MemberPing, MemberProbe, type Notice, type ProbeResponse } from '../../proto/index.ts'
import { toGridError, type NodeId, type SelfState } from '../interface/index.ts'
import { repeat } from '../util/index.ts'
import { INDIRECT_PROBE_SLACK_MS, PROBE_JITTER } from './constants.ts'
import type { FailureDetector, Transition } from './detector.ts'
import type { MembershipMetrics } from './membership-metrics.ts'
import { classifyProbeError, type ProbeFailure, type ProbeOutcome } from './probe-outcome.ts'
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
  private order: NodeId[] = []
  private running = false
  private loop?: { stop: () => void }

  constructor (private readonly components: ProberComponents, private readonly init: ProberInit) {
    this.log = components.logger
    const rpc = components.mesh.rpc
    rpc.handle(MemberPing, () => ({ inc: components.self.incarnation, state: components.self.selfState }))
    rpc.handle(MemberProbe, async req => await this.probeFor(req.target, req.timeoutMs))
  }

  start (): void {
    this.running = true
    this.loop = repeat(async () => { await this.routineProbe() }, this.init.heartbeatIntervalMs, err => { this.log.error({ err }, 'membership loop failed') }, { jitter: PROBE_JITTER })
  }

  stop (): void {
    this.running = false
    this.loop?.stop()
  }

  private get timeoutMs (): number { return this.init.probeTimeoutMs * this.components.health.multiplier }

  /**
   * SWIM's protocol period: each interval, probe the next connected member in a shuffled round. This measures the
   * round trip shown by `health`, and notices a frozen peer on the long-lived stream even if gossip still flows.
   */
  private async routineProbe (): Promise<void> {
    const { detector, mesh, metrics } = this.components
    if (this.order.length === 0) {
      this.order = detector.list().filter(v => v.state === 'alive' && mesh.isConnected(v.id)).map(v => v.id)
      shuffle(this.order)
    }
    const id = this.order.pop()
    if (id === undefined || this.investigating.has(id) || detector.state(id) !== 'alive') return
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

  private pickHelpers (target: NodeId, k: number): NodeId[] {
    const candidates = this.components.detector.list()
      .filter(v => v.state === 'alive' && v.id !== target && this.components.mesh.isConnected(v.id))
      .map(v => v.id)
    shuffle(candidates)
    return candidates.slice(0, k)
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

function shuffle<T> (a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
}
