/**
 * The request/response protocol between daemons (RPC_PROTOCOL): frames on one long-lived stream per peer pair.
 *
 * Either end may send requests. Every request carries an id (unique per sender and stream) and a deadline budget in
 * ms; the answer is a result or an error `{code, message}`. Keepalive frames measure the round trip and notice a
 * frozen peer whose TCP connection stays open.
 *
 * These named shapes are what the channel handles; on the wire each travels as a msgpack array (see `encodeRpcFrame`
 * in codec.ts), so the names cost no bytes.
 */
import Type, { type Static, type TSchema } from 'typebox'
import { validator, type Validator } from './validate.ts'

const Id = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
const MethodName = Type.String({ minLength: 1, maxLength: 64 })

export const RequestFrameSchema = Type.Object({
  type: Type.Literal('request'),
  id: Id,
  method: MethodName,
  data: Type.Unknown(),
  /** deadline budget in ms: the receiver gives up after this long */
  deadlineMs: Type.Integer({ minimum: 1, maximum: 2_147_483_647 })
})
export const ResultFrameSchema = Type.Object({ type: Type.Literal('result'), id: Id, data: Type.Unknown() })
export const ErrorFrameSchema = Type.Object({
  type: Type.Literal('error'),
  id: Id,
  error: Type.Object({ code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 4096 }), details: Type.Optional(Type.Unknown()) })
})
/** An event pushed for an open request (streamed output); the request ends with its result or error frame. */
export const EventFrameSchema = Type.Object({ type: Type.Literal('event'), id: Id, data: Type.Unknown() })
/** The sender of request `id` no longer wants its answer. */
export const CancelFrameSchema = Type.Object({ type: Type.Literal('cancel'), id: Id })
/** Keepalive: `reply` false asks, `reply` true answers with the same `nonce`. */
export const KeepaliveFrameSchema = Type.Object({ type: Type.Literal('keepalive'), nonce: Id, reply: Type.Boolean() })
/** A one-way notification: no id, no answer (state updates pushed to peers). */
export const NotifyFrameSchema = Type.Object({ type: Type.Literal('notify'), method: MethodName, data: Type.Unknown() })

export const FrameSchema = Type.Union([RequestFrameSchema, ResultFrameSchema, ErrorFrameSchema, EventFrameSchema, CancelFrameSchema, KeepaliveFrameSchema, NotifyFrameSchema])
export type Frame = Static<typeof FrameSchema>
export type FrameType = Frame['type']
export type RequestFrame = Static<typeof RequestFrameSchema>
export const frame = validator(FrameSchema)

/** One RPC method: its name and the validators of its request, response and (optional) streamed events. */
export interface MethodDef<Q extends TSchema = TSchema, S extends TSchema = TSchema, V extends TSchema = TSchema> {
  name: string
  request: Validator<Q>
  response: Validator<S>
  event?: Validator<V>
}

export function method<Q extends TSchema, S extends TSchema, V extends TSchema = TSchema> (
  name: string, request: Q, response: S, event?: V
): MethodDef<Q, S, V> {
  return event === undefined
    ? { name, request: validator(request), response: validator(response) }
    : { name, request: validator(request), response: validator(response), event: validator(event) }
}

export type RequestOf<M> = M extends MethodDef<infer Q, TSchema, TSchema> ? Static<Q> : never
export type ResponseOf<M> = M extends MethodDef<TSchema, infer S, TSchema> ? Static<S> : never
export type EventOf<M> = M extends MethodDef<TSchema, TSchema, infer V> ? Static<V> : never
