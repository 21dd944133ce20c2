/**
 * Frame codec: msgpack bodies, unsigned-varint length prefixes, a hard size limit.
 *
 * `FrameDecoder` is fed whatever chunks a stream delivers and yields whole frames; a frame over the limit or a broken
 * prefix throws ProtocolError (the caller resets that stream only).
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { Packr } from 'msgpackr'
import * as varint from 'uint8-varint'
import type { Uint8ArrayList } from 'uint8arraylist'
import { ProtocolError, TooLargeError } from '../src/interface/index.ts'

// Plain maps and arrays only: no record extension (both ends need no shared structure state), no class revival.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' })

export function encode (value: unknown): Uint8Array {
  return packr.pack(value)
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
  const body = encode(value)
  if (body.byteLength > maxBytes) throw new TooLargeError(`frame of ${body.byteLength} bytes is over the ${maxBytes}-byte limit`)
  const prefixLength = varint.encodingLength(body.byteLength)
  const out = new Uint8Array(prefixLength + body.byteLength)
  varint.encode(body.byteLength, out, 0)
  out.set(body, prefixLength)
  return out
}

export class FrameDecoder {
  private readonly inner: LengthPrefixedDecoder

  constructor (maxBytes: number) {
    // the buffer may hold one whole frame plus the next one's start
    this.inner = new LengthPrefixedDecoder({ maxDataLength: maxBytes, maxBufferSize: maxBytes * 2 + 16 })
  }

  /** Yields each whole frame's decoded value; throws ProtocolError on an oversized or broken frame. */
  * push (chunk: Uint8Array | Uint8ArrayList): Generator<unknown> {
    let frames: Generator<Uint8ArrayList>
    try {
      frames = this.inner.decode(chunk)
    } catch (err) {
      throw new ProtocolError(`bad frame (${(err as Error).message})`, { cause: err })
    }
    while (true) {
      let next: IteratorResult<Uint8ArrayList>
      try {
        next = frames.next()
      } catch (err) {
        throw new ProtocolError(`bad frame (${(err as Error).message})`, { cause: err })
      }
      if (next.done === true) return
      yield decode(next.value.subarray())
    }
  }
}
