/**
 * Guards the inbound connections that have not finished their handshake yet. Before the swarm-key handshake nothing
 * tells an honest peer from anyone who can open a TCP socket, and libp2p keeps every such connection pending (at most
 * `maxIncomingPendingConnections`, each for up to its inbound upgrade timeout): 64 silent sockets held that set full
 * and no node could join. The guard keeps its own, smaller set of connections still before their encryption
 * (libp2p's connection gater tells when one starts and when it is through). When the set is full, the oldest
 * connection that has sent nothing at all after the grace time goes (an honest peer sends its swarm-key nonce at once
 * and is through in milliseconds); when there is none, the new connection is refused. So silent connections churn
 * out instead of keeping everyone out, whatever address they come from (in tests every daemon and the attacker share
 * 127.0.0.1, so a cap per address would refuse the joining node too). A pino line, at most once per LOG_WINDOW_MS,
 * says how many were dropped and why.
 */
import type { MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'

/** Inbound connections allowed before their handshake; libp2p's own pending cap is set above it. */
export const INBOUND_PENDING_MAX = 32
/** A pending connection younger than this is never evicted (its first bytes may not have arrived yet). */
export const INBOUND_PENDING_GRACE_MS = 500
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
  /** Refusals libp2p made itself before the guard saw the connection, by its reason. */
  private readonly byLibp2p = new Map<string, number>()

  constructor (private readonly log: Pick<Logger, 'warn'>, private readonly max = INBOUND_PENDING_MAX, private readonly graceMs = INBOUND_PENDING_GRACE_MS, private readonly now: () => number = Date.now) {}

  get size (): number { return this.pending.size }

  /** libp2p's `denyInboundConnection`: true refuses the connection. */
  denyInboundConnection (conn: MultiaddrConnection): boolean {
    const now = this.now()
    if (this.pending.size >= this.max) {
      const victim = this.silentSince(now - this.graceMs)
      if (victim === undefined) {
        this.refused++
        this.note(conn, now)
        return true
      }
      this.forget(victim.conn)
      this.evicted++
      this.note(victim.conn, now)
      try { victim.conn.abort(new Error('evicted: it sent nothing while too many inbound connections waited for their handshake')) } catch {}
    }
    this.pending.set(conn, { conn, since: now })
    conn.addEventListener('close', () => { this.forget(conn) }, { once: true })
    return false
  }

  /** libp2p refused a connection itself (its pending cap, its per-host rate, maxConnections): counted in the line. */
  refusedByLibp2p (remoteAddr: string, reason: string, now = this.now()): void {
    const key = reason.slice(0, 80)
    if (this.byLibp2p.size < 16 || this.byLibp2p.has(key)) this.byLibp2p.set(key, (this.byLibp2p.get(key) ?? 0) + 1)
    this.count(remoteAddr.split('/')[2] ?? 'unknown')
    this.report(now)
  }

  /** libp2p's `denyInboundEncryptedConnection`: the connection is through the swarm-key and Noise handshakes. */
  denyInboundEncryptedConnection (_peer: PeerId, conn: MultiaddrConnection): boolean {
    this.forget(conn)
    return false
  }

  /** The oldest pending connection that arrived before `before` and has sent no byte yet. */
  private silentSince (before: number): Pending | undefined {
    for (const p of this.pending.values()) {
      if (p.since > before) return undefined
      if (bytesRead(p.conn) === 0) return p
    }
    return undefined
  }

  private forget (conn: MultiaddrConnection): void { this.pending.delete(conn) }

  private note (conn: MultiaddrConnection, now: number): void {
    this.count(hostOf(conn))
    this.report(now)
  }

  private count (host: string): void {
    if (this.hosts.size < 64 || this.hosts.has(host)) this.hosts.set(host, (this.hosts.get(host) ?? 0) + 1)
  }

  private report (now: number): void {
    if (now - this.lastLog < LOG_WINDOW_MS) return
    this.lastLog = now
    const from = [...this.hosts].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([h, n]) => `${h} (${n})`).join(', ')
    this.log.warn({
      evicted: this.evicted,
      refused: this.refused,
      pending: this.pending.size,
      maxPending: this.max,
      graceMs: this.graceMs,
      refusedByLibp2p: Object.fromEntries(this.byLibp2p),
      from
    }, `inbound connections are being dropped before their handshake: ${this.evicted === 0 && this.refused === 0
      ? 'libp2p refused them itself, counted in refusedByLibp2p by reason ("maxConnections exceeded": this node holds mesh.maxConnections and its join headroom; raise mesh.maxConnections or give newcomers other bootstrap peers)'
      : 'more than maxPending are waiting without completing the swarm-key handshake (silent or slow clients, perhaps a flood); the oldest that sent nothing for graceMs are closed, new ones refused when none has; refusedByLibp2p counts the refusals libp2p made itself, by reason'} (logged at most every 10 s, counts since the last line)`)
    this.evicted = 0
    this.refused = 0
    this.hosts.clear()
    this.byLibp2p.clear()
  }
}

/** Bytes the connection's socket has received (TCP connections carry their net.Socket); 0 when unknown. */
function bytesRead (conn: MultiaddrConnection): number {
  const socket = (conn as { socket?: { bytesRead?: unknown } }).socket
  return typeof socket?.bytesRead === 'number' ? socket.bytesRead : 0
}

function hostOf (conn: MultiaddrConnection): string {
  try {
    const parts = conn.remoteAddr.getComponents()
    return parts[0]?.value ?? 'unknown'
  } catch {
    return 'unknown'
  }
}
