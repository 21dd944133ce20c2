/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam): a key goes to the first node clockwise
 * from it on a hash ring whose load is below ceil(c x average). Keys spread evenly, no node takes more than `c`
 * times its share, and when one node goes away only its keys move.
 */
import { createHash } from 'node:crypto'
import type { NodeId } from '../interface/index.ts'

const hash = (s: string): string => createHash('sha256').update(s).digest('hex')

/** Points per node on the ring: with one, arcs (and so shares) differ a lot between nodes. */
const VNODES = 64

/** `load(id)` is how many keys a node holds now; the key being placed is counted in the average. */
export function boundedLoadHash (key: string, nodes: NodeId[], load: (id: NodeId) => number, c = 1.25): NodeId | undefined {
  if (nodes.length === 0) return undefined
  const total = nodes.reduce((s, n) => s + load(n), 0) + 1
  const cap = Math.ceil(c * total / nodes.length)
  const ring = nodes.flatMap(n => Array.from({ length: VNODES }, (_, v) => ({ n, h: hash(`${n}#${v}`) }))).sort((a, b) => (a.h < b.h ? -1 : 1))
  const k = hash(key)
  let start = ring.findIndex(x => x.h >= k)
  if (start < 0) start = 0
  for (let i = 0; i < ring.length; i++) {
    const { n } = ring[(start + i) % ring.length] as { n: NodeId }
    if (load(n) < cap) return n
  }
  return ring[start]?.n
}
