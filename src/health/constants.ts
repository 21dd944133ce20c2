/**
 * Placement health's defaults (after Envoy's outlier detection). Each is also a config field (`health.*`) where an
 * operator may want another value; the README's Placement section lists them.
 */

/** Consecutive dispatch failures (not the task's own exit) that open a node's breaker: Envoy's consecutive_5xx. */
export const EJECT_AFTER_FAILURES = 5
/** The first ejection's cool-down; each further ejection adds as much again (30 s, 60 s, 90 s...)... */
export const BASE_EJECTION_MS = 30_000
/** ...up to this: a node that keeps failing is tried again at least every 5 minutes. */
export const MAX_EJECTION_MS = 300_000
/**
 * At most this share of the alive nodes may be ejected at once (at least one may always be), so one bad deploy
 * cannot make every node degraded. Envoy's default is 10 %; a Grid cluster is often 3 to 10 nodes, where 10 % is none.
 */
export const MAX_EJECTED_PERCENT = 50
/** The data directory's disk is "nearly full" below this share free. */
export const DISK_FREE_MIN_PERCENT = 5
/** How often the data directory's free space is read again. */
export const DISK_CHECK_INTERVAL_MS = 10_000
/** An event loop that has lagged (Lifeguard's local health above 0) this long without a break degrades the node. */
export const LAG_DEGRADED_AFTER_MS = 30_000
/** Health changes kept per node for `gridctl health NODE`. */
export const HEALTH_HISTORY_LENGTH = 20
