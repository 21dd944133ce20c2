/**
 * One RPC stream to a peer: the requests we sent on it (by id, each with its deadline), the requests we serve from
 * it, events streamed for open requests, notifications and keepalives. A malformed frame resets this stream only; a
 * closed stream fails its requests at once. The service (rpc.ts) decides which stream a request goes on.
 */
import { StreamStateError, type Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { RpcFrameDecoder, encodeRpcFrame, type Frame, type MethodDef } from '../../proto/index.ts'
import {
  CancelledError, NotFoundError, PeerUnreachableError, ProtocolError, TimeoutError, errorFromWire, toGridError,
  type NodeId
} from '../interface/index.ts'
import { afterPendingIo } from '../util/index.ts'
import { RPC_PARTIAL_FRAME_MIN_BYTES_PER_S, RPC_WRITE_COALESCE_MAX_BYTES, RPC_PEER_PARTIAL_SLACK_BYTES, RPC_WRITE_BUFFER_SLACK_BYTES } from './constants.ts'
import type { ChannelHost, RpcContext } from './rpc-types.ts'

interface Pending {
  method: MethodDef
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  onEvent?: ((e: unknown) => void) | undefined
}

const NOT_SENT = Symbol('not sent')
const NONE: ReadonlySet<number> = new Set()
/** Marks an error of a request that never left this node (safe to send again). */
function notSent<E extends Error> (err: E): E { return Object.assign(err, { [NOT_SENT]: true }) }
export function wasNotSent (err: unknown): boolean { return typeof err === 'object' && err !== null && NOT_SENT in err }

export class Channel {
  readonly peer: NodeId
  private readonly decoder: RpcFrameDecoder
  private readonly pending = new Map<number, Pending>()
  private readonly serving = new Map<number, AbortController>()
  private nextId = 1
  /** The request being written now, if any: it has not left while its write has not returned. */
  private sending: number | undefined
  /** Resets the stream when the frame begun last is not whole in time. */
  private partialTimer: NodeJS.Timeout | undefined
  /** Frames written this turn of the event loop, not yet handed to the stream; the requests among them. */
  private queued = new Uint8ArrayList()
  private unsent = new Set<number>()
  private leaving: ReadonlySet<number> = NONE
  private readonly dropped = new Set<number>()
  private flushScheduled = false
  closed = false

  constructor (readonly stream: Stream, private readonly host: ChannelHost, peer: NodeId, readonly outbound: boolean) {
    this.peer = peer
    this.decoder = new RpcFrameDecoder(host.maxFrameBytes)
    stream.maxReadBufferLength = host.maxFrameBytes * 2 + 64
    // a peer that stops reading: what we queue for it beyond its window is bounded, then the stream is reset
    stream.maxWriteBufferLength = host.maxFrameBytes * 2 + RPC_WRITE_BUFFER_SLACK_BYTES
    stream.addEventListener('message', evt => { this.onData(evt.data) })
    stream.addEventListener('close', evt => { this.onClose(evt.error) })
    stream.addEventListener('remoteCloseWrite', () => { this.onRemoteCloseWrite() })
  }

  get inflight (): number { return this.pending.size }

  /** Bytes held of an incomplete frame from the peer (as last told to the host's node-wide count). */
  get partialBytes (): number { return this.held }
  private held = 0

  /**
   * Open for new frames. A stream whose write side has closed (its connection is going away, e.g. a duplicate
   * connection being pruned) may not have fired 'close' yet; it must not be picked for a new request. Nor may one
   * the peer closed its side of: it could not answer (libp2p leaves readStatus 'readable' then).
   */
  get usable (): boolean {
    return !this.closed && this.stream.status === 'open' && this.stream.writeStatus === 'writable' && this.peerMaySend
  }

  /** The peer can still send on this stream (requests for us to serve, answers to ours). */
  private get peerMaySend (): boolean {
    return this.stream.remoteWriteStatus === 'writable' && (this.stream.readStatus === 'readable' || this.stream.readStatus === 'paused')
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
        this.trySend({ type: 'cancel', id }, true)
        reject(new CancelledError(`request ${method.name} to ${this.peer} was cancelled`, { cause: signal?.reason }))
      }
      timer = afterPendingIo(() => {
        if (!this.pending.has(id)) return
        cleanup()
        this.trySend({ type: 'cancel', id }, true)
        reject(new TimeoutError(`${method.name} to ${this.peer} got no answer within ${timeoutMs}ms`))
      }, timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, {
        method,
        onEvent,
        resolve: v => { cleanup(); resolve(v) },
        reject: e => { cleanup(); reject(e) }
      })
      let bytes: Uint8Array
      try {
        bytes = encodeRpcFrame({ type: 'request', id, method: method.name, data, deadlineMs: timeoutMs }, this.host.maxFrameBytes)
      } catch (err) {
        this.pending.get(id)?.reject(toGridError(err)) // too large: no stream would take it
        return
      }
      // a stream that dies under this write closes before send() throws: onClose sees `sending` and marks it too
      this.sending = id
      try {
        this.write(bytes)
      } catch (err) {
        // nothing left: the caller may try again on another stream
        this.pending.get(id)?.reject(notSent(new PeerUnreachableError(`could not send to ${this.peer}: ${(err as Error).message}`, { cause: err })))
      } finally {
        this.sending = undefined
      }
    })
  }

  /** Sends a frame; returns false when the stream's buffer is full (the caller may await drain). */
  send (f: Frame): boolean {
    return this.write(encodeRpcFrame(f, this.host.maxFrameBytes))
  }

  /** The stream cannot take more now: what waits to go (queued here or in the stream) is over its limit. */
  get needsDrain (): boolean {
    return this.stream.writableNeedsDrain || this.queued.byteLength >= RPC_WRITE_COALESCE_MAX_BYTES
  }

  /**
   * Frames written in one turn of the event loop leave together, as one write to the stream (one yamux frame, one
   * Noise message, one socket write, and one window update back), when the turn ends; a stream that is no longer
   * writable fails the write at once, as the stream itself would.
   */
  private write (bytes: Uint8Array): boolean {
    if (this.stream.writeStatus !== 'writable') throw new StreamStateError(`Cannot write to a stream that is ${this.stream.writeStatus}`)
    this.host.bytesOut.inc(bytes.byteLength)
    this.queued.append(bytes)
    if (this.sending !== undefined) this.unsent.add(this.sending)
    if (this.queued.byteLength >= RPC_WRITE_COALESCE_MAX_BYTES) return this.flushWrites()
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => { this.flushScheduled = false; this.flushWrites() })
    }
    return !this.stream.writableNeedsDrain
  }

  /** Hands what the turn queued to the stream. False when the stream's buffer is full. */
  private flushWrites (): boolean {
    if (this.queued.byteLength === 0) return !this.stream.writableNeedsDrain
    const out = this.queued
    this.queued = new Uint8ArrayList()
    // the requests in it have not left until send returns: a stream that dies under this write fails them as not sent
    this.leaving = this.unsent
    this.unsent = new Set()
    try {
      if (this.closed || this.stream.writeStatus !== 'writable') {
        // it closed since: what was queued never leaves (its close fails these requests as not sent)
        for (const id of this.leaving) this.dropped.add(id)
        return false
      }
      return this.stream.send(out)
    } catch {
      return false // the stream is going away; its close handler fails what waits on it
    } finally {
      this.leaving = NONE
    }
  }

  /** Sends a frame if the stream still takes one; `now`: at once rather than at the end of the turn (a cancel). */
  private trySend (f: Frame, now = false): void {
    if (this.closed) return
    try {
      this.send(f)
      if (now) this.flushWrites()
    } catch { /* the stream is going away; its close handler cleans up */ }
  }

  async drain (signal?: AbortSignal): Promise<void> {
    this.flushWrites()
    if (this.stream.writableNeedsDrain) await this.stream.onDrain(signal === undefined ? undefined : { signal })
  }

  private onData (chunk: Parameters<RpcFrameDecoder['push']>[0]): void {
    this.host.bytesIn.inc(chunk.byteLength)
    let whole = false
    try {
      for (const f of this.decoder.push(chunk)) {
        whole = true
        this.onFrame(f)
      }
      if (this.closed) return
      this.watchPartial(whole)
    } catch (err) {
      this.host.badFrame(this.peer, err)
      this.stream.abort(err instanceof Error ? err : new ProtocolError(String(err)))
    }
  }

  private hold (bytes: number): void {
    if (bytes === this.held) return
    this.host.partialBytesChanged(bytes - this.held)
    this.held = bytes
  }

  /**
   * An incomplete frame must be whole within the host's deadline (a new one begins its own), and the peer's
   * incomplete frames on all its streams together must stay under the host's cap, and all peers' together under the
 * node's: else this stream is reset.
   */
  private watchPartial (frameEnded: boolean): void {
    this.hold(this.decoder.buffered)
    if (this.decoder.buffered === 0) {
      clearTimeout(this.partialTimer)
      this.partialTimer = undefined
      return
    }
    if (this.host.peerPartialBytes(this.peer) > this.host.maxPartialBytesPerPeer) {
      throw new ProtocolError(`incomplete frames from ${this.peer} hold over ${this.host.maxPartialBytesPerPeer} bytes across its streams`)
    }
    // frames up to the slack always pass (small requests and answers split across chunks); larger ones share the cap
    if (this.held > RPC_PEER_PARTIAL_SLACK_BYTES && this.host.partialBytesHeld > this.host.maxPartialBytesTotal) {
      throw new ProtocolError(`incomplete frames from all peers hold over ${this.host.maxPartialBytesTotal} bytes on this node`)
    }
    if (frameEnded || this.partialTimer === undefined) {
      clearTimeout(this.partialTimer)
      const held = this.host.partialFrameTimeoutMs + Math.ceil(this.decoder.expected / RPC_PARTIAL_FRAME_MIN_BYTES_PER_S * 1000)
      this.partialTimer = setTimeout(() => {
        const err = new ProtocolError(`a frame begun ${held} ms ago is still incomplete (${this.decoder.buffered} bytes)`)
        this.host.badFrame(this.peer, err)
        this.stream.abort(err)
      }, held)
      this.partialTimer.unref()
    }
  }

  private onFrame (f: Frame): void {
    switch (f.type) {
      case 'request': { this.serve(f.id, f.method, f.data, f.deadlineMs); return }
      case 'result': {
        const p = this.pending.get(f.id)
        if (p === undefined) return // answered after its deadline: dropped
        if (!p.method.response.check(f.data)) {
          p.reject(new ProtocolError(`invalid ${p.method.name} response from ${this.peer}: ${p.method.response.problems(f.data, 3).join('; ')}`))
          return
        }
        p.resolve(f.data)
        return
      }
      case 'error': { this.pending.get(f.id)?.reject(errorFromWire(f.error)); return }
      case 'event': {
        const p = this.pending.get(f.id)
        if (p?.onEvent === undefined) return
        const v = p.method.event
        if (v !== undefined && !v.check(f.data)) {
          p.reject(new ProtocolError(`invalid ${p.method.name} event from ${this.peer}: ${v.problems(f.data, 3).join('; ')}`))
          return
        }
        try { p.onEvent(f.data) } catch (err) { this.host.log.error({ err, method: p.method.name }, 'rpc event listener failed') }
        return
      }
      case 'cancel': { this.serving.get(f.id)?.abort(new CancelledError('cancelled by the caller')); return }
      case 'notify': {
        const h = this.host.notifyHandlerFor(f.method)
        if (h === undefined) return
        if (!h.method.request.check(f.data)) {
          this.host.badFrame(this.peer, new ProtocolError(`invalid ${f.method} notification: ${h.method.request.problems(f.data, 3).join('; ')}`))
          return
        }
        try { h.fn(f.data, this.peer) } catch (err) { this.host.log.error({ err, method: f.method }, 'notification handler failed') }
        return
      }
      case 'keepalive': { if (!f.reply) this.trySend({ type: 'keepalive', nonce: f.nonce, reply: true }); return }
    }
  }

  private serve (id: number, name: string, data: unknown, deadlineMs: number): void {
    const h = this.host.handlerFor(name)
    if (h === undefined) {
      this.trySend({ type: 'error', id, error: new NotFoundError(`unknown method ${name}`).toWire() })
      return
    }
    const release = this.host.admit(this.peer, h)
    if (typeof release !== 'function') {
      this.host.served.inc({ method: name, outcome: release.code })
      this.trySend({ type: 'error', id, error: release.toWire() })
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
        return this.send({ type: 'event', id, data: event })
      },
      drain: async () => { await this.drain(signal) }
    }
    void (async () => {
      try {
        const req = h.method.request.parsePeer(data, `${name} request`)
        const res = await h.fn(req, ctx)
        if (!signal.aborted) this.trySendResult(id, res)
        this.host.served.inc({ method: name, outcome: 'ok' })
      } catch (err) {
        const e = toGridError(err)
        this.host.served.inc({ method: name, outcome: e.code })
        this.trySend({ type: 'error', id, error: e.toWire() })
        if (e.code === 'INTERNAL') this.host.log.error({ err, method: name, peer: this.peer }, 'rpc handler failed')
      } finally {
        release()
        this.serving.delete(id)
        this.host.serveSeconds.observe({ method: name }, (performance.now() - started) / 1000)
        this.closeWhenIdle()
      }
    })()
  }

  private trySendResult (id: number, res: unknown): void {
    try {
      this.send({ type: 'result', id, data: res })
    } catch (err) {
      this.trySend({ type: 'error', id, error: toGridError(err).toWire() })
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
    if (this.closed || this.serving.size > 0 || this.peerMaySend) return
    this.flushWrites()
    this.stream.close().catch(() => { this.stream.abort(new ProtocolError('could not close a stream')) })
  }

  /** A request whose frame had not left (being written, queued, or dropped) when the stream closed. */
  private neverLeft (id: number): boolean {
    return id === this.sending || this.unsent.has(id) || this.leaving.has(id) || this.dropped.has(id)
  }

  private onClose (error?: Error): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.partialTimer)
    this.hold(0)
    if (error?.name === 'StreamBufferError') this.host.cutOff(this.peer, error)
    const message = `stream to ${this.peer} closed${error === undefined ? '' : ` (${error.message})`}`
    const reason = new PeerUnreachableError(message, { cause: error })
    for (const [id, p] of [...this.pending]) p.reject(this.neverLeft(id) ? notSent(new PeerUnreachableError(message, { cause: error })) : reason)
    for (const c of this.serving.values()) c.abort(reason)
    this.host.channelClosed(this)
  }
}
