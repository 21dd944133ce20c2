/**
 * Request/response between daemons on one long-lived multiplexed stream per peer pair (RPC_PROTOCOL).
 *
 * Either end sends requests on any open stream to the peer; frames carry request ids, so many requests share one
 * stream (0.13 ms round trip here, against 0.94 ms for a stream per request). Every request has a deadline; a
 * malformed frame resets that stream only and is counted; a closed stream fails its requests at once.
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { parsePeerId } from './peer-id-cache.ts'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { Counter, Histogram } from 'prom-client'
import {
  FrameDecoder, RPC_MAX_FRAME_BYTES, RPC_PROTOCOL, encodeFrame, frame as frameValidator,
  type EventOf, type Frame, type MethodDef, type RequestOf, type ResponseOf
} from '../../proto/index.ts'
import {
  CancelledError, NotFoundError, PeerUnreachableError, ProtocolError, TimeoutError,
  UnavailableError, errorFromWire, toGridError, type NodeId
} from '../interface/index.ts'
import { LogLimiter } from '../util/index.ts'

export interface RpcContext {
  peer: NodeId
  signal: AbortSignal
  /** Pushes an event to the caller of a streaming method; false when the stream's buffer is full (await drain). */
  emit(event: unknown): boolean
  /** Resolves when the stream can take more events. */
  drain(): Promise<void>
}

export type RpcHandler<M extends MethodDef> = (req: RequestOf<M>, ctx: RpcContext) => Promise<ResponseOf<M>> | ResponseOf<M>

export interface RequestOptions<M extends MethodDef> {
  timeoutMs?: number
  signal?: AbortSignal
  onEvent?: (event: EventOf<M>) => void
}

export interface RpcComponents {
  libp2p: Libp2p
  logger: Logger
  registry: Registry
}

export interface RpcInit {
  defaultTimeoutMs?: number
  maxFrameBytes?: number
  /** Time to open a stream (dial included) before a request gives up on the peer. */
  openTimeoutMs?: number
}

interface Pending {
  method: MethodDef
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  onEvent?: ((e: unknown) => void) | undefined
}

interface RegisteredHandler { method: MethodDef, fn: RpcHandler<MethodDef> }

/** Receives a notification (one-way, no answer); `peer` is the authenticated sender. */
export type NotifyHandler<M extends MethodDef> = (data: RequestOf<M>, peer: NodeId) => void
interface RegisteredNotify { method: MethodDef, fn: NotifyHandler<MethodDef> }

const NOT_SENT = Symbol('not sent')
/** Marks an error of a request that never left this node (safe to send again). */
function notSent<E extends Error> (err: E): E { return Object.assign(err, { [NOT_SENT]: true }) }
function wasNotSent (err: unknown): boolean { return typeof err === 'object' && err !== null && NOT_SENT in err }

class Channel {
  readonly peer: NodeId
  private readonly decoder: FrameDecoder
  private readonly pending = new Map<number, Pending>()
  private readonly serving = new Map<number, AbortController>()
  private nextId = 1
  closed = false

  constructor (readonly stream: Stream, private readonly rpc: RpcService, peer: NodeId, readonly outbound: boolean) {
    this.peer = peer
    this.decoder = new FrameDecoder(rpc.maxFrameBytes)
    stream.maxReadBufferLength = rpc.maxFrameBytes * 2 + 64
    stream.addEventListener('message', evt => { this.onData(evt.data) })
    stream.addEventListener('close', evt => { this.onClose(evt.error) })
    stream.addEventListener('remoteCloseWrite', () => { this.onRemoteCloseWrite() })
  }

  get inflight (): number { return this.pending.size }

  /**
   * Open for new frames. A stream whose write side has closed (its connection is going away, e.g. a duplicate
   * connection being pruned) may not have fired 'close' yet; it must not be picked for a new request.
   */
  get usable (): boolean {
    return !this.closed && this.stream.status === 'open' && this.stream.writeStatus === 'writable' &&
      (this.stream.readStatus === 'readable' || this.stream.readStatus === 'paused')
  }

  request (method: MethodDef, data: unknown, timeoutMs: number, signal: AbortSignal | undefined, onEvent: ((e: unknown) => void) | undefined): Promise<unknown> {
    if (!this.usable) return Promise.reject(notSent(new PeerUnreachableError(`stream to ${this.peer} is closed`)))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const cleanup = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.pending.delete(id)
      }
      const onAbort = (): void => {
        cleanup()
        this.trySend({ t: 'c', id })
        reject(new CancelledError(`request ${method.name} to ${this.peer} was cancelled`, { cause: signal?.reason }))
      }
      timer = setTimeout(() => {
        cleanup()
        this.trySend({ t: 'c', id })
        reject(new TimeoutError(`${method.name} to ${this.peer} got no answer within ${timeoutMs}ms`))
      }, timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, {
        method,
        onEvent,
        resolve: v => { cleanup(); resolve(v) },
        reject: e => { cleanup(); reject(e) }
      })
      try {
        this.send({ t: 'q', id, m: method.name, d: data, dl: timeoutMs })
      } catch (err) {
        // nothing left: the caller may try again on another stream
        this.pending.get(id)?.reject(notSent(toGridError(err)))
      }
    })
  }

  /** Sends a frame; returns false when the stream's buffer is full (the caller may await drain). */
  send (f: Frame): boolean {
    const bytes = encodeFrame(f, this.rpc.maxFrameBytes)
    this.rpc.bytesOut.inc(bytes.byteLength)
    return this.stream.send(bytes)
  }

  private trySend (f: Frame): void {
    if (this.closed) return
    try { this.send(f) } catch { /* the stream is going away; its close handler cleans up */ }
  }

  async drain (signal?: AbortSignal): Promise<void> {
    if (this.stream.writableNeedsDrain) await this.stream.onDrain(signal === undefined ? undefined : { signal })
  }

  private onData (chunk: Parameters<FrameDecoder['push']>[0]): void {
    this.rpc.bytesIn.inc(chunk.byteLength)
    try {
      for (const raw of this.decoder.push(chunk)) {
        const f = frameValidator.parsePeer(raw, 'rpc frame')
        this.onFrame(f)
      }
    } catch (err) {
      this.rpc.badFrame(this.peer, err)
      this.stream.abort(err instanceof Error ? err : new ProtocolError(String(err)))
    }
  }

  private onFrame (f: Frame): void {
    switch (f.t) {
      case 'q': { this.serve(f.id, f.m, f.d, f.dl); return }
      case 's': {
        const p = this.pending.get(f.id)
        if (p === undefined) return // answered after its deadline: dropped
        if (!p.method.response.check(f.d)) {
          p.reject(new ProtocolError(`invalid ${p.method.name} response from ${this.peer}: ${p.method.response.problems(f.d, 3).join('; ')}`))
          return
        }
        p.resolve(f.d)
        return
      }
      case 'e': { this.pending.get(f.id)?.reject(errorFromWire(f.e)); return }
      case 'v': {
        const p = this.pending.get(f.id)
        if (p?.onEvent === undefined) return
        const v = p.method.event
        if (v !== undefined && !v.check(f.d)) {
          p.reject(new ProtocolError(`invalid ${p.method.name} event from ${this.peer}: ${v.problems(f.d, 3).join('; ')}`))
          return
        }
        try { p.onEvent(f.d) } catch (err) { this.rpc.log.error({ err, method: p.method.name }, 'rpc event listener failed') }
        return
      }
      case 'c': { this.serving.get(f.id)?.abort(new CancelledError('cancelled by the caller')); return }
      case 'n': {
        const h = this.rpc.notifyHandlerFor(f.m)
        if (h === undefined) return
        if (!h.method.request.check(f.d)) {
          this.rpc.badFrame(this.peer, new ProtocolError(`invalid ${f.m} notification: ${h.method.request.problems(f.d, 3).join('; ')}`))
          return
        }
        try { h.fn(f.d, this.peer) } catch (err) { this.rpc.log.error({ err, method: f.m }, 'notification handler failed') }
        return
      }
      case 'k': { if (!f.r) this.trySend({ t: 'k', n: f.n, r: true }); return }
    }
  }

  private serve (id: number, name: string, data: unknown, deadlineMs: number): void {
    const h = this.rpc.handlerFor(name)
    if (h === undefined) {
      this.trySend({ t: 'e', id, e: new NotFoundError(`unknown method ${name}`).toWire() })
      return
    }
    const ctrl = new AbortController()
    this.serving.set(id, ctrl)
    const signal = AbortSignal.any([ctrl.signal, AbortSignal.timeout(deadlineMs)])
    const started = performance.now()
    const ctx: RpcContext = {
      peer: this.peer,
      signal,
      emit: (event) => {
        if (signal.aborted || this.closed) throw new CancelledError('the caller is gone')
        return this.send({ t: 'v', id, d: event })
      },
      drain: async () => { await this.drain(signal) }
    }
    void (async () => {
      try {
        const req = h.method.request.parsePeer(data, `${name} request`)
        const res = await h.fn(req, ctx)
        if (!signal.aborted) this.trySendResult(id, res)
        this.rpc.served.inc({ method: name, outcome: 'ok' })
      } catch (err) {
        const e = toGridError(err)
        this.rpc.served.inc({ method: name, outcome: e.code })
        this.trySend({ t: 'e', id, e: e.toWire() })
        if (e.code === 'INTERNAL') this.rpc.log.error({ err, method: name, peer: this.peer }, 'rpc handler failed')
      } finally {
        this.serving.delete(id)
        this.rpc.serveSeconds.observe({ method: name }, (performance.now() - started) / 1000)
        this.closeWhenIdle()
      }
    })()
  }

  private trySendResult (id: number, res: unknown): void {
    try {
      this.send({ t: 's', id, d: res })
    } catch (err) {
      this.trySend({ t: 'e', id, e: toGridError(err).toWire() })
    }
  }

  /**
   * The peer closed its side: nothing it has not answered yet will be answered. Its requests to us are still served;
   * our side closes when the last one is done, so the stream does not linger half-open.
   */
  private onRemoteCloseWrite (): void {
    const reason = new PeerUnreachableError(`${this.peer} closed the stream before answering`)
    for (const p of [...this.pending.values()]) p.reject(reason)
    this.closeWhenIdle()
  }

  private closeWhenIdle (): void {
    if (this.closed || this.serving.size > 0 || this.stream.readStatus === 'readable' || this.stream.readStatus === 'paused') return
    this.stream.close().catch(() => { this.stream.abort(new ProtocolError('could not close a stream')) })
  }

  private onClose (error?: Error): void {
    if (this.closed) return
    this.closed = true
    const reason = new PeerUnreachableError(`stream to ${this.peer} closed${error === undefined ? '' : ` (${error.message})`}`, { cause: error })
    for (const p of [...this.pending.values()]) p.reject(reason)
    for (const c of this.serving.values()) c.abort(reason)
    this.rpc.channelClosed(this)
  }
}

export class RpcService {
  readonly log: Logger
  readonly maxFrameBytes: number
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  readonly served: Counter<'method' | 'outcome'>
  readonly serveSeconds: Histogram<'method'>
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
    const r = components.registry
    this.requests = new Counter({ name: 'grid_mesh_rpc_requests_total', help: 'RPC requests sent to peers, by method and outcome', labelNames: ['method', 'outcome'], registers: [r] })
    this.served = new Counter({ name: 'grid_mesh_rpc_served_total', help: 'RPC requests served for peers, by method and outcome', labelNames: ['method', 'outcome'], registers: [r] })
    this.serveSeconds = new Histogram({ name: 'grid_mesh_rpc_serve_seconds', help: 'Time to serve an RPC request', labelNames: ['method'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [r] })
    this.invalidFrames = new Counter({ name: 'grid_mesh_rpc_invalid_frames_total', help: 'Malformed or oversized frames received; each reset its stream', registers: [r] })
    this.notifications = new Counter({ name: 'grid_mesh_rpc_notifications_total', help: 'One-way notifications sent to peers, by method', labelNames: ['method'], registers: [r] })
    this.bytesIn = new Counter({ name: 'grid_mesh_stream_received_bytes_total', help: 'Bytes received on RPC streams', registers: [r] })
    this.bytesOut = new Counter({ name: 'grid_mesh_stream_sent_bytes_total', help: 'Bytes sent on RPC streams', registers: [r] })
  }

  handle<M extends MethodDef> (method: M, fn: RpcHandler<M>): void {
    if (this.handlers.has(method.name)) throw new Error(`handler for ${method.name} registered twice`)
    this.handlers.set(method.name, { method, fn: fn as unknown as RpcHandler<MethodDef> })
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
    if (c === undefined || c.stream.writableNeedsDrain) return false
    try {
      c.send({ t: 'n', m: method.name, d: data })
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

  private accept (stream: Stream, connection: Connection): void {
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
      throw new PeerUnreachableError(`cannot reach ${peer}: ${(err as Error).message}`, { cause: err })
    }
  }
}
