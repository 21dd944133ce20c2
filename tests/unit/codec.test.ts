import { describe, expect, it } from 'vitest'
import { Packr } from 'msgpackr'
import { FrameDecoder, PACK_BUFFER_KEEP_BYTES, RpcFrameDecoder, decode, encode, encodeFrame, encodeRpcFrame, frame, packShort, rpcFrameFromWire, type Frame } from '../../proto/index.ts'
import { ownBytes } from '../../src/state/record-log.ts'
import { parseDuration, parseSize } from '../../src/interface/index.ts'

describe('proto - frames', () => {
  it('decodes frames split across chunks and several frames in one chunk', () => {
    const a = encodeFrame({ id: 1, data: { big: 'y'.repeat(1000) } }, 1 << 20)
    const b = encodeFrame([1, 2, 3], 1 << 20)
    const all = new Uint8Array([...a, ...b])
    const dec = new FrameDecoder(1 << 20)
    const out: unknown[] = []
    for (let i = 0; i < all.length; i += 7) out.push(...dec.push(all.subarray(i, i + 7)))
    expect(out).toEqual([{ id: 1, data: { big: 'y'.repeat(1000) } }, [1, 2, 3]])
  })

  it('refuses to send a frame over the limit', () => {
    expect(() => encodeFrame({ d: 'x'.repeat(2000) }, 1000)).toThrow(/over the 1000-byte limit/)
  })

  it('rejects an incoming frame whose declared length is over the limit', () => {
    const big = encodeFrame({ d: 'x'.repeat(5000) }, 1 << 20)
    expect(() => [...new FrameDecoder(1000).push(big)]).toThrow(expect.objectContaining({ code: 'PROTOCOL' }))
  })

  it('rejects garbage that is not msgpack', () => {
    const body = new Uint8Array([0xc1, 0xc1, 0xc1])
    const framed = new Uint8Array([body.length, ...body])
    expect(() => [...new FrameDecoder(1000).push(framed)]).toThrow(expect.objectContaining({ code: 'PROTOCOL' }))
  })

  it('reads a length prefix split across chunks, skips empty frames and refuses a broken prefix', () => {
    const a = encodeFrame({ big: 'z'.repeat(300) }, 1 << 20) // a two-byte prefix
    const dec = new FrameDecoder(1 << 20)
    expect([...dec.push(a.subarray(0, 1))]).toEqual([])
    expect([...dec.push(new Uint8Array([...a.subarray(1), 0, ...encodeFrame(7, 100)]))]).toEqual([{ big: 'z'.repeat(300) }, 7])
    expect(() => [...new FrameDecoder(1 << 20).push(new Uint8Array(8).fill(0x80))]).toThrow(expect.objectContaining({ code: 'PROTOCOL' }))
  })
})

describe('proto - packed bytes hold no large buffer', () => {
  it('gives encode() bytes of their own, and packs again into a small buffer after a large value', () => {
    const small = encode({ t: 'hb', n: 1 })
    expect(small.byteLength).toBe(small.buffer.byteLength)
    expect(decode(small)).toEqual({ t: 'hb', n: 1 })
    // a catch-up chunk of 4 MiB grows msgpackr's shared buffer to ~4x; what is packed next must not come out of it
    const big = encodeFrame({ u: new Uint8Array(4 * 1024 * 1024) }, 16 << 20)
    expect(big.byteLength).toBeGreaterThan(4 * 1024 * 1024)
    const p = new Packr({ useRecords: false, mapsAsObjects: true })
    expect(packShort(p, { t: 'hb', n: 2 }).buffer.byteLength).toBeLessThanOrEqual(PACK_BUFFER_KEEP_BYTES)
    expect(p.pack({ t: 'hb', n: 3 }).buffer.byteLength).toBeLessThanOrEqual(PACK_BUFFER_KEEP_BYTES)
  })

  it('keeps a state record decoded from a frame in bytes of its own, not a view of the frame', () => {
    const [rec] = [...new FrameDecoder(1 << 20).push(encodeFrame({ w: 'n1', g: 0, n: 0, u: new Uint8Array(100).fill(7), s: new Uint8Array(64).fill(9), other: 'x'.repeat(10_000) }, 1 << 20))] as Array<{ w: string, g: number, n: number, u: Uint8Array, s: Uint8Array }>
    expect((rec as { u: Uint8Array }).u.buffer.byteLength).toBeGreaterThan(10_000)
    const kept = ownBytes(rec as never)
    expect(kept.u.buffer.byteLength).toBe(100)
    expect(kept.s.buffer.byteLength).toBe(64)
    expect([...kept.u]).toEqual(new Array(100).fill(7))
    // bytes of their own already: the same record
    expect(ownBytes(kept)).toBe(kept)
  })
})

describe('proto - rpc frames', () => {
  const frames: Frame[] = [
    { type: 'request', id: 1, method: 'member.ping', data: {}, deadlineMs: 1500 },
    { type: 'result', id: 1, data: { inc: 3, state: 'alive' } },
    { type: 'error', id: 2, error: { code: 'NOT_FOUND', message: 'no such task', details: { id: 't1' } } },
    { type: 'event', id: 3, data: { k: 'out', s: 1, d: new Uint8Array([1, 2, 3]), o: 0 } },
    { type: 'cancel', id: 4 },
    { type: 'keepalive', nonce: 5, reply: false },
    { type: 'notify', method: 'state.push', data: { w: 'n1', g: 0, u: new Uint8Array([9]) } }
  ]

  it('carries every frame type with its named fields, as an array on the wire', () => {
    const bytes = new Uint8Array(frames.flatMap(f => [...encodeRpcFrame(f, 1 << 20)]))
    const dec = new RpcFrameDecoder(1 << 20)
    const out: Frame[] = []
    for (let i = 0; i < bytes.length; i += 5) out.push(...dec.push(bytes.subarray(i, i + 5)))
    expect(out).toEqual(frames)
    const wire = decode(encodeRpcFrame(frames[0] as Frame, 1 << 20).subarray(1))
    expect(wire).toEqual([0, 1, 'member.ping', {}, 1500])
    // the names cost nothing: smaller than 1.0.0's one-letter map
    expect(encodeRpcFrame(frames[0] as Frame, 1 << 20).byteLength).toBeLessThan(encodeFrame({ t: 'q', id: 1, m: 'member.ping', d: {}, dl: 1500 }, 1 << 20).byteLength)
  })

  it('refuses a frame over the limit before it leaves', () => {
    expect(() => encodeRpcFrame({ type: 'result', id: 1, data: 'x'.repeat(2000) }, 1000)).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }))
  })

  it('refuses what is not a frame, naming what is wrong', () => {
    expect(() => rpcFrameFromWire({ t: 'q', id: 1, m: 'x', d: {}, dl: 10 })).toThrow(/not a frame array/)
    expect(() => rpcFrameFromWire([9, 1])).toThrow(/unknown frame tag 9/)
    expect(() => rpcFrameFromWire([0, 1, 'member.ping'])).toThrow(/request frame needs 4 fields, got 2/)
    expect(() => rpcFrameFromWire([0, -1, '', {}, 0])).toThrow(/invalid rpc frame/)
    expect(() => rpcFrameFromWire([5, 1, 'yes'])).toThrow(expect.objectContaining({ code: 'PROTOCOL' }))
    // elements past the known ones are left for a later minor version
    expect(rpcFrameFromWire([4, 7, 'later'])).toEqual({ type: 'cancel', id: 7 })
  })

  it('validates named frames and names what is wrong', () => {
    expect(frame.check({ type: 'request', id: 1, method: 'member.ping', data: {}, deadlineMs: 1000 })).toBe(true)
    expect(frame.check({ type: 'request', id: -1, method: '', data: {}, deadlineMs: 0 })).toBe(false)
    expect(() => frame.parsePeer({ type: 'z' }, 'rpc frame')).toThrow(/invalid rpc frame/)
    expect(encode({ a: 1 })).toBeInstanceOf(Uint8Array)
  })
})

describe('interface - units', () => {
  it('parses durations with units and refuses bare numbers', () => {
    expect(parseDuration('250ms')).toBe(250)
    expect(parseDuration('1.5s')).toBe(1500)
    expect(parseDuration('1m30s')).toBe(90_000)
    expect(parseDuration('2h')).toBe(7_200_000)
    expect(parseDuration('0')).toBe(0)
    expect(parseDuration('10')).toBeUndefined()
    expect(parseDuration('1x')).toBeUndefined()
  })

  it('parses sizes in binary and decimal units', () => {
    expect(parseSize('512')).toBe(512)
    expect(parseSize('64M')).toBe(64 * 1024 * 1024)
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3)
    expect(parseSize('10GB')).toBe(10e9)
    expect(parseSize('lots')).toBeUndefined()
  })
})

describe('proto - frame decoder, a frame begun', () => {
  it('tells how much of a frame begun it holds and the frame\'s declared size, and nothing between frames', () => {
    const dec = new FrameDecoder(1 << 20)
    const framed = encodeFrame({ text: 'x'.repeat(1000) }, 1 << 20)
    expect([...dec.push(framed.subarray(0, 1))]).toEqual([])
    expect(dec.expected).toBe(0) // the prefix is not whole yet
    expect([...dec.push(framed.subarray(1, 500))]).toEqual([])
    expect(dec.buffered).toBe(500)
    expect(dec.expected).toBe(framed.byteLength - 2)
    expect([...dec.push(framed.subarray(500))]).toHaveLength(1)
    expect(dec.buffered).toBe(0)
    expect(dec.expected).toBe(0)
  })
})
