/**
 * Membership that scales (issue 13): how often a node heartbeats for the cluster's size, and which member it probes
 * each protocol period. Pure: no I/O, no clock of its own.
 *
 * Liveness rests on the routine probes: every member is probed about once a period whatever the cluster's size, so
 * a heartbeat need not reach everyone every period. Once the cluster passes HEARTBEAT_SCALE_MEMBERS members, each
 * node's heartbeat interval grows with its size so the cluster-wide heartbeat rate stays bounded (CLUSTER_HEARTBEATS
 * per interval settled, twice that while anything is in the air); each heartbeat announces the interval its sender
 * keeps (`iv`), and receivers' missed-heartbeat deadline follows it.
 */
import type { NodeId } from '../interface/index.ts'
import { CLUSTER_HEARTBEATS, HEARTBEAT_INTERVAL_MAX_MS } from './constants.ts'

export interface HeartbeatIntervals {
  /** the gap while anything is in the air (and the shortest gap between heartbeats a change of work may cause) */
  busyMs: number
  /** the gap once the cluster is settled */
  settledMs: number
}

/**
 * The heartbeat gaps for a cluster of `members` (this node included): `baseMs` and `baseMs * settledFactor` up to
 * CLUSTER_HEARTBEATS * settledFactor members (small clusters keep today's pace), then members / CLUSTER_HEARTBEATS
 * base intervals settled, half that busy, at most HEARTBEAT_INTERVAL_MAX_MS. `settledMs` is never more than
 * `settledFactor` times `busyMs`, so a receiver holding a busy interval's deadline is not caught out by a settled gap.
 */
export function heartbeatIntervals (baseMs: number, members: number, settledFactor: number): HeartbeatIntervals {
  const factor = Math.max(1, settledFactor)
  const scaled = Math.min(HEARTBEAT_INTERVAL_MAX_MS, Math.round(baseMs * members / CLUSTER_HEARTBEATS))
  const settledMs = Math.max(Math.round(baseMs * factor), scaled)
  const busyMs = Math.max(baseMs, Math.round(settledMs / factor))
  return { busyMs, settledMs }
}

/**
 * The live members (alive or suspect) and this node, sorted by id: every node holding the same view holds the same
 * ring. Kept sorted as members come and go (a binary search and one splice), so neither the probe schedule nor the
 * cluster's size costs a pass over the member table.
 */
export class MemberRing {
  private readonly ids: NodeId[] = []

  get size (): number { return this.ids.length }

  at (i: number): NodeId | undefined { return this.ids[i] }

  indexOf (id: NodeId): number {
    const i = this.search(id)
    return this.ids[i] === id ? i : -1
  }

  add (id: NodeId): void {
    const i = this.search(id)
    if (this.ids[i] !== id) this.ids.splice(i, 0, id)
  }

  remove (id: NodeId): void {
    const i = this.search(id)
    if (this.ids[i] === id) this.ids.splice(i, 1)
  }

  /** The first index whose id is not below `id`. */
  private search (id: NodeId): number {
    let lo = 0
    let hi = this.ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.ids[mid] as NodeId) < id) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/**
 * Which member `self` probes in protocol period `period` (periods counted on the shared wall clock): the one
 * 1 + (period mod (size - 1)) places after it in the ring. Every node adds the same offset in the same period, so
 * while views agree each member is probed by exactly one other each period (the map is a bijection), and each node
 * still visits every member once every size - 1 periods (SWIM's round). A random choice would leave a member
 * unprobed for 3 periods about 5% of the time (e^-3), and a silent member's detection would wait for it.
 */
export function probeTarget (ring: MemberRing, self: NodeId, period: number): NodeId | undefined {
  const n = ring.size
  const i = ring.indexOf(self)
  if (n < 2 || i < 0) return undefined
  const offset = 1 + (((period % (n - 1)) + (n - 1)) % (n - 1))
  return ring.at((i + offset) % n)
}

/**
 * Where in each period a node sends its routine probe, as a fraction from 0.1 to 0.9 drawn from its id (FNV-1a):
 * nodes do not all probe at once, and a clock a little apart from the others' still counts the same period.
 */
export function probePhase (id: NodeId): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return 0.1 + 0.8 * (h / 0x1_0000_0000)
}

/** The next instant (epoch ms) after `now` at `phase` of a period of `periodMs`, and that period's number. */
export function nextProbeAt (now: number, periodMs: number, phase: number): { at: number, period: number } {
  const offset = phase * periodMs
  let period = Math.floor((now - offset) / periodMs) + 1
  let at = period * periodMs + offset
  if (at - now < periodMs * 0.05) { period += 1; at += periodMs }
  return { at, period }
}
