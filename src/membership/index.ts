/**
 * membership: who is in the cluster and whether they are alive.
 *
 * Owns this node's heartbeats (incarnation, sequence, state, load, version) on gossip, the failure detector (alive,
 * suspect, dead, left) with direct and indirect probes, refutation, graceful leave, and the live view of peers. It
 * must not store anything in the replicated state: load and health are worthless once stale.
 */
export { Membership, type MembershipInit, type MembershipComponents, type MembershipEvents } from './membership.ts'
export { FailureDetector, type DetectorOptions, type Transition } from './detector.ts'
