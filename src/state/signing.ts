/**
 * Signed state records: every update a writer publishes is signed with its libp2p identity key over (writer,
 * generation, sequence number, update bytes), and every node verifies a record against the public key embedded in the
 * writer's peer id (Ed25519 ids carry it) before applying it, whoever relayed it. A node keeps the records it applied,
 * so what it relays later (by catch-up, after a restart too) is still the writer's own signed bytes. It must not
 * decide what to apply: intake.ts does that with the answer.
 */
import type { PrivateKey, PublicKey } from '@libp2p/interface'
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

/** Signs with this node's libp2p key (Ed25519: synchronous in Node) and verifies against peer ids. */
export class Ed25519RecordSigner implements RecordSigner {
  private readonly keys = new Map<NodeId, PublicKey | null>()

  constructor (private readonly key: PrivateKey) {}

  sign (w: NodeId, g: number, n: number, u: Uint8Array): Uint8Array {
    const sig = this.key.sign(signedBytes(w, g, n, u))
    if (sig instanceof Promise) throw new Error('state records need a key that signs synchronously (Ed25519)')
    return sig
  }

  verify (rec: SignedRecord): boolean {
    const key = this.publicKey(rec.w)
    if (key === null) return false
    const ok = key.verify(signedBytes(rec.w, rec.g, rec.n, rec.u), rec.s)
    return ok === true
  }

  private publicKey (w: NodeId): PublicKey | null {
    let key = this.keys.get(w)
    if (key !== undefined) return key
    try {
      key = peerIdFromString(w).publicKey ?? null
    } catch {
      key = null
    }
    if (this.keys.size >= KEY_CACHE_MAX) this.keys.delete(this.keys.keys().next().value as NodeId)
    this.keys.set(w, key)
    return key
  }
}
