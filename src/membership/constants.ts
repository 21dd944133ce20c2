/** Membership's fixed timings and limits (the configurable ones are in MembershipInit), each with why it is so. */

/** How long a leaving node waits after announcing `left`, so the announcement gets out before connections close. */
export const LEAVE_FLUSH_MS = 250

/** An interval whose event-loop delay p99 exceeds this counts as "slow" for local health. */
export const SLOW_LOOP_MS = 200

/** Local health rises to at most this, so deadlines stretch at most (1 + LOCAL_HEALTH_MAX) times, as in Lifeguard. */
export const LOCAL_HEALTH_MAX = 8

/** Resolution of the event-loop delay histogram that local health reads. */
export const LAG_RESOLUTION_MS = 20

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
export const PROBE_JITTER = 0.2
