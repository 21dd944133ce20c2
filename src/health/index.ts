/**
 * health: whether this node should get work (placement, issue 12).
 *
 * Owns this node's verdict on itself (healthy, degraded, unavailable, with its reason and since when), its circuit
 * breaker over dispatch failures (ejection, growing cool-down, half-open trial, the bounded share of the cluster
 * ejected) and the pure rule that turns gossiped facts into a peer's health. It must not gossip (membership carries
 * the verdict in heartbeats) nor route (routing reads the verdict from its candidates).
 */
export { CircuitBreaker, type BreakerOptions } from './breaker.ts'
export { NodeHealthMonitor, type NodeHealthComponents, type NodeHealthInit } from './node-health.ts'
export { peerHealth } from './peer-health.ts'
export * from './constants.ts'
