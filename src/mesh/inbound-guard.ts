/**
 * Guards the inbound connections that have not finished their handshake yet. Before the swarm-key handshake nothing
 * tells an honest peer from anyone who can open a TCP socket, and libp2p keeps every such connection pending (at most
 * `maxIncomingPendingConnections`, each for up to its inbound upgrade timeout): 64 silent sockets held that set full
 * and no node could join. The guard keeps its own, smaller set of connections still before their encryption
 * (libp2p's connection gater tells when one starts and when it is through). When the set is full, the oldest
 * connection goes if it has had the grace time to send its handshake (an honest peer sends its nonce at once and is
 * through in milliseconds); if all are younger, the new one is refused. So silent connections churn out instead of
 * keeping everyone out, whatever address they come from (in tests every daemon and the attacker share 127.0.0.1).
 * A pino line, at most once per LOG_WINDOW_MS, says how many were dropped and why.
 */
import type { MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'

/** Inbound connections allowed before their handshake; libp2p's own pending cap is set above it. */
export const INBOUND_PENDING_MAX = 32
/** A pending connection younger than this is never evicted for a newer one (its handshake may be under way). */
export const INBOUND_PENDING_GRACE_MS = 1_000
/** The whole inbound upgrade (swarm key, Noise, yamux) must finish within this; libp2p's default is 10 s. */
export const INBOUND_UPGRADE_TIMEOUT_MS = 4_000
const LOG_WINDOW_MS = 10_000

interface Pending { conn: MultiaddrConnection, since: number }

export class InboundGuard {
  /** In arrival order: a Map iterates in insertion order, so the first entry is the oldest. */
  private readonly pending = new Map<MultiaddrConnection, Pending>()
  private evicted = 0
  private refused = 0
  private lastLog = -Infinity
  private readonly hosts = new Map<string, number>()

  constructor (private readonly log: Pick<Logger, 'warn'>, private readonly max = INBOUND_PENDING_MAX, private readonly graceMs = INBOUND_PENDING_GRACE_MS, private readonly now: () => number = Date.now) {}

  get size (): number { return this.pending.size }

  /** libp2p's `denyInboundConnection`: true refuses the connection. */
  denyInboundConnection (conn: MultiaddrConnection): boolean {
    const now = this.now()
    if (this.pending.size >= this.max) {
      const oldest = this.pending.values().next().value as Pending
      if (now - oldest.since < this.graceMs) {
        this.refused++
        this.note(conn, now)
        return true
      }
      this.forget(oldest.conn)
      this.evicted++
      this.note(oldest.conn, now)
      try { oldest.conn.abort(new Error('evicted: too many inbound connections waiting for their handshake')) } catch {}
    }
    this.pending.set(conn, { conn, since: now })
    conn.addEventListener('close', () => { this.forget(conn) }, { once: true })
    return false
  }

  /** libp2p's `denyInboundEncryptedConnection`: the connection is through the swarm-key and Noise handshakes. */
  denyInboundEncryptedConnection (_peer: PeerId, conn: MultiaddrConnection): boolean {
    this.forget(conn)
    return false
  }

  private forget (conn: MultiaddrConnection): void { this.pending.delete(conn) }

  private note (conn: MultiaddrConnection, now: number): void {
    const host = hostOf(conn)
    if (this.hosts.size < 64 || this.hosts.has(host)) this.hosts.set(host, (this.hosts.get(host) ?? 0) + 1)
    if (now - this.lastLog < LOG_WINDOW_MS) return
    this.lastLog = now
    const from = [...this.hosts].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([h, n]) => `${h} (${n})`).join(', ')
    this.log.warn({
      evicted: this.evicted,
      refused: this.refused,
      pending: this.pending.size,
      maxPending: this.max,
      graceMs: this.graceMs,
      from
    }, 'inbound connections are being dropped before their handshake: more than maxPending connections are waiting without completing the swarm-key handshake (silent or slow clients); the oldest are evicted, new ones refused while all are younger than graceMs (logged at most every 10 s, counts since the last line)')
    this.evicted = 0
    this.refused = 0
    this.hosts.clear()
  }
}

function hostOf (conn: MultiaddrConnection): string {
  try {
    const parts = conn.remoteAddr.getComponents()
    return parts[0]?.value ?? 'unknown'
  } catch {
    return 'unknown'
  }
}
