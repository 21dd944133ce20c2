/**
 * What the mesh does about a peer that keeps misbehaving: it counts the peer's strikes (bad RPC frames, invalid
 * notifications, invalid gossip it delivered) in a sliding window; every strike lowers the peer's gossipsub score
 * (the application-specific part), and past the limit the peer is banned: its connections are closed and the
 * connection gater refuses it, inbound and outbound, until the ban ends. One warn line per ban names the peer, the
 * reason and the strikes. It must not judge what counts as a strike: the RPC service and the gossip validators do.
 */
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { NodeId } from '../interface/index.ts'
import {
  PEER_BANNED_GOSSIP_SCORE, PEER_BAN_MS, PEER_CONDUCT_MAX, PEER_STRIKES_MAX, PEER_STRIKE_GOSSIP_SCORE, PEER_STRIKE_WINDOW_MS
} from './constants.ts'

export interface PeerConductComponents {
  log: Pick<Logger, 'warn'>
  registry: Registry
  /** Closes every connection to the peer. */
  hangUp: (peer: NodeId) => Promise<void>
  now?: () => number
}

export interface PeerConductInit {
  strikesMax?: number
  windowMs?: number
  banMs?: number
}

interface Conduct {
  /** times of the strikes in the window, oldest first */
  strikes: number[]
  bannedUntil: number
}

export class PeerConduct {
  private readonly peers = new Map<NodeId, Conduct>()
  private readonly strikesMax: number
  private readonly windowMs: number
  private readonly banMs: number
  private readonly now: () => number
  private readonly strikeCount: Counter<'reason'>
  private readonly bans: Counter<'reason'>
  private readonly banned: Gauge

  constructor (private readonly c: PeerConductComponents, init: PeerConductInit = {}) {
    this.strikesMax = init.strikesMax ?? PEER_STRIKES_MAX
    this.windowMs = init.windowMs ?? PEER_STRIKE_WINDOW_MS
    this.banMs = init.banMs ?? PEER_BAN_MS
    this.now = c.now ?? Date.now
    const r = c.registry
    this.strikeCount = new Counter({ name: 'grid_mesh_peer_strikes_total', help: 'Misbehaviour counted against peers (bad frames, invalid notifications, invalid gossip), by reason', labelNames: ['reason'], registers: [r] })
    this.bans = new Counter({ name: 'grid_mesh_peer_bans_total', help: 'Peers disconnected and refused for misbehaving, by the reason of the last strike', labelNames: ['reason'], registers: [r] })
    this.banned = new Gauge({ name: 'grid_mesh_peers_banned', help: 'Peers refused now for misbehaving', registers: [r], collect: () => { this.banned.set(this.bannedCount()) } })
  }

  /** Counts one strike; true when it banned the peer. */
  strike (peer: NodeId, reason: string): boolean {
    const now = this.now()
    this.strikeCount.inc({ reason })
    const c = this.conduct(peer)
    if (c.bannedUntil > now) return false
    c.strikes.push(now)
    this.expire(c, now)
    if (c.strikes.length < this.strikesMax) return false
    c.bannedUntil = now + this.banMs
    c.strikes = []
    this.bans.inc({ reason })
    this.c.log.warn({ peer, reason, strikes: this.strikesMax, windowMs: this.windowMs, banMs: this.banMs }, 'peer banned for misbehaving: disconnected and refused until the ban ends')
    void this.c.hangUp(peer).catch(() => {})
    return true
  }

  isBanned (peer: NodeId): boolean {
    const c = this.peers.get(peer)
    return c !== undefined && c.bannedUntil > this.now()
  }

  /** The peer's application score for gossipsub: lower for each strike in the window, far below for a banned peer. */
  gossipScore (peer: NodeId): number {
    const c = this.peers.get(peer)
    if (c === undefined) return 0
    const now = this.now()
    if (c.bannedUntil > now) return PEER_BANNED_GOSSIP_SCORE
    this.expire(c, now)
    return c.strikes.length === 0 ? 0 : c.strikes.length * PEER_STRIKE_GOSSIP_SCORE
  }

  private bannedCount (): number {
    const now = this.now()
    let n = 0
    for (const c of this.peers.values()) if (c.bannedUntil > now) n++
    return n
  }

  private expire (c: Conduct, now: number): void {
    let i = 0
    while (i < c.strikes.length && (c.strikes[i] as number) <= now - this.windowMs) i++
    if (i > 0) c.strikes.splice(0, i)
  }

  private conduct (peer: NodeId): Conduct {
    let c = this.peers.get(peer)
    if (c !== undefined) return c
    if (this.peers.size >= PEER_CONDUCT_MAX) this.forgetQuiet()
    c = { strikes: [], bannedUntil: 0 }
    this.peers.set(peer, c)
    return c
  }

  /** Forgets peers with no strike in the window and no ban; if none, the oldest entry. */
  private forgetQuiet (): void {
    const now = this.now()
    for (const [p, c] of this.peers) {
      this.expire(c, now)
      if (c.strikes.length === 0 && c.bannedUntil <= now) this.peers.delete(p)
    }
    if (this.peers.size >= PEER_CONDUCT_MAX) this.peers.delete(this.peers.keys().next().value as NodeId)
  }
}
