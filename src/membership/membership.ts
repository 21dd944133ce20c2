/**
 * The membership service: gossips this node's heartbeat, listens to everyone else's, probes peers that fall silent
 * or drop their connection, asks a few others to probe before declaring a peer dead, spreads suspicion and death
 * notices, and refutes notices about itself.
 */
import { EventEmitter } from 'node:events'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  HEARTBEAT_MAX_BYTES, MemberPing, MemberProbe, WIRE_VERSION, decode, encode, heartbeatTopic, membershipMessage,
  type Heartbeat, type MembershipMessage, type Notice, type ProbeResponse
} from '../../proto/index.ts'
import {
  MEMBER_STATES, toGridError, type LoadReport, type MemberView, type NodeId, type SelfState, type Startable
} from '../interface/index.ts'
import type { GossipVerdict, Mesh } from '../mesh/index.ts'
import { delay, repeat } from '../util/index.ts'
import { FailureDetector, type Transition } from './detector.ts'

export interface MembershipInit {
  cluster: string
  name: string
  version: string
  heartbeatIntervalMs: number
  suspectAfterMissed: number
  probeTimeoutMs: number
  indirectProbes: number
  suspicionTimeoutMs: number
}

export interface MembershipComponents {
  mesh: Mesh
  logger: Logger
  registry: Registry
  /** This node's current load, for its heartbeats. */
  load: () => LoadReport
}

export interface MembershipEvents {
  'member:state': [Transition]
}

type ProbeOutcome = { ok: true, rttMs: number, inc: number } | { ok: false, reason: 'refused' | 'timeout' | 'unreachable', detail: string }

/** How long a leaving node waits after announcing `left`, so the announcement gets out before connections close. */
const LEAVE_FLUSH_MS = 250
/** An interval whose event-loop delay p99 exceeds this counts as "slow" for local health. */
const SLOW_LOOP_MS = 200
/** Deadlines stretch at most (1 + HEALTH_MAX) times, as in Lifeguard. */
const HEALTH_MAX = 8

export class Membership extends EventEmitter<MembershipEvents> implements Startable {
  readonly detector: FailureDetector
  private readonly log: Logger
  private readonly topic: string
  private readonly investigating = new Set<NodeId>()
  private incarnation = Math.floor(Date.now() / 1000)
  private seq = 0
  private selfState: SelfState = 'alive'
  private lastSent = 0
  private heartbeatLoop?: { stop: () => void }
  private tickLoop?: { stop: () => void }
  private healthLoop?: { stop: () => void }
  /** Lifeguard's local health score: 0 when this node keeps up, up to HEALTH_MAX while it is slow. */
  private health = 0
  private lag?: ReturnType<typeof monitorEventLoopDelay>
  private probeLoop?: { stop: () => void }
  private probeOrder: NodeId[] = []
  private running = false
  private readonly m: {
    heartbeatsSent: Counter
    heartbeatsReceived: Counter
    invalid: Counter
    suspicions: Counter<'source'>
    deaths: Counter<'source'>
    refutations: Counter
    probes: Counter<'kind' | 'outcome'>
    probeRtt: Histogram
    transitions: Counter<'to'>
    localHealth: Gauge
  }

  constructor (private readonly components: MembershipComponents, private readonly init: MembershipInit) {
    super()
    this.log = components.logger
    this.topic = heartbeatTopic(init.cluster)
    this.detector = new FailureDetector(components.mesh.peerId, {
      heartbeatIntervalMs: init.heartbeatIntervalMs,
      suspectAfterMissed: init.suspectAfterMissed,
      suspicionTimeoutMs: init.suspicionTimeoutMs
    })
    const r = components.registry
    const detector = this.detector
    new Gauge({
      name: 'grid_membership_peers',
      help: 'Known peers by state (this node not included)',
      labelNames: ['state'],
      registers: [r],
      collect () {
        const counts = Object.fromEntries(MEMBER_STATES.map(s => [s, 0])) as Record<string, number>
        for (const v of detector.list()) counts[v.state] = (counts[v.state] ?? 0) + 1
        for (const s of MEMBER_STATES) this.set({ state: s }, counts[s] ?? 0)
      }
    })
    const selfName = init.name
    new Gauge({
      name: 'grid_node_health_score',
      help: 'Health of each known node as this node sees it: 1 alive, 0.5 suspect, 0 dead or left (this node included)',
      labelNames: ['peer', 'peer_id'],
      registers: [r],
      collect () {
        this.reset()
        this.set({ peer: selfName, peer_id: components.mesh.peerId }, 1)
        for (const v of detector.list()) this.set({ peer: v.name, peer_id: v.id }, v.state === 'alive' ? 1 : v.state === 'suspect' ? 0.5 : 0)
      }
    })
    this.m = {
      heartbeatsSent: new Counter({ name: 'grid_membership_heartbeats_sent_total', help: 'Heartbeats published', registers: [r] }),
      heartbeatsReceived: new Counter({ name: 'grid_membership_heartbeats_received_total', help: 'Heartbeats received from peers', registers: [r] }),
      invalid: new Counter({ name: 'grid_membership_invalid_messages_total', help: 'Membership messages dropped as invalid', registers: [r] }),
      suspicions: new Counter({ name: 'grid_membership_suspicions_total', help: 'Peers this node began to suspect, by source (local: its own evidence; notice: another member)', labelNames: ['source'], registers: [r] }),
      deaths: new Counter({ name: 'grid_membership_deaths_total', help: 'Peers this node marked dead, by source', labelNames: ['source'], registers: [r] }),
      refutations: new Counter({ name: 'grid_membership_refutations_total', help: 'Suspicions or death notices about this node that it refuted', registers: [r] }),
      probes: new Counter({ name: 'grid_membership_probes_total', help: 'Probes sent, by kind (direct, indirect) and outcome', labelNames: ['kind', 'outcome'], registers: [r] }),
      probeRtt: new Histogram({ name: 'grid_membership_probe_rtt_seconds', help: 'Round trip of successful direct probes', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: [r] }),
      localHealth: new Gauge({ name: 'grid_membership_local_health', help: 'How much this node stretches its failure-detection deadlines because it is itself slow (1 = keeps up; Lifeguard local health)', registers: [r], collect: () => { this.m.localHealth.set(this.healthMultiplier) } }),
      transitions: new Counter({ name: 'grid_membership_transitions_total', help: 'Membership state changes seen by this node, by new state', labelNames: ['to'], registers: [r] })
    }
    // series exist from the start (at 0), so rates and dashboards work before the first event
    for (const source of ['local', 'notice']) { this.m.suspicions.inc({ source }, 0); this.m.deaths.inc({ source }, 0) }
    for (const to of MEMBER_STATES) this.m.transitions.inc({ to }, 0)
    const mesh = components.mesh
    mesh.subscribe(this.topic, (data, from) => { this.onMessage(data, from) }, (data, from) => this.validate(data, from))
    mesh.rpc.handle(MemberPing, () => ({ inc: this.incarnation, state: this.selfState }))
    mesh.rpc.handle(MemberProbe, async req => await this.probeFor(req.target, req.timeoutMs))
  }

  async start (): Promise<void> {
    this.running = true
    const mesh = this.components.mesh
    mesh.on('peer:disconnect', this.onDisconnect)
    mesh.on('peer:connect', this.onConnect)
    const onError = (err: unknown): void => { this.log.error({ err }, 'membership loop failed') }
    this.heartbeatLoop = repeat(async () => { await this.sendHeartbeat() }, this.init.heartbeatIntervalMs, onError, { jitter: 0.05, immediate: true })
    this.tickLoop = repeat(() => { this.tick() }, Math.max(50, Math.round(this.init.heartbeatIntervalMs / 4)), onError, { jitter: 0.1 })
    this.probeLoop = repeat(async () => { await this.routineProbe() }, this.init.heartbeatIntervalMs, onError, { jitter: 0.2 })
    this.lag = monitorEventLoopDelay({ resolution: 20 })
    this.lag.enable()
    this.healthLoop = repeat(() => { this.assessHealth() }, this.init.heartbeatIntervalMs, onError)
  }

  /** 1 while this node keeps up; more while it is slow: its probe and suspicion deadlines stretch by this much. */
  get healthMultiplier (): number { return 1 + this.health }

  /**
   * Local health (Lifeguard): a node whose own event loop lags (an overloaded machine, a long GC) handles heartbeats
   * and probe answers late, and would suspect healthy peers. Each interval with a lagging loop raises the score by
   * one (as does having to refute a suspicion about itself); each interval that keeps up lowers it by one.
   */
  private assessHealth (): void {
    if (this.lag === undefined) return
    const lagMs = this.lag.percentile(99) / 1e6
    this.lag.reset()
    const before = this.health
    if (lagMs > SLOW_LOOP_MS) this.health = Math.min(HEALTH_MAX, this.health + 1)
    else if (this.health > 0) this.health--
    this.applyHealth(before, `event loop lag p99 ${Math.round(lagMs)}ms`)
  }

  private applyHealth (before: number, why: string): void {
    this.detector.setHealthMultiplier(this.healthMultiplier)
    if (before === 0 && this.health > 0) this.log.warn({ multiplier: this.healthMultiplier, why }, 'this node is slow: stretching its failure-detection deadlines so it does not accuse healthy peers')
    else if (before > 0 && this.health === 0) this.log.info('this node keeps up again: failure-detection deadlines back to normal')
  }

  private get probeTimeoutMs (): number { return this.init.probeTimeoutMs * this.healthMultiplier }

  /** Announces `left` (so peers do not wait for a timeout) and stops gossiping. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.heartbeatLoop?.stop()
    this.tickLoop?.stop()
    this.probeLoop?.stop()
    this.healthLoop?.stop()
    this.lag?.disable()
    this.components.mesh.off('peer:disconnect', this.onDisconnect)
    this.components.mesh.off('peer:connect', this.onConnect)
    try {
      await this.publish(this.heartbeat('left'))
      await delay(LEAVE_FLUSH_MS)
    } catch (err) {
      this.log.warn({ err }, 'could not announce leave')
    }
  }

  /** This node's own state in its heartbeats: draining keeps it alive but takes no new work. */
  setSelfState (state: SelfState): void {
    if (this.selfState === state) return
    this.selfState = state
    if (this.running) void this.sendHeartbeat().catch(() => {})
  }

  getSelfState (): SelfState { return this.selfState }

  /** Every known member, this node first. */
  view (): MemberView[] {
    return [this.selfView(), ...this.detector.list()]
  }

  get (id: NodeId): MemberView | undefined {
    return id === this.components.mesh.peerId ? this.selfView() : this.detector.get(id)
  }

  /** Removes a dead or departed member from the view (gridctl nodes forget). */
  forget (id: NodeId): boolean {
    this.components.mesh.forget(id)
    return this.detector.forget(id)
  }

  private selfView (): MemberView {
    const now = Date.now()
    return {
      id: this.components.mesh.peerId,
      name: this.init.name,
      state: 'alive',
      selfState: this.selfState,
      incarnation: this.incarnation,
      lastSeen: this.lastSent,
      since: now,
      load: this.components.load(),
      version: this.init.version,
      history: []
    }
  }

  private heartbeat (state: Heartbeat['state'] = this.selfState): Heartbeat {
    return {
      t: 'hb',
      id: this.components.mesh.peerId,
      name: this.init.name,
      inc: this.incarnation,
      seq: ++this.seq,
      state,
      load: this.components.load(),
      ver: this.init.version,
      ts: Date.now()
    }
  }

  private async sendHeartbeat (): Promise<void> {
    if (!this.running) return
    await this.publish(this.heartbeat())
    this.lastSent = Date.now()
    this.m.heartbeatsSent.inc()
  }

  private async publish (msg: MembershipMessage): Promise<void> {
    await this.components.mesh.publish(this.topic, encode(msg))
  }

  /**
   * Heartbeats and notices travel through other members (the mesh relays them), so their author is taken on trust
   * among members (the swarm key is the boundary): a stale heartbeat changes nothing (incarnation and sequence), and
   * a false suspicion or death notice is refuted by its subject, which raises its incarnation.
   */
  private validate (data: Uint8Array, _from: NodeId): GossipVerdict {
    if (data.byteLength > HEARTBEAT_MAX_BYTES) { this.m.invalid.inc(); return 'reject' }
    let msg: unknown
    try { msg = decode(data) } catch { this.m.invalid.inc(); return 'reject' }
    if (!membershipMessage.check(msg)) { this.m.invalid.inc(); return 'reject' }
    return 'accept'
  }

  private onMessage (data: Uint8Array, from: NodeId): void {
    const msg = decode(data) as MembershipMessage // validated by validate() before delivery
    if (msg.t === 'hb') {
      this.m.heartbeatsReceived.inc()
      const t = this.detector.onHeartbeat(msg)
      if (t !== undefined) this.announce(t)
      if (msg.state === 'left') this.components.mesh.learn(msg.id, [], { left: true })
      else if (!this.components.mesh.isConnected(msg.id)) this.components.mesh.learn(msg.id)
      return
    }
    this.onNotice(msg, from)
  }

  private onNotice (n: Notice, from: NodeId): void {
    const r = this.detector.onNotice(n)
    if (r === 'refute') {
      if (n.inc < this.incarnation) return // already refuted
      this.incarnation = Math.max(this.incarnation, n.inc) + 1
      this.m.refutations.inc()
      // being suspected is a hint that this node is slow (Lifeguard)
      const before = this.health
      this.health = Math.min(HEALTH_MAX, this.health + 1)
      this.applyHealth(before, `suspected by ${n.by}`)
      this.log.warn({ kind: n.kind, by: n.by, via: from, incarnation: this.incarnation }, 'refuting a notice about this node')
      void this.sendHeartbeat().catch(err => { this.log.warn({ err }, 'refutation heartbeat failed') })
      return
    }
    if (r === undefined) return
    // no probe of our own: the subject refutes if it is alive (one heartbeat reaches everyone), else the suspicion
    // timeout decides; a probe from every receiver would multiply the load by the cluster's size just when a node is
    // slow, and turn one late heartbeat into a storm
    if (r.to === 'suspect') this.m.suspicions.inc({ source: 'notice' })
    if (r.to === 'dead') this.m.deaths.inc({ source: 'notice' })
    this.announce(r)
  }

  private readonly onDisconnect = (peer: NodeId): void => {
    const state = this.detector.state(peer)
    if (state !== 'alive' && state !== 'suspect') return
    // let libp2p finish tearing the connection down, so the probe dials afresh rather than using a dying stream
    setTimeout(() => { void this.investigate(peer, 'connection closed') }, 20).unref()
  }

  private readonly onConnect = (peer: NodeId): void => {
    // a dead or suspect peer that connects is probably back: probe it now rather than wait for its heartbeat
    const state = this.detector.state(peer)
    if (state === 'dead' || state === 'suspect') void this.investigate(peer, 'reconnected')
  }

  private tick (): void {
    const { overdue, dead } = this.detector.tick()
    // late heartbeats on a busy machine are common; a probe that goes unanswered is what makes a suspect
    for (const o of overdue) void this.investigate(o.id, o.reason)
    for (const t of dead) {
      this.m.deaths.inc({ source: 'local' })
      this.announce(t)
      // the connection of a peer this node found dead itself (a frozen process, a lost host) is dropped once the notice
      // is out; if the peer comes back, a dial or its heartbeat says so. A death heard in a notice drops nothing: one
      // forged notice must not cut links, and the subject may still refute through this node
      void this.notify('dead', t).then(async () => {
        if (this.running && this.detector.state(t.id) === 'dead') await this.components.mesh.hangUp(t.id)
      })
    }
  }

  /**
   * SWIM's protocol period: each interval, probe the next connected member in a shuffled round. This measures the
   * round trip shown by `health`, and notices a frozen peer on the long-lived stream even if gossip still flows.
   */
  private async routineProbe (): Promise<void> {
    if (this.probeOrder.length === 0) {
      this.probeOrder = this.detector.list().filter(v => v.state === 'alive' && this.components.mesh.isConnected(v.id)).map(v => v.id)
      shuffle(this.probeOrder)
    }
    const id = this.probeOrder.pop()
    if (id === undefined || this.investigating.has(id) || this.detector.state(id) !== 'alive') return
    const r = await this.probe(id, this.probeTimeoutMs)
    this.m.probes.inc({ kind: 'routine', outcome: r.ok ? 'ok' : r.reason })
    if (r.ok) {
      this.m.probeRtt.observe(r.rttMs / 1000)
      this.detector.onProbeSuccess(id, r.rttMs, r.inc)
    } else {
      void this.investigate(id, `routine probe: ${r.detail}`)
    }
  }

  /**
   * Probes a peer directly; if that fails the peer is suspected and k others are asked to probe it. If one of them
   * reaches it, it stays alive. If every prober, this one included, got "connection refused" (the process is gone but
   * its host answers), it is declared dead at once; otherwise the suspicion timeout decides.
   */
  private async investigate (id: NodeId, trigger: string): Promise<void> {
    if (!this.running || this.investigating.has(id)) return
    this.investigating.add(id)
    try {
      const direct = await this.probe(id, this.probeTimeoutMs)
      this.m.probes.inc({ kind: 'direct', outcome: direct.ok ? 'ok' : direct.reason })
      if (direct.ok) {
        this.m.probeRtt.observe(direct.rttMs / 1000)
        const t = this.detector.onProbeSuccess(id, direct.rttMs, direct.inc)
        if (t !== undefined) this.announce(t)
        return
      }
      const t = this.detector.suspect(id, `${trigger}; direct probe: ${direct.detail}`)
      if (t !== undefined) {
        this.m.suspicions.inc({ source: 'local' })
        this.announce(t)
        void this.notify('suspect', t)
      }
      if (this.detector.state(id) !== 'suspect') return
      const helpers = this.pickHelpers(id, this.init.indirectProbes)
      const results = await Promise.all(helpers.map(async h => await this.askToProbe(h, id)))
      const reached = results.find(r => r.ok)
      if (reached !== undefined) {
        const t = this.detector.onProbeSuccess(id, reached.rttMs ?? 0, reached.inc)
        if (t !== undefined) this.announce(t)
        return
      }
      if (direct.reason === 'refused' && results.every(r => r.reason === 'refused')) {
        const t = this.detector.declareDead(id, `connection refused to this node${helpers.length > 0 ? ` and to ${helpers.length} other${helpers.length > 1 ? 's' : ''}` : ''}`)
        if (t !== undefined) {
          this.m.deaths.inc({ source: 'local' })
          this.announce(t)
          void this.notify('dead', t)
        }
      }
    } catch (err) {
      this.log.error({ err, peer: id }, 'probe sequence failed')
    } finally {
      this.investigating.delete(id)
    }
  }

  private pickHelpers (target: NodeId, k: number): NodeId[] {
    const candidates = this.detector.list()
      .filter(v => v.state === 'alive' && v.id !== target && this.components.mesh.isConnected(v.id))
      .map(v => v.id)
    shuffle(candidates)
    return candidates.slice(0, k)
  }

  private async askToProbe (helper: NodeId, target: NodeId): Promise<ProbeResponse> {
    try {
      const r = await this.components.mesh.rpc.request(helper, MemberProbe, { target, timeoutMs: this.probeTimeoutMs }, { timeoutMs: this.probeTimeoutMs * 2 + 500 })
      this.m.probes.inc({ kind: 'indirect', outcome: r.ok ? 'ok' : (r.reason ?? 'failed') })
      return r
    } catch (err) {
      this.m.probes.inc({ kind: 'indirect', outcome: 'helper-failed' })
      return { ok: false, reason: `helper ${helper} did not answer (${toGridError(err).code})` }
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
        const outcome = classify(err)
        // a stream that closed under us says nothing yet: try once more on a fresh connection
        if (outcome.reason === 'unreachable' && /stream .* closed/.test(outcome.detail) && attempt === 0) continue
        return outcome
      }
    }
  }

  private async notify (kind: Notice['kind'], t: Transition): Promise<void> {
    try {
      await this.publish({ t: 'notice', kind, id: t.id, inc: t.incarnation, by: this.components.mesh.peerId })
    } catch (err) {
      this.log.warn({ err, kind, peer: t.id }, 'could not gossip notice')
    }
  }

  private announce (t: Transition): void {
    this.m.transitions.inc({ to: t.to })
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

function shuffle<T> (a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
}

/** Sorts a failed probe: refused (host up, process gone), timeout (frozen, overloaded or cut off), or unreachable. */
function classify (err: unknown): Extract<ProbeOutcome, { ok: false }> {
  const text: string[] = []
  const walk = (e: unknown, depth: number): void => {
    if (e === null || e === undefined || depth > 5) return
    if (e instanceof Error) {
      text.push(`${e.name}: ${e.message}`, String((e as NodeJS.ErrnoException).code ?? ''))
      walk((e as Error & { cause?: unknown }).cause, depth + 1)
      for (const sub of (e as Error & { errors?: unknown[] }).errors ?? []) walk(sub, depth + 1)
    }
  }
  walk(err, 0)
  const all = text.join(' | ')
  const detail = (err as Error).message ?? String(err)
  if (/ECONNREFUSED/.test(all)) return { ok: false, reason: 'refused', detail: 'connection refused' }
  if (toGridError(err).code === 'TIMEOUT' || /TimeoutError|timed out|aborted/i.test(all)) return { ok: false, reason: 'timeout', detail: 'no answer in time' }
  return { ok: false, reason: 'unreachable', detail }
}
