/**
 * Signed state records: every update a writer publishes is signed with its libp2p identity key over (writer,
 * generation, sequence number, update bytes), and every node verifies a record against the public key embedded in the
 * writer's peer id (Ed25519 ids carry it) before applying it, whoever relayed it. A node keeps the records it applied,
 * so what it relays later (by catch-up, after a restart too) is still the writer's own signed bytes. It must not
 * decide what to apply: intake.ts does that with the answer.
 */
import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { NodeId } from '../interface/index.ts'

/** One writer's update as it travels and is stored: generation `g`, sequence number `n` in it, bytes `u`, signature `s`. */
export interface SignedRecord { w: NodeId, g: number, n: number, u: Uint8Array, s: Uint8Array }

export interface RecordSigner {
  /** Signs this node's own record. */
  sign: (w: NodeId, g: number, n: number, u: Uint8Array) => Uint8Array
  /** True when `s` is the writer's signature over the record. */
  verify: (rec: SignedRecord) => boolean
}

/** Bumped if the signed bytes ever change: a signature never verifies under another layout. */
const DOMAIN = 'grid-state-record/1'
/** Public keys decoded from peer ids, kept for the writers seen last (a bounded cache). */
const KEY_CACHE_MAX = 4096

/** The bytes a signature covers: the domain, writer, generation and sequence number (newline-separated), then the update. */
export function signedBytes (w: NodeId, g: number, n: number, u: Uint8Array): Uint8Array {
  const head = Buffer.from(`${DOMAIN}\n${w}\n${g}\n${n}\n`)
  const out = new Uint8Array(head.byteLength + u.byteLength)
  out.set(head, 0)
  out.set(u, head.byteLength)
  return out
}

/**
 * Signs with this node's libp2p key and verifies against peer ids, with Node's Ed25519 (synchronous). Each key is
 * imported into a node:crypto KeyObject once and kept: @libp2p/crypto's Ed25519 key imports the raw key again (as a
 * JWK) at every sign and verify, which a profile of a replica applying task records put at a third of the check's cost.
 * The signatures are the same bytes (Ed25519 is deterministic); a non-Ed25519 key signs through libp2p.
 */
export class Ed25519RecordSigner implements RecordSigner {
  private readonly keys = new Map<NodeId, KeyObject | null>()
  private readonly own: KeyObject | null

  constructor (private readonly key: PrivateKey) {
    this.own = key.type === 'Ed25519' ? privateKeyObject(key.raw) : null
  }

  sign (w: NodeId, g: number, n: number, u: Uint8Array): Uint8Array {
    const bytes = signedBytes(w, g, n, u)
    if (this.own !== null) return new Uint8Array(cryptoSign(null, bytes, this.own))
    const sig = this.key.sign(bytes)
    if (sig instanceof Promise) throw new Error('state records need a key that signs synchronously (Ed25519)')
    return sig
  }

  verify (rec: SignedRecord): boolean {
    const key = this.publicKey(rec.w)
    if (key === null || rec.s.byteLength !== ED25519_SIGNATURE_BYTES) return false
    try {
      return cryptoVerify(null, signedBytes(rec.w, rec.g, rec.n, rec.u), key, rec.s)
    } catch {
      return false
    }
  }

  private publicKey (w: NodeId): KeyObject | null {
    let key = this.keys.get(w)
    if (key !== undefined) return key
    try {
      const pub = peerIdFromString(w).publicKey
      key = pub?.type === 'Ed25519' ? createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: base64url(pub.raw) } }) : null
    } catch {
      key = null
    }
    if (this.keys.size >= KEY_CACHE_MAX) this.keys.delete(this.keys.keys().next().value as NodeId)
    this.keys.set(w, key)
    return key
  }
}

const ED25519_SIGNATURE_BYTES = 64

/** libp2p's raw Ed25519 private key: the 32-byte seed, then the 32-byte public key. */
function privateKeyObject (raw: Uint8Array): KeyObject {
  return createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: base64url(raw.subarray(0, 32)), x: base64url(raw.subarray(32, 64)) } })
}

function base64url (b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url') }
