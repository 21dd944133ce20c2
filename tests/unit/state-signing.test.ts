/**
 * The record signer keeps each Ed25519 key as a node:crypto KeyObject: its signatures must be the very bytes libp2p's
 * key makes (older and newer nodes verify each other's records), and a record that is tampered with, claimed by
 * another writer, or from a writer whose id carries no Ed25519 key must not verify.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { Ed25519RecordSigner, signedBytes } from '../../src/state/index.ts'

describe('state record signatures', () => {
  it('signs as libp2p does and verifies what libp2p signed', async () => {
    const key = await generateKeyPair('Ed25519')
    const w = peerIdFromPrivateKey(key).toString()
    const signer = new Ed25519RecordSigner(key)
    const u = new Uint8Array([1, 2, 3, 250])
    const ours = signer.sign(w, 3, 7, u)
    const theirs = key.sign(signedBytes(w, 3, 7, u)) as Uint8Array
    expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true)
    expect(key.publicKey.verify(signedBytes(w, 3, 7, u), ours)).toBe(true)
    // a second signer (another node) verifies it, from the writer's id alone, again and again (the key is kept)
    const other = new Ed25519RecordSigner(await generateKeyPair('Ed25519'))
    for (let i = 0; i < 3; i++) expect(other.verify({ w, g: 3, n: 7, u, s: theirs })).toBe(true)
  })

  it('refuses a tampered record, another writer\'s claim, a bad signature and a writer id without an Ed25519 key', async () => {
    const key = await generateKeyPair('Ed25519')
    const w = peerIdFromPrivateKey(key).toString()
    const signer = new Ed25519RecordSigner(key)
    const u = new Uint8Array([9, 9, 9])
    const s = signer.sign(w, 0, 1, u)
    expect(signer.verify({ w, g: 0, n: 1, u, s })).toBe(true)
    expect(signer.verify({ w, g: 0, n: 2, u, s })).toBe(false)
    expect(signer.verify({ w, g: 1, n: 1, u, s })).toBe(false)
    expect(signer.verify({ w, g: 0, n: 1, u: new Uint8Array([9, 9, 8]), s })).toBe(false)
    const flipped = new Uint8Array(s)
    flipped[10] = (flipped[10] as number) ^ 1
    expect(signer.verify({ w, g: 0, n: 1, u, s: flipped })).toBe(false)
    expect(signer.verify({ w, g: 0, n: 1, u, s: s.subarray(0, 63) })).toBe(false)
    expect(signer.verify({ w, g: 0, n: 1, u, s: new Uint8Array(0) })).toBe(false)
    const mallory = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    expect(signer.verify({ w: mallory, g: 0, n: 1, u, s })).toBe(false)
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    expect(signer.verify({ w: secp, g: 0, n: 1, u, s })).toBe(false)
    expect(signer.verify({ w: 'not a peer id', g: 0, n: 1, u, s })).toBe(false)
  })
})
