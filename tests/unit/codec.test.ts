import { describe, expect, it } from 'vitest'
import { FrameDecoder, encode, encodeFrame, frame } from '../../proto/index.ts'
import { parseDuration, parseSize } from '../../src/interface/index.ts'

describe('proto - frames', () => {
  it('decodes frames split across chunks and several frames in one chunk', () => {
    const a = encodeFrame({ t: 'q', id: 1, m: 'x', d: { big: 'y'.repeat(1000) }, dl: 10 }, 1 << 20)
    const b = encodeFrame({ t: 's', id: 1, d: [1, 2, 3] }, 1 << 20)
    const all = new Uint8Array([...a, ...b])
    const dec = new FrameDecoder(1 << 20)
    const out: unknown[] = []
    for (let i = 0; i < all.length; i += 7) out.push(...dec.push(all.subarray(i, i + 7)))
    expect(out).toEqual([{ t: 'q', id: 1, m: 'x', d: { big: 'y'.repeat(1000) }, dl: 10 }, { t: 's', id: 1, d: [1, 2, 3] }])
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

  it('validates frame envelopes and names what is wrong', () => {
    expect(frame.check({ t: 'q', id: 1, m: 'member.ping', d: {}, dl: 1000 })).toBe(true)
    expect(frame.check({ t: 'q', id: -1, m: '', d: {}, dl: 0 })).toBe(false)
    expect(() => frame.parsePeer({ t: 'z' }, 'rpc frame')).toThrow(/invalid rpc frame/)
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
