/**
 * Frame codec: msgpack bodies, unsigned-varint length prefixes, a hard size limit.
 *
 * `FrameDecoder` is fed whatever chunks a stream delivers and yields whole frames; a frame over the limit or a broken
 * prefix throws ProtocolError (the caller resets that stream only). `encodeRpcFrame` and `RpcFrameDecoder` carry the
 * RPC protocol's named frames (proto/rpc.ts) in their compact wire form.
 */
import { Packr } from 'msgpackr'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { ProtocolError, TooLargeError } from '../src/interface/index.ts'
import { frame, type Frame } from './rpc.ts'

// Plain maps and arrays only: no record extension (both ends need no shared structure state), no class revival.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' })

/**
 * msgpackr packs every value into one buffer shared by all its Packr instances (this one, the state's files'), and
 * what it returns is a view of that buffer: a view kept (a gossip message in gossipsub's cache, a record) keeps the
 * whole buffer alive. The buffer grows to about 4x the largest value packed and stays that size, and each time it is
 * nearly full a new one of that size replaces it: after one catch-up chunk of 4 MiB, every later message came out of
 * buffers of ~14 MiB, and the driver of a 100,000-item job held one of them for a heartbeat in gossipsub's cache.
 * So a value packed into a buffer larger than this is followed by a fresh buffer of the usual size.
 */
export const PACK_BUFFER_KEEP_BYTES = 1024 * 1024
/** The buffer msgpackr starts from again after a large value (grown as a value needs, up to PACK_BUFFER_KEEP_BYTES). */
const PACK_BUFFER_FRESH_BYTES = 64 * 1024

/** Packs a value with `p` (a view of msgpackr's shared buffer: copy it before keeping it), leaving no large buffer behind. */
export function packShort (p: Packr, value: unknown): Uint8Array {
  const body = p.pack(value)
  if (body.buffer.byteLength > PACK_BUFFER_KEEP_BYTES) p.useBuffer(Buffer.allocUnsafeSlow(PACK_BUFFER_FRESH_BYTES))
  return body
}

/** A value as msgpack, in bytes of its own (that may be kept: they hold no shared buffer). */
export function encode (value: unknown): Uint8Array {
  return new Uint8Array(packShort(packr, value))
}

export function decode (bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new ProtocolError(`undecodable msgpack frame (${(err as Error).message})`, { cause: err })
  }
}

/** Encodes a frame with its length prefix; refuses bodies over `maxBytes`. */
export function encodeFrame (value: unknown, maxBytes: number): Uint8Array {
  // copied into the frame below: the packed view need not be a copy of its own
  const body = packShort(packr, value)
  if (body.byteLength > maxBytes) throw new TooLargeError(`frame of ${body.byteLength} bytes is over the ${maxBytes}-byte limit`)
  const prefixLength = varint.encodingLength(body.byteLength)
  const out = new Uint8Array(prefixLength + body.byteLength)
  varint.encode(body.byteLength, out, 0)
  out.set(body, prefixLength)
  return out
}

/** A length prefix longer than this is broken: 7 bytes of varint already exceed any limit we could set. */
const MAX_PREFIX_BYTES = 7

export class FrameDecoder {
  private readonly buffer = new Uint8ArrayList()
  private readonly maxBytes: number
  private declared = 0

  constructor (maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** Bytes held of the frame not yet whole (0 between frames). */
  get buffered (): number { return this.buffer.byteLength }

  /** The declared size of the frame not yet whole, once its prefix is in (else 0). */
  get expected (): number { return this.declared }

  /**
   * Yields each whole frame's decoded value; throws ProtocolError on an oversized or broken frame. What is buffered
   * between calls is at most one incomplete frame (its declared length is checked as soon as its prefix is in).
   */
  * push (chunk: Uint8Array | Uint8ArrayList): Generator<unknown> {
    this.buffer.append(chunk)
    while (this.buffer.byteLength > 0) {
      const prefix = this.readPrefix()
      if (prefix === undefined) { this.declared = 0; return }
      const end = prefix.bytes + prefix.length
      if (this.buffer.byteLength < end) { this.declared = prefix.length; return }
      const body = this.buffer.subarray(prefix.bytes, end)
      this.buffer.consume(end)
      this.declared = 0
      if (prefix.length > 0) yield decode(body)
    }
  }

  /** The next frame's length and its prefix's size; undefined while the prefix is incomplete. */
  private readPrefix (): { length: number, bytes: number } | undefined {
    let length = 0
    const available = Math.min(this.buffer.byteLength, MAX_PREFIX_BYTES)
    for (let i = 0; i < available; i++) {
      const b = this.buffer.get(i)
      length += (b & 0x7f) * 2 ** (7 * i)
      if (length > this.maxBytes) throw new ProtocolError(`bad frame (declared length over the ${this.maxBytes}-byte limit)`)
      if (b < 0x80) return { length, bytes: i + 1 }
    }
    if (available === MAX_PREFIX_BYTES) throw new ProtocolError('bad frame (broken length prefix)')
    return undefined
  }
}

/**
 * RPC frames on the wire: a msgpack array `[tag, ...fields]`, the fields in the order below. The code only sees the
 * named frames; the array spares every frame its field names (a ping request is 23 bytes, 63 as a map with names).
 * Tags and field order are part of RPC_PROTOCOL's version. A receiver ignores elements past those it knows.
 */
function toWire (f: Frame): unknown[] {
  switch (f.type) {
    case 'request': return [0, f.id, f.method, f.data, f.deadlineMs]
    case 'result': return [1, f.id, f.data]
    case 'error': return [2, f.id, f.error]
    case 'event': return [3, f.id, f.data]
    case 'cancel': return [4, f.id]
    case 'keepalive': return [5, f.nonce, f.reply]
    case 'notify': return [6, f.method, f.data]
  }
}

function fromWire (w: unknown[]): Record<string, unknown> {
  const named = (type: string, fields: number, o: Record<string, unknown>): Record<string, unknown> => {
    if (w.length <= fields) throw new ProtocolError(`invalid rpc frame: a ${type} frame needs ${fields} fields, got ${w.length - 1}`)
    return o
  }
  switch (w[0]) {
    case 0: return named('request', 4, { type: 'request', id: w[1], method: w[2], data: w[3], deadlineMs: w[4] })
    case 1: return named('result', 2, { type: 'result', id: w[1], data: w[2] })
    case 2: return named('error', 2, { type: 'error', id: w[1], error: w[2] })
    case 3: return named('event', 2, { type: 'event', id: w[1], data: w[2] })
    case 4: return named('cancel', 1, { type: 'cancel', id: w[1] })
    case 5: return named('keepalive', 2, { type: 'keepalive', nonce: w[1], reply: w[2] })
    case 6: return named('notify', 2, { type: 'notify', method: w[1], data: w[2] })
    default: throw new ProtocolError(`invalid rpc frame: unknown frame tag ${String(w[0]).slice(0, 32)}`)
  }
}

/** Encodes an RPC frame in its wire form, with its length prefix; refuses bodies over `maxBytes` (TooLargeError). */
export function encodeRpcFrame (f: Frame, maxBytes: number): Uint8Array {
  return encodeFrame(toWire(f), maxBytes)
}

/** Turns a decoded wire frame back into a named, validated frame; throws ProtocolError naming what is wrong. */
export function rpcFrameFromWire (value: unknown): Frame {
  if (!Array.isArray(value)) throw new ProtocolError('invalid rpc frame: not a frame array')
  return frame.parsePeer(fromWire(value), 'rpc frame')
}

/** `FrameDecoder` for RPC streams: yields named, validated frames. */
export class RpcFrameDecoder {
  private readonly inner: FrameDecoder

  constructor (maxBytes: number) {
    this.inner = new FrameDecoder(maxBytes)
  }

  /** Bytes held of the frame not yet whole (0 between frames). */
  get buffered (): number { return this.inner.buffered }

  /** The declared size of the frame not yet whole, once its prefix is in (else 0). */
  get expected (): number { return this.inner.expected }

  * push (chunk: Uint8Array | Uint8ArrayList): Generator<Frame> {
    for (const raw of this.inner.push(chunk)) yield rpcFrameFromWire(raw)
  }
}
