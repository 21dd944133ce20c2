import { describe, expect, it } from 'vitest'
import { exactMessageId } from '../../src/mesh/node.ts'

const msg = (over: Partial<{ topic: string, from: Uint8Array, seqno: Uint8Array, signature: Uint8Array, data: Uint8Array }> = {}): { topic: string, from: Uint8Array, seqno: Uint8Array, signature: Uint8Array, data: Uint8Array } => ({
  topic: 'grid/heartbeat/2',
  from: Uint8Array.from([1, 2, 3]),
  seqno: Uint8Array.from([0, 0, 0, 7]),
  signature: Uint8Array.from([9, 9, 9]),
  data: Uint8Array.from([42]),
  ...over
})

describe('gossip: the fast id that lets duplicate copies skip the signature check', () => {
  it('is the same for the same message however its bytes are held', () => {
    const backing = new Uint8Array([0xff, 1, 2, 3, 0xff])
    expect(exactMessageId(msg({ from: backing.subarray(1, 4) }))).toBe(exactMessageId(msg()))
  })

  it('differs when the author, the sequence number, the signature or the topic differ', () => {
    const base = exactMessageId(msg())
    expect(exactMessageId(msg({ from: Uint8Array.from([1, 2, 4]) }))).not.toBe(base)
    expect(exactMessageId(msg({ seqno: Uint8Array.from([0, 0, 0, 8]) }))).not.toBe(base)
    // a copy with the author's data changed carries a signature that no longer matches: a new id, so it is checked
    expect(exactMessageId(msg({ signature: Uint8Array.from([9, 9, 8]) }))).not.toBe(base)
    expect(exactMessageId(msg({ topic: 'other' }))).not.toBe(base)
  })
})
