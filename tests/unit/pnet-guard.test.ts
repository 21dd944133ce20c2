import { randomBytes } from 'node:crypto'
import XSalsa20 from 'xsalsa20'
import { describe, expect, it } from 'vitest'
import { guardSwarmKeyCipher } from '../../src/mesh/pnet-guard.ts'

// xsalsa20 1.2.0, the swarm-key cipher of @libp2p/pnet, shares one WebAssembly memory between all its ciphers: one
// large frame used to make every later message grow it, until the 64 MB cap threw inside a socket handler and the
// daemon died (seen in CI after the 4 MiB output test). Unguarded, this sequence throws after about 1,000 messages.
describe('the swarm-key cipher guard', () => {
  guardSwarmKeyCipher()
  const nonce = randomBytes(24)
  const key = randomBytes(32)

  it('survives a large frame followed by many small ones over several connections', () => {
    const ciphers = Array.from({ length: 4 }, () => XSalsa20(randomBytes(24), key))
    expect(() => {
      ;(ciphers[0] as ReturnType<typeof XSalsa20>).update(new Uint8Array(4 * 1024 * 1024))
      for (let i = 0; i < 20_000; i++) (ciphers[i % 4] as ReturnType<typeof XSalsa20>).update(new Uint8Array(1024))
    }).not.toThrow()
  })

  it('encrypts in slices exactly as in one piece, and decrypts back', () => {
    const plain = randomBytes(3 * 1024 * 1024 + 123)
    const sealed = XSalsa20(nonce, key).update(plain)
    expect(Buffer.from(sealed).equals(plain)).toBe(false)
    // the same stream fed in odd-sized pieces gives the same bytes
    const pieces = XSalsa20(nonce, key)
    const parts: Uint8Array[] = []
    for (let at = 0; at < plain.length; at += 100_003) parts.push(pieces.update(plain.subarray(at, at + 100_003)))
    expect(Buffer.concat(parts).equals(Buffer.from(sealed))).toBe(true)
    expect(Buffer.from(XSalsa20(nonce, key).update(sealed)).equals(plain)).toBe(true)
  })
})
