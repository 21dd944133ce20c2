/** The RPC service's types: what handlers are given, and what a channel needs from the service that owns it. */
import type { Logger } from 'pino'
import type { Counter, Histogram } from 'prom-client'
import type { MethodDef, RequestOf, ResponseOf } from '../../proto/index.ts'
import type { GridError, NodeId } from '../interface/index.ts'
import type { Channel } from './rpc-channel.ts'

export interface RpcContext {
  peer: NodeId
  signal: AbortSignal
  /** Pushes an event to the caller of a streaming method; false when the stream's buffer is full (await drain). */
  emit(event: unknown): boolean
  /** Resolves when the stream can take more events. */
  drain(): Promise<void>
}

export type RpcHandler<M extends MethodDef> = (req: RequestOf<M>, ctx: RpcContext) => Promise<ResponseOf<M>> | ResponseOf<M>

/** Receives a notification (one-way, no answer); `peer` is the authenticated sender. */
export type NotifyHandler<M extends MethodDef> = (data: RequestOf<M>, peer: NodeId) => void

/** How a handler is served: `maxInflightPerPeer` caps the requests for it one peer may have in flight here. */
export interface HandleOptions { maxInflightPerPeer?: number }

export interface RegisteredHandler { method: MethodDef, fn: RpcHandler<MethodDef>, maxInflightPerPeer?: number | undefined }
export interface RegisteredNotify { method: MethodDef, fn: NotifyHandler<MethodDef> }

/** What a channel needs from the service that owns it. */
export interface ChannelHost {
  readonly log: Logger
  readonly maxFrameBytes: number
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  readonly served: Counter<'method' | 'outcome'>
  readonly serveSeconds: Histogram<'method'>
  handlerFor(name: string): RegisteredHandler | undefined
  notifyHandlerFor(name: string): RegisteredNotify | undefined
  /** How long a frame begun may stay incomplete. */
  readonly partialFrameTimeoutMs: number
  /** The most bytes of incomplete frames one peer may have this node hold, all its streams together. */
  readonly maxPartialBytesPerPeer: number
  peerPartialBytes(peer: NodeId): number
  /** The most bytes of incomplete frames this node holds from all peers together. */
  readonly maxPartialBytesTotal: number
  readonly partialBytesHeld: number
  partialBytesChanged(delta: number): void
  /** Takes a serving slot for the peer: a function that gives it back, or the BUSY error to answer with. */
  admit(peer: NodeId, h: RegisteredHandler): (() => void) | GridError
  badFrame(peer: NodeId, err: unknown): void
  /** A stream was reset because the peer stopped reading (its write buffer went over the cap). */
  cutOff(peer: NodeId, err: Error): void
  channelClosed(c: Channel): void
}
