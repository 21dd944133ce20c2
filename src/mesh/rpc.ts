/**
 * Request/response between daemons on one long-lived multiplexed stream per peer pair (RPC_PROTOCOL).
 *
 * Either end sends requests on any open stream to the peer; frames carry request ids, so many requests share one
 * stream (0.13 ms round trip here, against 0.94 ms for a stream per request). Every request has a deadline; a
 * malformed frame resets that stream only and is counted; a closed stream fails its requests at once. What happens on
 * one stream is rpc-channel.ts; this file picks, opens and accepts the streams.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { parsePeerId } from './peer-id-cache.ts'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { Counter, Histogram } from 'prom-client'
import { RPC_MAX_FRAME_BYTES, RPC_PROTOCOL, type EventOf, type MethodDef, type RequestOf, type ResponseOf } from '../../proto/index.ts'
import { BusyError, PeerUnreachableError, TimeoutError, UnavailableError, toGridError, type GridError, type NodeId } from '../interface/index.ts'
import { LogLimiter } from '../util/index.ts'
import { RPC_PARTIAL_FRAME_TIMEOUT_MS, RPC_PARTIAL_FRAMES_TOTAL, RPC_PEER_PARTIAL_SLACK_BYTES, RPC_SERVING_PER_PEER_MAX } from './constants.ts'
import { Channel, wasNotSent } from './rpc-channel.ts'
import type { ChannelHost, HandleOptions, NotifyHandler, RegisteredHandler, RegisteredNotify, RpcHandler } from './rpc-types.ts'

export type { RpcContext, RpcHandler, NotifyHandler, HandleOptions } from './rpc-types.ts'

export interface RequestOptions<M extends MethodDef> {
  timeoutMs?: number
  signal?: AbortSignal
  onEvent?: (event: EventOf<M>) => void
}

/**
 * What the service needs of the libp2p node: register a protocol handler, open a stream to a peer, and what identify
 * learnt of a peer's protocols. A Libp2p is one; tests hand in streams from memory.
 */
export interface RpcNetwork {
  handle(protocol: string, handler: (stream: Stream, connection: Pick<Connection, 'remotePeer'>) => void, options: { maxInboundStreams: number, maxOutboundStreams: number }): Promise<void>
  unhandle(protocol: string): Promise<void>
  dialProtocol(peer: PeerId, protocol: string, options: { signal: AbortSignal }): Promise<Stream>
  readonly peerStore: { get(peer: PeerId): Promise<{ protocols: string[] }> }
}

export interface RpcComponents {
  libp2p: RpcNetwork
  logger: Logger
  registry: Registry
  /** Told of each bad frame or invalid notification a peer sent (the mesh counts its strikes: misbehaviour.ts). */
  misbehaved?: (peer: NodeId, reason: string) => void
}

export interface RpcInit {
  defaultTimeoutMs?: number
  maxFrameBytes?: number
  /** Time to open a stream (dial included) before a request gives up on the peer. */
  openTimeoutMs?: number
  /** How long a frame begun may stay incomplete (RPC_PARTIAL_FRAME_TIMEOUT_MS). */
  partialFrameTimeoutMs?: number
  /** Requests one peer may have served at once (RPC_SERVING_PER_PEER_MAX). */
  maxServingPerPeer?: number
  /** Bytes of incomplete frames one peer may have this node hold (one whole frame + RPC_PEER_PARTIAL_SLACK_BYTES). */
  maxPartialBytesPerPeer?: number
  /** Bytes of incomplete frames this node holds from all peers (RPC_PARTIAL_FRAMES_TOTAL frames). */
  maxPartialBytesTotal?: number
}

/** A BUSY refusal suggests the caller waits this long before it tries again. */
const BUSY_RETRY_AFTER_MS = 1_000

/** Every version of our RPC protocol starts so: what a peer of another version lists in identify. */
const RPC_PROTOCOL_FAMILY = RPC_PROTOCOL.slice(0, RPC_PROTOCOL.lastIndexOf('/') + 1)
/** How long identify may take to tell which RPC version a peer that refused ours speaks. */
const IDENTIFY_WAIT_MS = 2_000
const IDENTIFY_POLL_MS = 50

export class RpcService implements ChannelHost {
  readonly log: Logger
  readonly maxFrameBytes: number
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  readonly served: Counter<'method' | 'outcome'>
  readonly serveSeconds: Histogram<'method'>
  readonly partialFrameTimeoutMs: number
  readonly maxPartialBytesPerPeer: number
  readonly maxPartialBytesTotal: number
  partialBytesHeld = 0
  private readonly maxServingPerPeer: number
  /** Requests served now, per peer: in all, and by method. */
  private readonly servingNow = new Map<NodeId, { all: number, byMethod: Map<string, number> }>()
  private readonly cutOffs: Counter<'reason'>
  private readonly requests: Counter<'method' | 'outcome'>
  private readonly invalidFrames: Counter
  private readonly notifications: Counter<'method'>
  private readonly handlers = new Map<string, RegisteredHandler>()
  private readonly notifyHandlers = new Map<string, RegisteredNotify>()
  private readonly channels = new Map<NodeId, Channel[]>()
  private readonly opening = new Map<NodeId, Promise<Channel>>()
  private readonly limiter = new LogLimiter(60_000)
  private readonly defaultTimeoutMs: number
  private readonly openTimeoutMs: number
  private running = false

  constructor (private readonly components: RpcComponents, init: RpcInit = {}) {
    this.log = components.logger
    this.maxFrameBytes = init.maxFrameBytes ?? RPC_MAX_FRAME_BYTES
    this.defaultTimeoutMs = init.defaultTimeoutMs ?? 10_000
    this.openTimeoutMs = init.openTimeoutMs ?? 5_000
    this.partialFrameTimeoutMs = init.partialFrameTimeoutMs ?? RPC_PARTIAL_FRAME_TIMEOUT_MS
    this.maxPartialBytesPerPeer = init.maxPartialBytesPerPeer ?? this.maxFrameBytes + RPC_PEER_PARTIAL_SLACK_BYTES
    this.maxPartialBytesTotal = init.maxPartialBytesTotal ?? this.maxFrameBytes * RPC_PARTIAL_FRAMES_TOTAL
    this.maxServingPerPeer = init.maxServingPerPeer ?? RPC_SERVING_PER_PEER_MAX
    const r = components.registry
    this.requests = new Counter({ name: 'grid_mesh_rpc_requests_total', help: 'RPC requests sent to peers, by method and outcome', labelNames: ['method', 'outcome'], registers: [r] })
    this.served = new Counter({ name: 'grid_mesh_rpc_served_total', help: 'RPC requests served for peers, by method and outcome', labelNames: ['method', 'outcome'], registers: [r] })
    this.serveSeconds = new Histogram({ name: 'grid_mesh_rpc_serve_seconds', help: 'Time to serve an RPC request', labelNames: ['method'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [r] })
    this.invalidFrames = new Counter({ name: 'grid_mesh_rpc_invalid_frames_total', help: 'Malformed or oversized frames received; each reset its stream', registers: [r] })
    this.notifications = new Counter({ name: 'grid_mesh_rpc_notifications_total', help: 'One-way notifications sent to peers, by method', labelNames: ['method'], registers: [r] })
    this.cutOffs = new Counter({ name: 'grid_mesh_rpc_refusals_total', help: 'Requests refused BUSY (a per-peer cap) and streams reset for a peer that stopped reading, by reason', labelNames: ['reason'], registers: [r] })
    this.bytesIn = new Counter({ name: 'grid_mesh_stream_received_bytes_total', help: 'Bytes received on RPC streams', registers: [r] })
    this.bytesOut = new Counter({ name: 'grid_mesh_stream_sent_bytes_total', help: 'Bytes sent on RPC streams', registers: [r] })
  }

  /** Whether requests to or from this peer are in flight (a connection closed now would cut them off). */
  busyWith (peer: NodeId): boolean {
    return this.servingNow.has(peer) || (this.channels.get(peer) ?? []).some(c => c.inflight > 0)
  }

  handle<M extends MethodDef> (method: M, fn: RpcHandler<M>, opts: HandleOptions = {}): void {
    if (this.handlers.has(method.name)) throw new Error(`handler for ${method.name} registered twice`)
    this.handlers.set(method.name, { method, fn: fn as unknown as RpcHandler<MethodDef>, maxInflightPerPeer: opts.maxInflightPerPeer })
  }

  /**
   * A serving slot for one request of the peer's: refused BUSY past the peer's cap in all, or the method's own. The
   * refusal is answered at once (no handler runs), so a peer that floods requests costs a frame decode each.
   */
  admit (peer: NodeId, h: RegisteredHandler): (() => void) | GridError {
    const name = h.method.name
    const now = this.servingNow.get(peer) ?? { all: 0, byMethod: new Map<string, number>() }
    const mine = now.byMethod.get(name) ?? 0
    const cap = h.maxInflightPerPeer
    if (now.all >= this.maxServingPerPeer || (cap !== undefined && mine >= cap)) {
      const which = now.all >= this.maxServingPerPeer ? `${this.maxServingPerPeer} requests` : `${cap ?? 0} ${name} requests`
      this.cutOffs.inc({ reason: 'busy' })
      if (this.limiter.allow(`busy:${peer}`)) this.log.warn({ peer, method: name, serving: now.all, cap: which }, 'peer has too many requests in flight here; refusing more with BUSY (logged once a minute per peer)')
      return new BusyError(`${peer} already has ${which} in flight on this node; retry later`, { details: { retryAfterMs: BUSY_RETRY_AFTER_MS } })
    }
    now.all++
    now.byMethod.set(name, mine + 1)
    this.servingNow.set(peer, now)
    let released = false
    return () => {
      if (released) return
      released = true
      now.all--
      const left = (now.byMethod.get(name) ?? 1) - 1
      if (left === 0) now.byMethod.delete(name)
      else now.byMethod.set(name, left)
      if (now.all === 0 && this.servingNow.get(peer) === now) this.servingNow.delete(peer)
    }
  }

  peerPartialBytes (peer: NodeId): number {
    let n = 0
    for (const c of this.channels.get(peer) ?? []) n += c.partialBytes
    return n
  }

  partialBytesChanged (delta: number): void { this.partialBytesHeld += delta }

  cutOff (peer: NodeId, err: Error): void {
    this.cutOffs.inc({ reason: 'write-buffer' })
    if (this.limiter.allow(`cut-off:${peer}`)) this.log.warn({ peer, err: err.message }, 'peer stopped reading an RPC stream; stream reset (logged once a minute per peer)')
  }

  handlerFor (name: string): RegisteredHandler | undefined { return this.handlers.get(name) }

  onNotify<M extends MethodDef> (method: M, fn: NotifyHandler<M>): void {
    if (this.notifyHandlers.has(method.name)) throw new Error(`notification handler for ${method.name} registered twice`)
    this.notifyHandlers.set(method.name, { method, fn: fn as unknown as NotifyHandler<MethodDef> })
  }

  notifyHandlerFor (name: string): RegisteredNotify | undefined { return this.notifyHandlers.get(name) }

  /**
   * Sends a one-way notification on an open stream to the peer (it never dials). False when there is no open
   * stream, or its buffer is full: the caller relies on catch-up for that peer.
   */
  notify<M extends MethodDef> (peer: NodeId, method: M, data: RequestOf<M>): boolean {
    const c = (this.channels.get(peer) ?? []).find(x => x.usable)
    if (c === undefined || c.needsDrain) return false
    try {
      c.send({ type: 'notify', method: method.name, data })
      this.notifications.inc({ method: method.name })
      return true
    } catch {
      return false
    }
  }

  /** Opens a stream to the peer if none is open (notifications need one). */
  async ensureChannel (peer: NodeId, signal?: AbortSignal): Promise<void> {
    await this.channelFor(peer, signal ?? AbortSignal.timeout(this.openTimeoutMs))
  }

  async start (): Promise<void> {
    this.running = true
    await this.components.libp2p.handle(RPC_PROTOCOL, (stream, connection) => { this.accept(stream, connection) }, {
      maxInboundStreams: 8,
      maxOutboundStreams: 8
    })
  }

  async stop (): Promise<void> {
    this.running = false
    await this.components.libp2p.unhandle(RPC_PROTOCOL).catch(() => {})
    for (const list of this.channels.values()) for (const c of list) c.stream.abort(new UnavailableError('node is stopping'))
    this.channels.clear()
  }

  /** Sends a request and waits for its answer (validated against the method's response schema). */
  async request<M extends MethodDef> (peer: NodeId, method: M, data: RequestOf<M>, opts: RequestOptions<M> = {}): Promise<ResponseOf<M>> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs
    const started = performance.now()
    try {
      const openSignal = opts.signal === undefined ? AbortSignal.timeout(Math.min(timeoutMs, this.openTimeoutMs)) : AbortSignal.any([opts.signal, AbortSignal.timeout(Math.min(timeoutMs, this.openTimeoutMs))])
      let res: unknown
      for (let attempt = 1; ; attempt++) {
        const channel = await this.channelFor(peer, openSignal)
        const remaining = Math.max(1, Math.round(timeoutMs - (performance.now() - started)))
        try {
          res = await channel.request(method, data, remaining, opts.signal, opts.onEvent as ((e: unknown) => void) | undefined)
          break
        } catch (err) {
          // the stream died before the request left: once more, on a fresh stream
          if (attempt >= 2 || !wasNotSent(err)) throw err
        }
      }
      this.requests.inc({ method: method.name, outcome: 'ok' })
      return res as ResponseOf<M>
    } catch (err) {
      const e = toGridError(err)
      this.requests.inc({ method: method.name, outcome: e.code })
      throw e
    }
  }

  /** True when a stream to the peer is open now (no dial needed). */
  hasChannel (peer: NodeId): boolean {
    return (this.channels.get(peer) ?? []).some(c => c.usable)
  }

  badFrame (peer: NodeId, err: unknown): void {
    this.invalidFrames.inc()
    this.components.misbehaved?.(peer, 'rpc-bad-frame')
    if (this.limiter.allow(`bad-frame:${peer}`)) {
      this.log.warn({ peer, err: (err as Error).message }, 'malformed frame from peer; stream reset (logged once a minute per peer)')
    }
  }

  channelClosed (c: Channel): void {
    const list = this.channels.get(c.peer)
    if (list === undefined) return
    const rest = list.filter(x => x !== c)
    if (rest.length === 0) this.channels.delete(c.peer)
    else this.channels.set(c.peer, rest)
  }

  private accept (stream: Stream, connection: Pick<Connection, 'remotePeer'>): void {
    if (!this.running) { stream.abort(new UnavailableError('node is stopping')); return }
    this.register(new Channel(stream, this, connection.remotePeer.toString(), false))
  }

  private register (c: Channel): Channel {
    const list = this.channels.get(c.peer) ?? []
    list.push(c)
    this.channels.set(c.peer, list)
    return c
  }

  private async channelFor (peer: NodeId, signal: AbortSignal): Promise<Channel> {
    // our requests go on streams we opened: how the peer treats the streams it opened (closes them, stops reading
    // them) must not decide whether our requests are answered
    const open = (this.channels.get(peer) ?? []).filter(c => c.usable && c.outbound)
    if (open.length > 0) return open.reduce((a, b) => (b.inflight < a.inflight ? b : a))
    const inProgress = this.opening.get(peer)
    if (inProgress !== undefined) return await inProgress
    const p = this.open(peer, signal).finally(() => this.opening.delete(peer))
    this.opening.set(peer, p)
    return await p
  }

  private async open (peer: NodeId, signal: AbortSignal): Promise<Channel> {
    if (!this.running) throw new UnavailableError('node is stopping')
    let id: PeerId
    try {
      id = parsePeerId(peer)
    } catch (err) {
      throw new PeerUnreachableError(`${peer} is not a peer id`, { cause: err })
    }
    try {
      const stream = await this.components.libp2p.dialProtocol(id, RPC_PROTOCOL, { signal })
      return this.register(new Channel(stream, this, peer, true))
    } catch (err) {
      if (signal.aborted) throw new TimeoutError(`could not open a stream to ${peer} in time`, { cause: err })
      if ((err as Error).name === 'UnsupportedProtocolError') {
        this.explainRefusal(peer, id)
        throw new PeerUnreachableError(`${peer} does not speak ${RPC_PROTOCOL}`, { cause: err })
      }
      throw new PeerUnreachableError(`cannot reach ${peer}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * The peer refused RPC_PROTOCOL: one log line (once a minute per peer) naming its RPC version, read from what
   * identify stored, and ours. Identify may still be under way on a connection this very request opened, so it waits
   * for it a little, in the background: the request has failed already.
   */
  private explainRefusal (peer: NodeId, id: PeerId): void {
    if (!this.limiter.allow(`refused:${peer}`)) return
    void (async () => {
      const deadline = performance.now() + IDENTIFY_WAIT_MS
      let protocols: string[] = []
      while (true) {
        protocols = await this.components.libp2p.peerStore.get(id).then(p => p.protocols, () => [])
        if (protocols.some(p => p.startsWith(RPC_PROTOCOL_FAMILY)) || performance.now() >= deadline || !this.running) break
        await new Promise(resolve => setTimeout(resolve, IDENTIFY_POLL_MS))
      }
      if (!this.running) return
      const theirs = protocols.filter(p => p.startsWith(RPC_PROTOCOL_FAMILY))
      if (theirs.length > 0) {
        this.log.warn({ peer, ours: RPC_PROTOCOL, theirs: theirs.join(', ') }, 'peer speaks another RPC protocol version; no requests pass between us until both run the same one')
      } else {
        this.log.warn({ peer, ours: RPC_PROTOCOL, theirs: 'none' }, 'peer does not speak the RPC protocol (not a gridd, or identify told us nothing)')
      }
    })().catch((err: unknown) => { this.log.error({ err }, 'could not explain a refused RPC stream') })
  }
}
