/**
 * The mesh: our libp2p node and how it finds and keeps its peers.
 *
 * - Bootstrap addresses only need to reach one member; they are retried with backoff until one answers.
 * - Every member provides a rendezvous key on the private DHT and periodically looks up the other providers.
 * - Peers learned from the DHT, from other modules (heartbeats, the registry) or from `join` are dialled gradually:
 *   a few at a time, with jitter and per-peer backoff, up to the connection cap.
 */
import { EventEmitter } from 'node:events'
import type { Message } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { parsePeerId } from './peer-id-cache.ts'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import { rendezvousKey } from '../../proto/index.ts'
import { HINTS, InvalidArgumentError, PeerUnreachableError, type NodeId, type Startable } from '../interface/index.ts'
import { LogLimiter, backoffMs, jitter, repeat } from '../util/index.ts'
import { explainListenError } from './listen-error.ts'
import { InboundGuard } from './inbound-guard.ts'
import { PeerConduct } from './misbehaviour.ts'
import { createMeshNode, type MeshLibp2p } from './node.ts'
import { RpcService } from './rpc.ts'
import type { SwarmKey } from './swarm-key.ts'

export interface MeshInit {
  cluster: string
  listen: string[]
  announce: string[]
  bootstrap: string[]
  maxConnections: number
  dialConcurrency: number
  rendezvousIntervalMs: number
  privateKey: PrivateKey
  /** null only in the insecure lab mode */
  swarmKey: SwarmKey | null
  version: string
}

export interface MeshComponents {
  logger: Logger
  registry: Registry
}

export interface MeshEvents {
  'peer:connect': [NodeId]
  'peer:disconnect': [NodeId]
}

/**
 * Who a gossip message comes from. `author` is the peer that signed it (gossipsub's StrictSign: the library checked
 * the signature, so no relay can forge it); `via` is the peer that delivered it to us: the author, or a member
 * relaying it.
 */
export interface GossipSource { author: NodeId, via: NodeId }
export type GossipHandler = (data: Uint8Array, from: GossipSource) => void
/**
 * Decides a gossip message's fate: `accept` (deliver and forward), `ignore` (neither, no penalty: a relayed copy
 * we only take first-hand) or `reject` (neither, and the sender is penalised: it is malformed).
 */
export type GossipVerdict = 'accept' | 'ignore' | 'reject'
export type GossipValidator = (data: Uint8Array, from: GossipSource) => GossipVerdict

interface KnownPeer {
  attempts: number
  nextAttemptAt: number
  dialing: boolean
  /** It said it left: still dialled, slowly, so that a cluster stopped and started again in any order finds itself. */
  left: boolean
  /** A bootstrap peer from the config: never forgotten, dialled until connected whatever else we are connected to. */
  pinned: boolean
  /** When its last connection closed (epoch ms; 0 if never connected in this process). */
  lostAt: number
}

/** How often the dial loop looks at known-but-unconnected peers and the bootstrap list. */
const MAINTAIN_INTERVAL_MS = 1_000
/** Backoff between dials of a peer that failed: from 1 s up to 60 s (dead peers are retried slowly, to heal partitions). */
const REDIAL_BASE_MS = 1_000
const REDIAL_CAP_MS = 60_000
/** A member that left is dialled with backoff up to 5 min: cheap (a refused dial), and it heals a whole-cluster restart. */
const LEFT_REDIAL_CAP_MS = 300_000
/**
 * A peer lost in the last RECENT_LOSS_WINDOW_MS, or any peer while this process is in its own first such window (a
 * start, or a whole cluster restarting in any order), is retried at most RECENT_REDIAL_CAP_MS apart: a partition that
 * heals or a member that restarts is found within seconds rather than after a grown backoff (12.9 s to converge after
 * a healed partition, 37.6 s for a whole restart of 8, before). Past the window, the slow caps above apply.
 */
const RECENT_LOSS_WINDOW_MS = 60_000
const RECENT_REDIAL_CAP_MS = 3_000
const DIAL_TIMEOUT_MS = 6_000
const RENDEZVOUS_TIMEOUT_MS = 10_000
const RENDEZVOUS_SETTLE_MS = 60_000
const RENDEZVOUS_SETTLED_FACTOR = 6

export class Mesh extends EventEmitter<MeshEvents> implements Startable {
  readonly peerId: NodeId
  readonly rpc: RpcService
  private readonly log: Logger
  private readonly known = new Map<NodeId, KnownPeer>()
  private readonly handlers = new Map<string, { handler: GossipHandler, validate: GossipValidator }>()
  private readonly bootstrap: Multiaddr[]
  private readonly limiter = new LogLimiter(60_000)
  private bootstrapAttempts = 0
  private bootstrapNextAt = 0
  private dialsInFlight = 0
  private maintainLoop?: { stop: () => void }
  private rendezvousLoop?: { stop: () => void }
  private rendezvousCid?: CID
  private startedAt = 0
  private lastRendezvousAt = 0
  private stopping = false
  private readonly metrics: {
    connections: Gauge
    dials: Counter<'kind' | 'outcome'>
    gossipIn: Counter<'topic'>
    gossipOut: Counter<'topic'>
    gossipRejected: Counter<'topic'>
    handshakeFailures: Counter<'direction'>
  }

  private constructor (private readonly libp2p: MeshLibp2p, private readonly components: MeshComponents, private readonly init: MeshInit, private readonly conduct: PeerConduct) {
    super()
    this.log = components.logger
    this.peerId = libp2p.peerId.toString()
    this.rpc = new RpcService({ libp2p, logger: components.logger.child({ component: 'rpc' }), registry: components.registry, misbehaved: (p, reason) => { conduct.strike(p, reason) } })
    this.bootstrap = init.bootstrap.map(a => multiaddr(a)).filter(a => a.getComponents().find(c => c.name === 'p2p')?.value !== this.peerId)
    const r = components.registry
    this.metrics = {
      connections: new Gauge({ name: 'grid_mesh_connections', help: 'Open peer connections', registers: [r], collect: () => { this.metrics.connections.set(this.libp2p.getConnections().length) } }),
      dials: new Counter({ name: 'grid_mesh_dials_total', help: 'Dials by kind (bootstrap, peer, join) and outcome', labelNames: ['kind', 'outcome'], registers: [r] }),
      gossipIn: new Counter({ name: 'grid_mesh_gossip_received_bytes_total', help: 'Gossip payload bytes received, by topic', labelNames: ['topic'], registers: [r] }),
      gossipOut: new Counter({ name: 'grid_mesh_gossip_sent_bytes_total', help: 'Gossip payload bytes published, by topic', labelNames: ['topic'], registers: [r] }),
      gossipRejected: new Counter({ name: 'grid_mesh_gossip_rejected_total', help: 'Gossip messages not delivered (invalid, or relayed copies taken only first-hand), by topic', labelNames: ['topic'], registers: [r] }),
      handshakeFailures: new Counter({ name: 'grid_mesh_handshake_failures_total', help: 'Connections whose upgrade failed (wrong swarm key, not a grid node), by direction', labelNames: ['direction'], registers: [r] })
    }
  }

  static async create (components: MeshComponents, init: MeshInit): Promise<Mesh> {
    let mesh: Mesh | undefined
    const conduct = new PeerConduct({ log: components.logger.child({ component: 'mesh' }), registry: components.registry, hangUp: async p => { await mesh?.hangUp(p) } })
    const libp2p = await createMeshNode({
      privateKey: init.privateKey,
      psk: init.swarmKey?.psk ?? null,
      listen: init.listen,
      announce: init.announce,
      maxConnections: init.maxConnections,
      version: init.version,
      onUpgradeFailure: info => mesh?.onUpgradeFailure(info),
      inboundGuard: new InboundGuard(components.logger.child({ component: 'mesh' })),
      conduct
    })
    mesh = new Mesh(libp2p, components, init, conduct)
    return mesh
  }

  async start (): Promise<void> {
    this.stopping = false
    this.libp2p.addEventListener('peer:connect', this.onConnect)
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.services.pubsub.addEventListener('gossipsub:message', this.onGossip)
    try {
      await this.libp2p.start()
    } catch (err) {
      throw explainListenError(err) ?? err
    }
    await this.rpc.start()
    for (const topic of this.handlers.keys()) this.libp2p.services.pubsub.subscribe(topic)
    // bootstrap peers stay dialled until connected even once we know others: a cluster whose members all restarted
    // must not settle into islands that never dial the node the config names
    for (const ma of this.bootstrap) {
      const id = ma.getComponents().find(c => c.name === 'p2p')?.value
      if (id !== undefined) this.learn(id, [ma.toString()], { pinned: true })
    }
    this.rendezvousCid = CID.create(1, raw.code, await sha256.digest(new TextEncoder().encode(rendezvousKey(this.init.cluster))))
    const onError = (err: unknown): void => { this.log.error({ err }, 'mesh maintenance failed') }
    this.maintainLoop = repeat(() => { this.maintain() }, MAINTAIN_INTERVAL_MS, onError, { immediate: true })
    this.startedAt = Date.now()
    this.rendezvousLoop = repeat(async () => { if (this.rendezvousDue()) await this.rendezvous() }, this.init.rendezvousIntervalMs, onError, { jitter: 0.2 })
    this.log.info({ peerId: this.peerId, addrs: this.addrs(), swarmKey: this.init.swarmKey?.fingerprint ?? 'none (insecure lab mode)' }, 'mesh started')
  }

  async stop (): Promise<void> {
    this.stopping = true
    this.maintainLoop?.stop()
    this.rendezvousLoop?.stop()
    await this.rpc.stop()
    this.libp2p.removeEventListener('peer:connect', this.onConnect)
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.services.pubsub.removeEventListener('gossipsub:message', this.onGossip)
    await this.libp2p.stop()
  }

  /** Our addresses as others should dial them: full multiaddrs ending in /p2p/<id>. */
  addrs (): string[] {
    return this.libp2p.getMultiaddrs().map(a => a.toString())
  }

  connections (): NodeId[] {
    return this.libp2p.getPeers().map(p => p.toString())
  }

  isConnected (peer: NodeId): boolean {
    return this.libp2p.getConnections(safePeerId(peer)).length > 0
  }

  /** Registers the handler for a gossip topic (before or after start); invalid messages are rejected, not forwarded. */
  subscribe (topic: string, handler: GossipHandler, validate: GossipValidator): void {
    this.handlers.set(topic, { handler, validate })
    const pubsub = this.libp2p.services.pubsub
    pubsub.topicValidators.set(topic, (peer, msg) => {
      // StrictSign: gossipsub drops unsigned messages before this; one that got here unsigned has no author to trust
      const verdict = msg.type === 'signed' ? validate(msg.data, { author: msg.from.toString(), via: peer.toString() }) : 'reject'

      if (verdict !== 'accept') this.metrics.gossipRejected.inc({ topic })
      // an invalid message is the delivering peer's fault (an honest relay validates before it forwards)
      if (verdict === 'reject') this.conduct.strike(peer.toString(), 'gossip-invalid')
      return verdict as never
    })
    if (this.libp2p.status === 'started') pubsub.subscribe(topic)
  }

  async publish (topic: string, data: Uint8Array): Promise<void> {
    this.metrics.gossipOut.inc({ topic }, data.byteLength)
    await this.libp2p.services.pubsub.publish(topic, data)
  }

  /** Peers subscribed to a topic that we exchange gossip with directly. */
  topicPeers (topic: string): NodeId[] {
    return this.libp2p.services.pubsub.getSubscribers(topic).map(p => p.toString())
  }

  /**
   * Tells the mesh a member exists (from a heartbeat, the registry, the DHT), with addresses if known: it will be
   * dialled gradually while connections are below the cap.
   */
  learn (peer: NodeId, addrs: string[] = [], how: { left?: boolean, pinned?: boolean } = {}): void {
    if (peer === this.peerId) return
    let id: PeerId
    try { id = parsePeerId(peer) } catch { return }
    if (addrs.length > 0) {
      const mas: Multiaddr[] = []
      for (const a of addrs) { try { mas.push(multiaddr(a)) } catch { /* a bad address from a peer is skipped */ } }
      if (mas.length > 0) void this.libp2p.peerStore.merge(id, { multiaddrs: mas }).catch(() => {})
    }
    const k = this.known.get(peer)
    if (k === undefined) {
      this.known.set(peer, { attempts: 0, nextAttemptAt: Date.now() + jitter(200, 1), dialing: false, left: how.left === true, pinned: how.pinned === true, lostAt: 0 })
    } else {
      k.left = how.left === true
      if (how.pinned === true) k.pinned = true
    }
  }

  /** Stops dialling a member that was removed (gridctl nodes forget); a bootstrap peer from the config stays. */
  forget (peer: NodeId): void {
    if (this.known.get(peer)?.pinned !== true) this.known.delete(peer)
  }

  /** Closes every connection to a peer (declared dead); it stays known, so it is dialled again with backoff. */
  async hangUp (peer: NodeId): Promise<void> {
    let id: PeerId
    try { id = parsePeerId(peer) } catch { return }
    await this.libp2p.hangUp(id).catch(() => {})
  }

  /** Dials the given addresses now (gridctl join); resolves with what connected and what did not. */
  async join (addrs: string[], signal?: AbortSignal): Promise<{ connected: NodeId[], failed: Array<{ addr: string, error: string }> }> {
    const connected: NodeId[] = []
    const failed: Array<{ addr: string, error: string }> = []
    await Promise.all(addrs.map(async a => {
      let ma: Multiaddr
      try { ma = multiaddr(a) } catch (err) { throw new InvalidArgumentError(`${a} is not a multiaddr (${(err as Error).message})`) }
      try {
        const conn = await this.libp2p.dial(ma, { signal: signal ?? AbortSignal.timeout(DIAL_TIMEOUT_MS) })
        this.metrics.dials.inc({ kind: 'join', outcome: 'ok' })
        connected.push(conn.remotePeer.toString())
        this.learn(conn.remotePeer.toString())
      } catch (err) {
        this.metrics.dials.inc({ kind: 'join', outcome: 'error' })
        failed.push({ addr: a, error: this.explainDialError(err) })
      }
    }))
    return { connected, failed }
  }

  /** Opens a connection to a known member now (used before dispatching work to it). */
  async connect (peer: NodeId, signal?: AbortSignal): Promise<void> {
    if (this.isConnected(peer)) return
    try {
      await this.libp2p.dial(safePeerId(peer), { signal: signal ?? AbortSignal.timeout(DIAL_TIMEOUT_MS) })
    } catch (err) {
      throw new PeerUnreachableError(`cannot connect to ${peer}: ${this.explainDialError(err)}`, { cause: err })
    }
  }

  private readonly onConnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    const k = this.known.get(id)
    if (k !== undefined) { k.attempts = 0; k.nextAttemptAt = 0; k.left = false } else this.known.set(id, { attempts: 0, nextAttemptAt: 0, dialing: false, left: false, pinned: false, lostAt: 0 })
    this.emit('peer:connect', id)
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    const k = this.known.get(id)
    if (k !== undefined) { k.nextAttemptAt = Date.now() + jitter(REDIAL_BASE_MS, 0.5); k.lostAt = Date.now() }
    this.emit('peer:disconnect', id)
  }

  private readonly onGossip = (evt: CustomEvent<{ propagationSource: PeerId, msg: Message }>): void => {
    const { propagationSource, msg } = evt.detail
    const h = this.handlers.get(msg.topic)
    if (h === undefined || msg.type !== 'signed') return
    this.metrics.gossipIn.inc({ topic: msg.topic }, msg.data.byteLength)
    try {
      h.handler(msg.data, { author: msg.from.toString(), via: propagationSource.toString() })
    } catch (err) {
      this.log.error({ err, topic: msg.topic }, 'gossip handler failed')
    }
  }

  /**
   * A connection whose upgrade failed: what a peer with another swarm key looks like from both sides (with pnet, a
   * wrong key turns the Noise handshake into noise). One warn event a minute per remote host, code SWARM_KEY_MISMATCH
   * and the next step in `hint` (the fingerprint to compare).
   */
  private onUpgradeFailure (info: { direction: string, remoteAddr: string, error: string }): void {
    this.metrics.handshakeFailures.inc({ direction: info.direction })
    const host = info.remoteAddr.split('/').slice(0, 3).join('/')
    if (!this.limiter.allow(`upgrade:${host}`)) return
    const fingerprint = this.init.swarmKey?.fingerprint
    this.log.warn({
      code: 'SWARM_KEY_MISMATCH',
      direction: info.direction,
      remoteAddr: info.remoteAddr,
      error: info.error,
      swarmKey: fingerprint ?? 'none',
      hint: fingerprint === undefined
        ? 'start this node with the cluster\'s swarm key (--swarm-key), or run the other one without (--insecure-no-swarm-key, lab only)'
        : `${HINTS.SWARM_KEY_MISMATCH} (this node's fingerprint: ${fingerprint})`
    }, fingerprint === undefined
      ? `a peer at ${host} may use a swarm key, and this node runs without one (logged once a minute per address)`
      : `a peer at ${host} uses a different swarm key, or is not a grid node (logged once a minute per address)`)
  }

  /** One pass of the dial loop: bootstrap while alone, then known members below the connection cap. */
  private maintain (): void {
    if (this.stopping) return
    const now = Date.now()
    const connected = this.libp2p.getConnections().length
    if (this.bootstrap.length > 0 && connected === 0 && now >= this.bootstrapNextAt && this.dialsInFlight === 0) {
      this.bootstrapNextAt = now + backoffMs(this.bootstrapAttempts++, REDIAL_BASE_MS, 30_000)
      for (const ma of this.bootstrap) void this.dialBootstrap(ma)
    }
    const room = Math.max(0, this.init.maxConnections - connected)
    let budget = Math.min(room, this.init.dialConcurrency - this.dialsInFlight)
    if (budget <= 0) return
    for (const [id, k] of this.known) {
      if (budget <= 0) break
      if (k.dialing || now < k.nextAttemptAt || this.isConnected(id)) continue
      budget--
      void this.dialKnown(id, k)
    }
  }

  private async dialBootstrap (ma: Multiaddr): Promise<void> {
    this.dialsInFlight++
    try {
      const conn = await this.libp2p.dial(ma, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      this.bootstrapAttempts = 0
      this.metrics.dials.inc({ kind: 'bootstrap', outcome: 'ok' })
      this.log.info({ addr: ma.toString(), peer: conn.remotePeer.toString() }, 'joined through bootstrap peer')
      // a first member is known: ask the DHT for the rest soon rather than at the next interval
      setTimeout(() => { void this.rendezvous().catch(() => {}) }, jitter(300, 0.5)).unref()
    } catch (err) {
      this.metrics.dials.inc({ kind: 'bootstrap', outcome: 'error' })
      if (this.limiter.allow(`bootstrap:${ma.toString()}`)) {
        this.log.warn({ addr: ma.toString(), reason: this.explainDialError(err) }, 'cannot reach bootstrap peer; retrying with backoff (logged once a minute per address)')
      }
    } finally {
      this.dialsInFlight--
    }
  }

  /** The longest wait before the next dial of a peer that failed (see RECENT_LOSS_WINDOW_MS). */
  private redialCapMs (k: KnownPeer): number {
    const now = Date.now()
    if (now - k.lostAt < RECENT_LOSS_WINDOW_MS || now - this.startedAt < RECENT_LOSS_WINDOW_MS) return RECENT_REDIAL_CAP_MS
    return k.left ? LEFT_REDIAL_CAP_MS : REDIAL_CAP_MS
  }

  private async dialKnown (id: NodeId, k: KnownPeer): Promise<void> {
    k.dialing = true
    this.dialsInFlight++
    try {
      await this.libp2p.dial(safePeerId(id), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      k.attempts = 0
      this.metrics.dials.inc({ kind: 'peer', outcome: 'ok' })
    } catch (err) {
      k.nextAttemptAt = Date.now() + backoffMs(k.attempts++, REDIAL_BASE_MS, this.redialCapMs(k))
      this.metrics.dials.inc({ kind: 'peer', outcome: 'error' })
      this.log.debug({ peer: id, reason: this.explainDialError(err), attempts: k.attempts }, 'dial failed')
    } finally {
      k.dialing = false
      this.dialsInFlight--
    }
  }

  /**
   * Rendezvous runs every interval while this node is settling (its first minute, or while it has at most one
   * connection), then every RENDEZVOUS_SETTLED_FACTOR intervals: a settled member learns newcomers from their
   * heartbeats, and each round costs a DHT put and a lookup against every member.
   */
  private rendezvousDue (): boolean {
    const now = Date.now()
    const settling = now - this.startedAt < RENDEZVOUS_SETTLE_MS || this.libp2p.getConnections().length <= 1
    if (!settling && now - this.lastRendezvousAt < this.init.rendezvousIntervalMs * RENDEZVOUS_SETTLED_FACTOR * 0.9) return false
    this.lastRendezvousAt = now
    return true
  }

  /** Provides our rendezvous key and learns the other providers. */
  private async rendezvous (): Promise<void> {
    const cid = this.rendezvousCid
    if (cid === undefined || this.stopping || this.libp2p.getConnections().length === 0) return
    const signal = AbortSignal.timeout(RENDEZVOUS_TIMEOUT_MS)
    const provide = this.libp2p.contentRouting.provide(cid, { signal }).catch(err => {
      this.log.debug({ err: (err as Error).message }, 'rendezvous provide failed')
    })
    let found = 0
    try {
      for await (const p of this.libp2p.contentRouting.findProviders(cid, { signal })) {
        const id = p.id.toString()
        if (id === this.peerId) continue
        found++
        this.learn(id, p.multiaddrs.map(m => m.toString()))
      }
    } catch (err) {
      if (!signal.aborted) this.log.debug({ err: (err as Error).message }, 'rendezvous lookup failed')
    }
    await provide
    this.log.debug({ found }, 'rendezvous lookup done')
  }

  /**
   * gridctl discover (issue 12): asks the DHT rendezvous now who provides this cluster's key, learns them (so they
   * are dialled), and says who answered with their addresses. Empty when this node has no connection to ask through.
   */
  async discover (signal?: AbortSignal): Promise<Array<{ id: NodeId, addrs: string[] }>> {
    const cid = this.rendezvousCid
    if (cid === undefined || this.stopping || this.libp2p.getConnections().length === 0) return []
    const timeout = AbortSignal.timeout(RENDEZVOUS_TIMEOUT_MS)
    const both = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    const found = new Map<NodeId, string[]>()
    try {
      for await (const p of this.libp2p.contentRouting.findProviders(cid, { signal: both })) {
        const id = p.id.toString()
        if (id === this.peerId) continue
        const addrs = p.multiaddrs.map(m => m.toString())
        found.set(id, [...new Set([...(found.get(id) ?? []), ...addrs])])
        this.learn(id, addrs)
      }
    } catch (err) {
      if (!both.aborted) this.log.debug({ err: (err as Error).message }, 'discover lookup failed')
    }
    return [...found].map(([id, addrs]) => ({ id, addrs }))
  }

  explainDialError (err: unknown): string {
    const e = err as Error & { code?: string, errors?: Error[] }
    const all = [e, ...(e.errors ?? [])].map(x => `${x.name}: ${x.message}`).join('; ')
    if (/ECONNREFUSED/.test(all)) return `connection refused: nothing listens there (${e.message})`
    if (/EHOSTUNREACH|ENETUNREACH/.test(all)) return `host unreachable (${e.message})`
    if (/EncryptionFailed|ECONNRESET|decrypt|handshake|noise|pnet|psk/i.test(all)) return `handshake failed: the peer uses a different swarm key (compare the swarm key fingerprints gridctl status prints on both nodes), is not a grid node, or closed the connection before the handshake because too many were waiting for theirs (its log says so: 'inbound connections are being dropped') (${e.message})`
    if (/abort|timeout|timed out/i.test(all)) return `no answer in time: the address is not reachable, the peer uses a different swarm key, or it is refusing connections (${e.message})`
    return all
  }
}

function safePeerId (peer: NodeId): PeerId {
  try {
    return parsePeerId(peer)
  } catch (err) {
    throw new InvalidArgumentError(`${peer} is not a peer id`, { cause: err })
  }
}
