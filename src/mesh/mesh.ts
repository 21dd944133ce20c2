/**
 * The mesh: our libp2p node, gossip publish and subscribe, and the calls other modules make on the network (join,
 * connect, hang up). How it finds and keeps its peers (bootstrap, DHT rendezvous, gradual dialling) is the dial
 * loop's, in dialer.ts.
 */
import { EventEmitter } from 'node:events'
import type { Message } from '@libp2p/gossipsub'
import { KEEP_ALIVE, type PeerId, type PrivateKey } from '@libp2p/interface'
import { parsePeerId } from './peer-id-cache.ts'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import { MeshTrim, rendezvousKey } from '../../proto/index.ts'
import { HINTS, InvalidArgumentError, PeerUnreachableError, type NodeId, type Startable } from '../interface/index.ts'
import { LogLimiter, delay } from '../util/index.ts'
import { DIAL_TIMEOUT_MS, TRIM_NOTICE_MS } from './constants.ts'
import { Dialer } from './dialer.ts'
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

export class Mesh extends EventEmitter<MeshEvents> implements Startable {
  readonly peerId: NodeId
  readonly rpc: RpcService
  private readonly log: Logger
  private readonly handlers = new Map<string, { handler: GossipHandler, validate: GossipValidator }>()
  private readonly bootstrap: Multiaddr[]
  private readonly limiter = new LogLimiter(60_000)
  private readonly dialer: Dialer
  private rendezvousCid?: CID
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
      dials: new Counter({ name: 'grid_mesh_dials_total', help: 'Dials by kind (bootstrap, peer, join) and outcome; kind trim counts connections closed to come back to mesh.maxConnections', labelNames: ['kind', 'outcome'], registers: [r] }),
      gossipIn: new Counter({ name: 'grid_mesh_gossip_received_bytes_total', help: 'Gossip payload bytes received, by topic', labelNames: ['topic'], registers: [r] }),
      gossipOut: new Counter({ name: 'grid_mesh_gossip_sent_bytes_total', help: 'Gossip payload bytes published, by topic', labelNames: ['topic'], registers: [r] }),
      gossipRejected: new Counter({ name: 'grid_mesh_gossip_rejected_total', help: 'Gossip messages not delivered (invalid, or relayed copies taken only first-hand), by topic', labelNames: ['topic'], registers: [r] }),
      handshakeFailures: new Counter({ name: 'grid_mesh_handshake_failures_total', help: 'Connections whose upgrade failed (wrong swarm key, not a grid node), by direction', labelNames: ['direction'], registers: [r] })
    }
    const providers = async function * (mesh: Mesh, cid: CID, signal: AbortSignal): AsyncIterable<{ id: NodeId, addrs: string[] }> {
      for await (const p of mesh.libp2p.contentRouting.findProviders(cid, { signal })) {
        const id = p.id.toString()
        if (id !== mesh.peerId) yield { id, addrs: p.multiaddrs.map(m => m.toString()) }
      }
    }
    this.dialer = new Dialer({
      log: this.log,
      dialPeer: async (peer, signal) => { await this.libp2p.dial(safePeerId(peer), { signal }) },
      dialAddr: async (addr, signal) => (await this.libp2p.dial(addr, { signal })).remotePeer.toString(),
      connectionCount: () => this.libp2p.getConnections().length,
      isConnected: peer => this.isConnected(peer),
      connections: async () => {
        const oldest = new Map<NodeId, { id: PeerId, openedAt: number }>()
        for (const c of this.libp2p.getConnections()) {
          const peer = c.remotePeer.toString()
          oldest.set(peer, { id: c.remotePeer, openedAt: Math.min(oldest.get(peer)?.openedAt ?? Infinity, c.timeline.open) })
        }
        return await Promise.all([...oldest].map(async ([peer, { id, openedAt }]) => {
          const tags = (await this.libp2p.peerStore.get(id).catch(() => undefined))?.tags
          return { peer, openedAt, keepAlive: [...(tags?.keys() ?? [])].some(t => t.startsWith(KEEP_ALIVE)) }
        }))
      },
      busy: peer => this.rpc.busyWith(peer),
      trim: async peer => {
        this.rpc.notify(peer, MeshTrim, {})
        await delay(TRIM_NOTICE_MS)
        await this.hangUp(peer)
      },
      rememberAddrs: (peer, addrs) => { this.rememberAddrs(peer, addrs) },
      rendezvous: {
        provide: async signal => { if (this.rendezvousCid !== undefined) await this.libp2p.contentRouting.provide(this.rendezvousCid, { signal }) },
        findProviders: signal => this.rendezvousCid === undefined ? (async function * () {})() : providers(this, this.rendezvousCid, signal)
      },
      counted: (kind, outcome) => { this.metrics.dials.inc({ kind, outcome }) },
      explain: err => this.explainDialError(err)
    }, { bootstrap: this.bootstrap, maxConnections: init.maxConnections, dialConcurrency: init.dialConcurrency, rendezvousIntervalMs: init.rendezvousIntervalMs })
    this.rpc.onNotify(MeshTrim, (_msg, from) => { this.dialer.trimmedBy(from) })
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
    this.dialer.start()
    this.log.info({ peerId: this.peerId, addrs: this.addrs(), swarmKey: this.init.swarmKey?.fingerprint ?? 'none (insecure lab mode)' }, 'mesh started')
  }

  async stop (): Promise<void> {
    this.stopping = true
    this.dialer.stop()
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

  /** Whether our connections to the peer closed just now because one side trimmed back to its cap: no failure. */
  closedOnPurpose (peer: NodeId): boolean {
    return this.dialer.closedOnPurpose(peer)
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
    try { parsePeerId(peer) } catch { return }
    this.dialer.learn(peer, addrs, how)
  }

  private rememberAddrs (peer: NodeId, addrs: string[]): void {
    const mas: Multiaddr[] = []
    for (const a of addrs) { try { mas.push(multiaddr(a)) } catch { /* a bad address from a peer is skipped */ } }
    if (mas.length > 0) void this.libp2p.peerStore.merge(parsePeerId(peer), { multiaddrs: mas }).catch(() => {})
  }

  /** Stops dialling a member that was removed (gridctl nodes forget); a bootstrap peer from the config stays. */
  forget (peer: NodeId): void {
    this.dialer.forget(peer)
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
    this.dialer.connected(id)
    this.emit('peer:connect', id)
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    this.dialer.disconnected(id)
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
      : TIMED_OUT.test(info.error)
        // the accepting side of a wrong key waits for a handshake that never makes sense: a timeout, as for a peer
        // too loaded to finish it in time (seen with 20 daemons starting at once on 2 cores)
        ? `a peer at ${host} uses a different swarm key, is not a grid node, or did not finish its handshake in time (logged once a minute per address)`
        : `a peer at ${host} uses a different swarm key, or is not a grid node (logged once a minute per address)`)
  }

  /**
   * gridctl discover (issue 12): asks the DHT rendezvous now who provides this cluster's key, learns them (so they
   * are dialled), and says who answered with their addresses. Empty when this node has no connection to ask through.
   */
  async discover (signal?: AbortSignal): Promise<Array<{ id: NodeId, addrs: string[] }>> {
    if (this.stopping) return []
    return await this.dialer.discover(signal)
  }

  explainDialError (err: unknown): string {
    const e = err as Error & { code?: string, errors?: Error[] }
    const all = [e, ...(e.errors ?? [])].map(x => `${x.name}: ${x.message}`).join('; ')
    if (/ECONNREFUSED/.test(all)) return `connection refused: nothing listens there (${e.message})`
    if (/EHOSTUNREACH|ENETUNREACH/.test(all)) return `host unreachable (${e.message})`
    if (/EncryptionFailed|ECONNRESET|decrypt|handshake|noise|pnet|psk/i.test(all)) return `handshake failed: the peer uses a different swarm key (compare the swarm key fingerprints gridctl status prints on both nodes), is not a grid node, or closed the connection before the handshake because too many were waiting for theirs (its log says so: 'inbound connections are being dropped') (${e.message})`
    if (TIMED_OUT.test(all)) return `no answer in time: the address is not reachable, the peer uses a different swarm key, or it is refusing connections (${e.message})`
    return all
  }
}

/** An error that says an operation ran out of time (or was aborted, as a deadline's signal does). */
const TIMED_OUT = /abort|timeout|timed out/i

function safePeerId (peer: NodeId): PeerId {
  try {
    return parsePeerId(peer)
  } catch (err) {
    throw new InvalidArgumentError(`${peer} is not a peer id`, { cause: err })
  }
}
