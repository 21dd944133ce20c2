/**
 * The RPC service's limits on what one peer may make this node hold (issue 17, finding 4). Each is sized so that a
 * peer that behaves is never near it, and a peer that does not is cut off before it costs much memory or CPU.
 */

/**
 * A frame begun must be whole within this, plus its declared size at RPC_PARTIAL_FRAME_MIN_BYTES_PER_S, else its
 * stream is reset: a 16 MiB frame may take 5 + 16 s (0.2 s on loopback), a small one 5 s. Memory is bounded by the
 * caps below; the deadline frees what a stalled frame holds.
 */
export const RPC_PARTIAL_FRAME_TIMEOUT_MS = 5_000
export const RPC_PARTIAL_FRAME_MIN_BYTES_PER_S = 1024 * 1024
/**
 * Bytes of incomplete frames held for one peer across all its streams, beyond one whole frame: with 8 streams per
 * connection, each holding a 16 MiB frame begun, one identity held 1 GiB. A peer sends one big frame at a time.
 */
export const RPC_PEER_PARTIAL_SLACK_BYTES = 1024 * 1024
/**
 * Whole frames' worth of incomplete frames this node holds from all peers together (4 x 16 MiB): many identities
 * (a key holder can make any number) each holding one stay within it. Past it, the stream that brought the excess is
 * reset if its own frame is over RPC_PEER_PARTIAL_SLACK_BYTES (smaller frames always pass), which fails like a lost
 * stream: its requests fail, a state push lost so is filled in by catch-up.
 */
export const RPC_PARTIAL_FRAMES_TOTAL = 4
/**
 * Bytes queued for sending on one stream beyond what the peer's window takes, above two whole frames: past it the
 * stream is reset (libp2p's maxWriteBufferLength; yamux's default is unbounded, so a peer that stopped reading grew
 * this node's memory without end). Senders that stream (events) wait for the drain well before it.
 */
export const RPC_WRITE_BUFFER_SLACK_BYTES = 1024 * 1024
/**
 * Frames written to an RPC stream in one turn of the event loop leave as one write when the turn ends; once this many
 * bytes wait they leave at once (a large frame gains nothing by waiting, and the stream's own limits apply to it).
 */
export const RPC_WRITE_COALESCE_MAX_BYTES = 64 * 1024
/**
 * Requests one peer may have this node serve at once (long-lived ones included: a task.run lasts as long as its task,
 * so this is above an executor's queue limit plus its slots). Past it a request is refused BUSY, which the caller
 * may retry; a method may set a lower cap of its own (`handle(..., { maxInflightPerPeer })`).
 */
export const RPC_SERVING_PER_PEER_MAX = 4096

/**
 * Misbehaviour (misbehaviour.ts): a peer's strikes (a malformed, oversized or stalled RPC frame, an invalid
 * notification, an invalid gossip message it delivered) count within PEER_STRIKE_WINDOW_MS. An honest peer of the same
 * protocol version sends none (Noise authenticates every byte; a shape change bumps the protocol id); past
 * PEER_STRIKES_MAX in a window the peer is disconnected and refused, both ways, for PEER_BAN_MS. Each strike also
 * lowers its gossipsub score (PEER_STRIKE_GOSSIP_SCORE, weighted 10 by gossipsub: three strikes stop gossip to it,
 * thirteen our own messages to it), but never to the graylist (-80) before the ban: a graylisted peer's
 * messages are dropped unseen, so its strikes would stop short of the ban.
 */
export const PEER_STRIKES_MAX = 20
export const PEER_STRIKE_WINDOW_MS = 60_000
export const PEER_BAN_MS = 10 * 60_000
export const PEER_STRIKE_GOSSIP_SCORE = -0.4
/** The application score of a banned peer: below gossipsub's graylist threshold (-80) once weighted. */
export const PEER_BANNED_GOSSIP_SCORE = -100
/** Peers tracked at once; past it the quietest are forgotten (a key holder can make any number of identities). */
export const PEER_CONDUCT_MAX = 4096

/**
 * The dial loop (dialer.ts). It looks at known-but-unconnected peers and the bootstrap list every
 * MAINTAIN_INTERVAL_MS, and sooner when a dial slot frees or a peer falls due.
 */
export const MAINTAIN_INTERVAL_MS = 1_000
/** Backoff between dials of a peer that failed: from 1 s up to 60 s (dead peers are retried slowly, to heal partitions). */
export const REDIAL_BASE_MS = 1_000
export const REDIAL_CAP_MS = 60_000
/** A member that left is dialled with backoff up to 5 min: cheap (a refused dial), and it heals a whole-cluster restart. */
export const LEFT_REDIAL_CAP_MS = 300_000
/**
 * A peer lost in the last RECENT_LOSS_WINDOW_MS, or any peer while this process is in its own first such window (a
 * start, or a whole cluster restarting in any order), is retried from RECENT_REDIAL_BASE_MS and at most
 * RECENT_REDIAL_CAP_MS apart: a partition that heals or a member that restarts is found within a second or two
 * rather than after a grown backoff (12.9 s to converge after a healed partition, 37.6 s for a whole restart of 8,
 * with 60 s caps). A refused dial costs a packet each way. Past the window, the slow caps above apply.
 */
export const RECENT_LOSS_WINDOW_MS = 60_000
export const RECENT_REDIAL_BASE_MS = 500
export const RECENT_REDIAL_CAP_MS = 2_000
/**
 * A cluster larger than `mesh.maxConnections` (the cap). libp2p accepts JOIN_HEADROOM connections past the cap, so a
 * newcomer (or a restarted member) can always join through a member that holds the cap: libp2p refuses a connection
 * at its own limit before the handshake, whoever it comes from, and a node that knows only a full bootstrap peer never
 * joined. The dial loop trims back to the cap, closing connections at least TRIM_GRACE_MS old with nothing in flight
 * (the newcomer has dialled others by then), and says so first; and once it knows more members than the cap, it
 * dials only up to the cap less DIAL_SLACK, so the peer a trim leaves one short does not dial another member, which
 * would trim in its turn.
 * Up to the cap (every member connected to every other) none of this applies.
 */
export function joinHeadroom (cap: number): number { return Math.max(8, Math.ceil(cap / 4)) }
export function dialSlack (cap: number): number { return Math.max(1, Math.ceil(cap / 10)) }
export const TRIM_GRACE_MS = 10_000
/** How often the dial loop looks for connections to trim while it holds more than the cap. */
export const TRIM_CHECK_MS = 5_000
/**
 * A trim is announced (`mesh.trim`) and the connection closed TRIM_NOTICE_MS later. Neither side takes that close for
 * a failure for TRIM_MEMORY_MS (no probe), nor redials that peer before TRIM_REDIAL_MS (unless work needs it then).
 */
export const TRIM_NOTICE_MS = 200
export const TRIM_MEMORY_MS = 10_000
export const TRIM_REDIAL_MS = 300_000
/** Bootstrap addresses, while this node has no connection: at most this far apart in its first minute, 30 s later. */
export const BOOTSTRAP_REDIAL_CAP_MS = 2_000
export const DIAL_TIMEOUT_MS = 6_000
export const RENDEZVOUS_TIMEOUT_MS = 10_000
/** A node's first minute, when it looks up the rendezvous every interval; later every RENDEZVOUS_SETTLED_FACTOR. */
export const RENDEZVOUS_SETTLE_MS = 60_000
export const RENDEZVOUS_SETTLED_FACTOR = 6
