/**
 * membership: who is in the cluster and whether they are alive.
 *
 * Owns this node's heartbeats (incarnation, sequence, state, load, version) on gossip, the failure detector (alive,
 * suspect, dead, left) with direct and indirect probes, refutation, graceful leave, and the live view of peers. It
 * must not store anything in the replicated state: load and health are worthless once stale.
 *
 * Other modules depend on `MemberStates` (view, state, member:state events), not on the Membership class; membership
 * depends on `MembershipMesh`, the part of the mesh it uses.
 */
export { Membership } from './membership.ts'
export type {
  MemberStates, MembershipInit, MembershipComponents, MembershipEvents, MembershipMesh, MembershipMeshEvents,
  MembershipRpc, LagSampler
} from './types.ts'
export { FailureDetector, type DetectorOptions, type Transition } from './detector.ts'
