/** Membership's fixed timings and limits (the configurable ones are in MembershipInit), each with why it is so. */

/** How long a leaving node waits after announcing `left`, so the announcement gets out before connections close. */
export const LEAVE_FLUSH_MS = 250

/** An interval whose event-loop delay p99 exceeds this counts as "slow" for local health. */
export const SLOW_LOOP_MS = 200

/** Local health rises to at most this, so deadlines stretch at most (1 + LOCAL_HEALTH_MAX) times, as in Lifeguard. */
export const LOCAL_HEALTH_MAX = 8

/**
 * Resolution of the event-loop delay histogram that local health reads: its timer wakes the loop this often, idle or
 * not. 100 ms still shows a stall of SLOW_LOOP_MS; at 20 ms this monitor and the metrics' (EVENT_LOOP_METRICS_MS) woke
 * an idle daemon 100 times a second, 0.2-0.4 % of a core here (bench/membership at 5: 1.50-1.70 % idle, 1.27-1.30 %
 * with both at 100 ms).
 */
export const LAG_RESOLUTION_MS = 100

/**
 * The detector's clock is checked four times per heartbeat interval, but never more often than this: a short
 * interval in tests must not turn the check into a busy loop.
 */
export const TICK_MIN_INTERVAL_MS = 50

/** After a lost connection, wait this long so libp2p finishes tearing it down and the probe dials afresh. */
export const DISCONNECT_SETTLE_MS = 20

/**
 * An indirect probe's helper gets its own probe deadline twice (it may retry once on a fresh stream) plus this much
 * for the round trip to the helper itself.
 */
export const INDIRECT_PROBE_SLACK_MS = 500

/** Spread of each loop's interval, so nodes started together do not gossip or probe in step. */
export const HEARTBEAT_JITTER = 0.05
export const TICK_JITTER = 0.1

/**
 * How far ahead of the receiver's clock, in seconds, a member's incarnation may be. An incarnation starts at its
 * process's start time in seconds and a refutation raises it by one only while that stays within the node's own clock
 * (heartbeats.ts), so a live node's incarnation is never ahead of its clock: the allowance is for clocks set apart.
 * A day covers a hardware clock kept in local time (up to 14 h off) with room to spare, keeps every incarnation far
 * from 2^53, and bounds how long a node whose clock was corrected backwards is outranked by its own past: a day.
 */
export const INCARNATION_AHEAD_MAX_S = 86_400

/**
 * How long a dead or left member stays in the table (config `membership.deadMemberExpiry`): long enough that an
 * operator sees who went away overnight in `gridctl nodes`, short enough that made-up or long-gone members do not
 * pile up for ever. A member in the node registry comes back on its next heartbeat.
 */
export const DEAD_MEMBER_EXPIRY_MS = 24 * 3_600_000

/** A refused membership message (wrong author, unknown author, implausible incarnation) is logged at most this often per reason. */
export const REFUSED_LOG_EVERY_MS = 60_000

/**
 * The floor of a confirmed suspicion's timeout, as a fraction of `membership.suspicionTimeout`, before it is scaled by
 * log10 of the cluster's size (Lifeguard; with the default 4 s: 2 s with k confirmations up to 10 nodes, 3 s at 30,
 * the full 4 s from 100). A suspect that nobody reached, neither the suspecting node nor k helpers, is declared dead
 * 2 s after the suspicion rather than 4 s; the subject still has those 2 s to refute (a suspicion notice reaches it
 * in one gossip hop). A quarter halved detection again in a chaos run (SIGSTOP seen dead in 2.5 s rather than 4.0 s)
 * but leaves a node whose event loop stalls for a second or two less room to answer.
 */
export const SUSPICION_MIN_FRACTION = 0.5

/**
 * Adaptive heartbeats: once the cluster is settled (nobody suspect, no member changed state for SETTLED_QUIET_MS,
 * this node keeping up, its work unchanged) a node gossips its heartbeat every SETTLED_HEARTBEAT_FACTOR intervals
 * (never more than `suspectAfterMissed` - 1), and every interval again as soon as anything is in the air. Receivers'
 * deadlines do not change (they probe a member silent for `suspectAfterMissed` intervals), so older nodes keep up.
 * Detection of a silent member rests on the SWIM probes, which keep their pace.
 */
export const SETTLED_HEARTBEAT_FACTOR = 2

/**
 * Heartbeats that scale (schedule.ts): past CLUSTER_HEARTBEATS * SETTLED_HEARTBEAT_FACTOR members (12), a node's
 * settled heartbeat interval is members / CLUSTER_HEARTBEATS base intervals (busy: half that), so the whole cluster
 * sends about CLUSTER_HEARTBEATS heartbeats per interval settled and twice that busy, whatever its size. Each
 * heartbeat is relayed to everyone about D-1 = 5 times (gossipsub) plus IHAVE ids: about 3.4 kB per node per cluster
 * heartbeat, so 12 a second busy is about 41 kB/s per node (the goal: under 50 kB/s at 1,000 nodes). Liveness rests on
 * the routine probes meanwhile (each member probed once a period), and placement reads load up to a busy interval old
 * (83 s at 1,000 nodes; 1 s up to 12).
 */
export const CLUSTER_HEARTBEATS = 6
/** The longest heartbeat interval (and so the oldest load report) whatever the cluster's size: 5 minutes. */
export const HEARTBEAT_INTERVAL_MAX_MS = 300_000
export const SETTLED_QUIET_MS = 10_000
/**
 * Nor in its first minute (as the mesh's rendezvous settles): a cluster that is forming runs at full pace. With
 * adaptive heartbeats from the start, bench/membership's full view after the last start at 5 daemons took 4.6-8.3 s
 * against 1.7-4.3 s without them (one daemon up first, four started together knowing only it).
 */
export const SETTLED_AFTER_START_MS = 60_000

/**
 * A suspicion or death notice counts only from an author that has been alive in this node's view for this long. A
 * member cut off from us (a partition, a freeze) suspected and buried everyone on its side of the cut; when it comes
 * back, gossipsub delivers those notices late (from its message cache, through IHAVE/IWANT), and each one, at the
 * subject's current incarnation, made healthy members suspect or dead until they refuted (a chaos run: a healed
 * partition-one took 10.7 s to converge, every majority node buried twice by the returning node within 0.2 s of
 * its return). Gossipsub's cache holds 5 of its 1 s heartbeats; twice that is ample on a loaded machine.
 */
export const NOTICE_AFTER_REJOIN_MS = 10_000
