/**
 * The dial loop: how a node finds and keeps its peers.
 *
 * - Bootstrap addresses only need to reach one member; while this node has no connection they are retried with a
 *   short capped backoff (its first minute) or a longer one (later).
 * - Every member provides a rendezvous key on the private DHT and periodically looks up the other providers.
 * - Peers learned from the DHT, from other modules (heartbeats, the registry) or from `join` are dialled gradually:
 *   a few at a time, with jitter and per-peer backoff, up to the connection cap. A dial slot that frees, or a peer that
 *   is learned or falls due, starts the next dial at once rather than at the loop's next pass.
 * - In a cluster larger than the cap, libp2p takes a few connections past it (a newcomer joins through a full
 *   member) and this loop trims back to the cap; it dials only up to the cap less a slack then (constants.ts).
 *
 * It knows libp2p only through the few calls in DialerComponents, so unit tests drive it with stubs.
 */
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { NodeId } from '../interface/index.ts'
import { LogLimiter, backoffMs, jitter, repeat } from '../util/index.ts'
import {
  BOOTSTRAP_REDIAL_CAP_MS, DIAL_TIMEOUT_MS, LEFT_REDIAL_CAP_MS, MAINTAIN_INTERVAL_MS, RECENT_LOSS_WINDOW_MS, RECENT_REDIAL_BASE_MS,
  RECENT_REDIAL_CAP_MS, REDIAL_BASE_MS, REDIAL_CAP_MS, RENDEZVOUS_SETTLED_FACTOR, RENDEZVOUS_SETTLE_MS, RENDEZVOUS_TIMEOUT_MS,
  TRIM_CHECK_MS, TRIM_GRACE_MS, TRIM_MEMORY_MS, TRIM_REDIAL_MS, dialSlack
} from './constants.ts'

export interface DialerInit {
  bootstrap: Multiaddr[]
  maxConnections: number
  dialConcurrency: number
  rendezvousIntervalMs: number
}

/** What the dial loop needs from the libp2p node (the mesh hands it these; tests hand it stubs). */
export interface DialerComponents {
  log: Logger
  /** Dials a known peer by id (its addresses are in the peer store); rejects when it fails. */
  dialPeer: (peer: NodeId, signal: AbortSignal) => Promise<void>
  /** Dials an address; resolves with the peer that answered. */
  dialAddr: (addr: Multiaddr, signal: AbortSignal) => Promise<NodeId>
  connectionCount: () => number
  isConnected: (peer: NodeId) => boolean
  /**
   * Open connections: the peer, when the oldest to it opened (epoch ms), and whether libp2p keeps it alive (the DHT's
   * closest peers: libp2p redials those at once, so a trim would only churn). Absent: never trims.
   */
  connections?: () => Promise<Array<{ peer: NodeId, openedAt: number, keepAlive?: boolean }>>
  /** Whether requests to or from the peer are in flight (a trim would cut them off). */
  busy?: (peer: NodeId) => boolean
  /** Tells the peer (`mesh.trim`), then closes every connection to it: a trim back to the cap. */
  trim?: (peer: NodeId) => Promise<void>
  /** Adds addresses to the peer store. */
  rememberAddrs: (peer: NodeId, addrs: string[]) => void
  /** Provides the rendezvous key and yields the other providers (the DHT); absent: no rendezvous. */
  rendezvous?: { provide: (signal: AbortSignal) => Promise<void>, findProviders: (signal: AbortSignal) => AsyncIterable<{ id: NodeId, addrs: string[] }> }
  /** Counts a dial by kind and outcome. */
  counted: (kind: 'bootstrap' | 'peer' | 'trim', outcome: 'ok' | 'error') => void
  explain: (err: unknown) => string
}

interface KnownPeer {
  attempts: number
  nextAttemptAt: number
  dialing: boolean
  /** It said it left: still dialled, slowly, so that a cluster stopped and started again in any order finds itself. */
  left: boolean
  /** A bootstrap peer from the config: never forgotten, dialled until connected whatever else we are connected to. */
  pinned: boolean
  /** When its last connection closed (epoch ms; 0 if never connected in this process). */
  lostAt: number
  /** When this node or the peer last trimmed their connection (epoch ms; 0 if never): that close is no loss. */
  trimmedAt?: number
}

export class Dialer {
  private readonly known = new Map<NodeId, KnownPeer>()
  private readonly limiter = new LogLimiter(60_000)
  private bootstrapAttempts = 0
  private bootstrapNextAt = 0
  private dialsInFlight = 0
  /** Whether a trim pass is choosing connections now, and when the next may run. */
  private trimRunning = false
  private nextTrimAt = 0
  private maintainLoop?: { stop: () => void }
  private rendezvousLoop?: { stop: () => void }
  private wake?: { at: number, timer: NodeJS.Timeout }
  private startedAt = 0
  private lastRendezvousAt = 0
  private running = false

  constructor (private readonly c: DialerComponents, private readonly init: DialerInit) {}

  start (): void {
    this.running = true
    this.startedAt = Date.now()
    const onError = (err: unknown): void => { this.c.log.error({ err }, 'mesh maintenance failed') }
    this.maintainLoop = repeat(() => { this.maintain() }, MAINTAIN_INTERVAL_MS, onError, { immediate: true })
    this.rendezvousLoop = repeat(async () => { if (this.rendezvousDue()) await this.rendezvous() }, this.init.rendezvousIntervalMs, onError, { jitter: 0.2 })
  }

  stop (): void {
    this.running = false
    this.maintainLoop?.stop()
    this.rendezvousLoop?.stop()
    if (this.wake !== undefined) clearTimeout(this.wake.timer)
    this.wake = undefined
  }

  /** A member exists: dial it gradually (soon: a newly learned one falls due within 0.4 s). */
  learn (peer: NodeId, addrs: string[], how: { left?: boolean, pinned?: boolean }): void {
    if (addrs.length > 0) this.c.rememberAddrs(peer, addrs)
    const k = this.known.get(peer)
    if (k === undefined) {
      const at = Date.now() + jitter(200, 1)
      this.known.set(peer, { attempts: 0, nextAttemptAt: at, dialing: false, left: how.left === true, pinned: how.pinned === true, lostAt: 0 })
      this.wakeAt(at)
    } else {
      k.left = how.left === true
      if (how.pinned === true) k.pinned = true
    }
  }

  forget (peer: NodeId): void {
    if (this.known.get(peer)?.pinned !== true) this.known.delete(peer)
  }

  connected (peer: NodeId): void {
    const k = this.known.get(peer)
    if (k !== undefined) { k.attempts = 0; k.nextAttemptAt = 0; k.left = false } else this.known.set(peer, { attempts: 0, nextAttemptAt: 0, dialing: false, left: false, pinned: false, lostAt: 0 })
  }

  disconnected (peer: NodeId): void {
    const k = this.known.get(peer)
    if (k === undefined) return
    const now = Date.now()
    if (this.closedOnPurpose(peer, now)) {
      // a trim (ours or the peer's): not a loss to heal, and the other side is at its cap
      k.nextAttemptAt = (k.trimmedAt ?? now) + TRIM_REDIAL_MS
      return
    }
    k.lostAt = now
    k.nextAttemptAt = now + jitter(RECENT_REDIAL_BASE_MS, 0.5)
    this.wakeAt(k.nextAttemptAt)
  }

  /** The peer said it is closing our connections to come back to its cap (`mesh.trim`). */
  trimmedBy (peer: NodeId): void {
    const k = this.known.get(peer)
    if (k !== undefined) k.trimmedAt = Date.now()
  }

  /** Whether the connections to this peer were closed, or are being closed, by a trim of either side just now. */
  closedOnPurpose (peer: NodeId, now = Date.now()): boolean {
    const at = this.known.get(peer)?.trimmedAt
    return at !== undefined && now - at < TRIM_MEMORY_MS
  }

  /** Runs a pass of the loop at `at` (or at once), unless one is due sooner. */
  private wakeAt (at: number): void {
    if (!this.running) return
    if (this.wake !== undefined && this.wake.at <= at) return
    if (this.wake !== undefined) clearTimeout(this.wake.timer)
    const timer = setTimeout(() => { this.wake = undefined; this.maintain() }, Math.max(0, at - Date.now()))
    timer.unref?.()
    this.wake = { at, timer }
  }

  /** One pass of the dial loop: bootstrap while alone, then known members below the connection cap. */
  maintain (): void {
    if (!this.running) return
    const now = Date.now()
    const connected = this.c.connectionCount()
    if (this.init.bootstrap.length > 0 && connected === 0 && now >= this.bootstrapNextAt && this.dialsInFlight === 0) {
      // while this node is in its first minute (a start, a whole cluster restarting) its bootstrap peers are tried at
      // most BOOTSTRAP_REDIAL_CAP_MS apart: one that restarts is found within seconds, not after a backoff grown to 30 s
      const cap = now - this.startedAt < RECENT_LOSS_WINDOW_MS ? BOOTSTRAP_REDIAL_CAP_MS : 30_000
      this.bootstrapNextAt = now + backoffMs(this.bootstrapAttempts++, REDIAL_BASE_MS, cap)
      for (const ma of this.init.bootstrap) void this.dialBootstrap(ma)
    } else if (this.init.bootstrap.length > 0 && connected === 0 && this.dialsInFlight === 0) {
      // alone: the next bootstrap dial goes when its backoff ends, not at the loop's next pass after that
      this.wakeAt(this.bootstrapNextAt)
    }
    const cap = this.init.maxConnections
    if (connected > cap && !this.trimRunning && now >= this.nextTrimAt) {
      // a pass reads every connected peer's tags: at most every TRIM_CHECK_MS, however long nothing can be trimmed
      this.nextTrimAt = now + TRIM_CHECK_MS
      this.trimRunning = true
      void this.trim(connected - cap, now).catch(() => {}).finally(() => { this.trimRunning = false })
    }
    // more members than the cap: dial to the cap less a slack, so one trimmed connection does not start another dial
    const target = this.known.size > cap ? cap - dialSlack(cap) : cap
    // dials in flight will each add a connection
    const room = Math.max(0, target - connected - this.dialsInFlight)
    let budget = Math.min(room, this.init.dialConcurrency - this.dialsInFlight)
    if (budget <= 0) return
    let soonest = Infinity
    for (const [id, k] of this.known) {
      if (k.dialing || this.c.isConnected(id)) continue
      if (now < k.nextAttemptAt) { soonest = Math.min(soonest, k.nextAttemptAt); continue }
      if (budget <= 0) break
      budget--
      void this.dialKnown(id, k)
    }
    // the next peer to fall due is dialled then, not at the loop's next pass
    if (soonest < now + MAINTAIN_INTERVAL_MS) this.wakeAt(soonest)
  }

  /**
   * Closes `excess` connections (past the cap: newcomers let in by libp2p's headroom), each one at least
   * TRIM_GRACE_MS old, with nothing in flight, not kept alive by libp2p and not to a bootstrap peer of the config,
   * picked at random.
   */
  private async trim (excess: number, now: number): Promise<void> {
    const { connections, busy, trim } = this.c
    if (connections === undefined || trim === undefined) return
    // every connected peer is known (connected() records it); one trimmed by either side just now is closing already
    const pickable = (await connections()).filter(c => now - c.openedAt >= TRIM_GRACE_MS && c.keepAlive !== true && this.known.get(c.peer)?.pinned !== true && busy?.(c.peer) !== true && !this.closedOnPurpose(c.peer, now))
    for (let i = 0; i < excess && pickable.length > 0; i++) {
      const [c] = pickable.splice(Math.floor(Math.random() * pickable.length), 1)
      const k = c === undefined ? undefined : this.known.get(c.peer)
      if (c === undefined || k === undefined) continue
      k.trimmedAt = now
      this.c.log.debug({ peer: c.peer, excess }, 'closing a connection past the cap (mesh.maxConnections)')
      this.c.counted('trim', 'ok')
      void trim(c.peer).catch(() => {})
    }
  }

  private async dialBootstrap (ma: Multiaddr): Promise<void> {
    this.dialsInFlight++
    try {
      const peer = await this.c.dialAddr(ma, AbortSignal.timeout(DIAL_TIMEOUT_MS))
      this.bootstrapAttempts = 0
      this.c.counted('bootstrap', 'ok')
      this.c.log.info({ addr: ma.toString(), peer }, 'joined through bootstrap peer')
      // a first member is known: ask the DHT for the rest soon rather than at the next interval
      setTimeout(() => { void this.rendezvous().catch(() => {}) }, jitter(300, 0.5)).unref()
    } catch (err) {
      this.c.counted('bootstrap', 'error')
      if (this.limiter.allow(`bootstrap:${ma.toString()}`)) {
        this.c.log.warn({ addr: ma.toString(), reason: this.c.explain(err) }, 'cannot reach bootstrap peer; retrying with backoff (logged once a minute per address)')
      }
    } finally {
      this.dialsInFlight--
      this.wakeAt(Date.now())
    }
  }

  /**
   * The first and the longest wait before the next dial of a peer that failed. A peer lost in the last
   * RECENT_LOSS_WINDOW_MS, or any peer while this process is in its own first such window (a start, or a whole
   * cluster restarting in any order), is retried soon and at most RECENT_REDIAL_CAP_MS apart: a refused dial costs a
   * packet each way, and a member that restarts or a partition that heals is found within a second or two.
   */
  private redialMs (k: KnownPeer): { base: number, cap: number } {
    const now = Date.now()
    if (now - k.lostAt < RECENT_LOSS_WINDOW_MS || now - this.startedAt < RECENT_LOSS_WINDOW_MS) return { base: RECENT_REDIAL_BASE_MS, cap: RECENT_REDIAL_CAP_MS }
    return { base: REDIAL_BASE_MS, cap: k.left ? LEFT_REDIAL_CAP_MS : REDIAL_CAP_MS }
  }

  private async dialKnown (id: NodeId, k: KnownPeer): Promise<void> {
    k.dialing = true
    this.dialsInFlight++
    try {
      await this.c.dialPeer(id, AbortSignal.timeout(DIAL_TIMEOUT_MS))
      k.attempts = 0
      this.c.counted('peer', 'ok')
    } catch (err) {
      const { base, cap } = this.redialMs(k)
      k.nextAttemptAt = Date.now() + backoffMs(k.attempts++, base, cap)
      this.c.counted('peer', 'error')
      this.c.log.debug({ peer: id, reason: this.c.explain(err), attempts: k.attempts }, 'dial failed')
    } finally {
      k.dialing = false
      this.dialsInFlight--
      // a slot is free: the next peer waiting for one is dialled now
      this.wakeAt(Date.now())
    }
  }

  /**
   * Rendezvous runs every interval while this node is settling (its first minute, or while it has at most one
   * connection), then every RENDEZVOUS_SETTLED_FACTOR intervals: a settled member learns newcomers from their
   * heartbeats, and each round costs a DHT put and a lookup against every member.
   */
  private rendezvousDue (): boolean {
    const now = Date.now()
    const settling = now - this.startedAt < RENDEZVOUS_SETTLE_MS || this.c.connectionCount() <= 1
    if (!settling && now - this.lastRendezvousAt < this.init.rendezvousIntervalMs * RENDEZVOUS_SETTLED_FACTOR * 0.9) return false
    this.lastRendezvousAt = now
    return true
  }

  /** Provides our rendezvous key and learns the other providers. */
  private async rendezvous (): Promise<void> {
    const r = this.c.rendezvous
    if (r === undefined || !this.running || this.c.connectionCount() === 0) return
    const signal = AbortSignal.timeout(RENDEZVOUS_TIMEOUT_MS)
    const provide = r.provide(signal).catch(err => {
      this.c.log.debug({ err: (err as Error).message }, 'rendezvous provide failed')
    })
    let found = 0
    try {
      for await (const p of r.findProviders(signal)) {
        found++
        this.learn(p.id, p.addrs, {})
      }
    } catch (err) {
      if (!signal.aborted) this.c.log.debug({ err: (err as Error).message }, 'rendezvous lookup failed')
    }
    await provide
    this.c.log.debug({ found }, 'rendezvous lookup done')
  }

  /**
   * gridctl discover: asks the DHT rendezvous now who provides this cluster's key, learns them (so they are
   * dialled), and says who answered with their addresses. Empty when this node has no connection to ask through.
   */
  async discover (signal?: AbortSignal): Promise<Array<{ id: NodeId, addrs: string[] }>> {
    const r = this.c.rendezvous
    if (r === undefined || !this.running || this.c.connectionCount() === 0) return []
    const timeout = AbortSignal.timeout(RENDEZVOUS_TIMEOUT_MS)
    const both = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    const found = new Map<NodeId, string[]>()
    try {
      for await (const p of r.findProviders(both)) {
        found.set(p.id, [...new Set([...(found.get(p.id) ?? []), ...p.addrs])])
        this.learn(p.id, p.addrs, {})
      }
    } catch (err) {
      if (!both.aborted) this.c.log.debug({ err: (err as Error).message }, 'discover lookup failed')
    }
    return [...found].map(([id, addrs]) => ({ id, addrs }))
  }
}
