/**
 * Record signers for tests of the state store without real identities: `stubSigner` signs with a hash of the signed
 * bytes (any made-up writer id works, and a tampered record fails), `keySigner` is the daemon's Ed25519 signer with a
 * fresh key and the peer id that goes with it.
 */
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Ed25519RecordSigner, signedBytes, type RecordSigner, type SignedRecord } from '../../src/state/index.ts'

function digest (w: string, g: number, n: number, u: Uint8Array): Uint8Array {
  return createHash('sha256').update('stub').update(signedBytes(w, g, n, u)).digest()
}

export function stubSigner (): RecordSigner {
  return {
    sign: (w, g, n, u) => digest(w, g, n, u),
    verify: (r: SignedRecord) => Buffer.from(digest(r.w, r.g, r.n, r.u)).equals(Buffer.from(r.s))
  }
}

export async function keySigner (): Promise<{ id: string, signer: RecordSigner }> {
  const key = await generateKeyPair('Ed25519')
  return { id: peerIdFromPrivateKey(key).toString(), signer: new Ed25519RecordSigner(key) }
}
