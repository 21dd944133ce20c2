/**
 * The swarm key file: the cluster secret of the libp2p private network (@libp2p/pnet), in the format go-libp2p and
 * ipfs use: `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hex digits (32 random bytes).
 */
import { createHash } from 'node:crypto'
import { generateKey } from '@libp2p/pnet'
import { SwarmKeyError } from '../src/interface/index.ts'

/** The file's size as @libp2p/pnet writes it: a 31-byte header and 64 hex digits. */
export const SWARM_KEY_FILE_BYTES = 95

/** A new swarm key file's bytes. */
export function newSwarmKey (): Uint8Array {
  const bytes = new Uint8Array(SWARM_KEY_FILE_BYTES)
  generateKey(bytes)
  return bytes
}

/**
 * Checks the format, so that a wrong file fails with a message saying what is wrong rather than deep in a handshake,
 * and returns the normalised key with its fingerprint (16 hex digits of sha256 over the key: safe to show).
 */
export function parseSwarmKey (bytes: Uint8Array, path: string): { psk: Uint8Array, fingerprint: string } {
  const lines = Buffer.from(bytes).toString('utf8').split(/\r?\n/).map(l => l.trim()).filter(l => l !== '')
  if (lines[0] !== '/key/swarm/psk/1.0.0/') throw new SwarmKeyError(`swarm key ${path}: first line must be /key/swarm/psk/1.0.0/ (make one with: gridctl keygen FILE)`)
  if (lines[1] !== '/base16/') throw new SwarmKeyError(`swarm key ${path}: second line must be /base16/ (only base16 keys are supported)`)
  const hex = lines[2] ?? ''
  if (lines.length !== 3 || !/^[0-9a-fA-F]{64}$/.test(hex)) throw new SwarmKeyError(`swarm key ${path}: third line must be 64 hex digits`)
  const key = hex.toLowerCase()
  return {
    psk: new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${key}`),
    fingerprint: createHash('sha256').update(key).digest('hex').slice(0, 16)
  }
}
