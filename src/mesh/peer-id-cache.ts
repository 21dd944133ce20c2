/**
 * Peer id strings parsed once. Parsing a peer id decodes its multihash and builds its public key; with a heartbeat
 * from every member every second, doing that per message cost a 20-node daemon a sixth of its CPU (profiled).
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

const MAX_ENTRIES = 8192
const cache = new Map<string, PeerId>()

/** Parses a peer id string (throws like peerIdFromString on a bad one); repeated strings come from a cache. */
export function parsePeerId (s: string): PeerId {
  let id = cache.get(s)
  if (id === undefined) {
    id = peerIdFromString(s)
    // ids of departed peers would pile up forever in a long-lived daemon: start over when full
    if (cache.size >= MAX_ENTRIES) cache.clear()
    cache.set(s, id)
  }
  return id
}
