/**
 * Membership's surface (what it offers: MemberStates, its events and options) and what it needs from the rest of
 * the daemon (MembershipComponents and the narrow mesh it is handed). The daemon passes its Mesh structurally; unit
 * tests pass stubs.
 */
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { MethodDef, RequestOf, ResponseOf } from '../../proto/index.ts'
import type { HealthReport, LoadReport, MemberState, MemberView, NodeId } from '../interface/index.ts'
import type { GossipHandler, GossipValidator } from '../mesh/index.ts'
import type { Transition } from './detector.ts'

export interface MembershipInit {
  cluster: string
  name: string
  version: string
  heartbeatIntervalMs: number
  suspectAfterMissed: number
  probeTimeoutMs: number
  indirectProbes: number
  suspicionTimeoutMs: number
  /** How long a dead or left member stays in the member table (config membership.deadMemberExpiry). */
  deadMemberExpiryMs: number
}

export interface MembershipEvents {
  'member:state': [Transition]
}

/** What other modules read about the cluster's members: depend on this, not on the Membership class. */
export interface MemberStates {
  /** Every known member, this node first. */
  view(): MemberView[]
  /** What this node believes about a peer; undefined for a peer it does not know, and for this node itself. */
  state(id: NodeId): MemberState | undefined
  on<K extends keyof MembershipEvents>(event: K, listener: (...args: MembershipEvents[K]) => void): this
  off<K extends keyof MembershipEvents>(event: K, listener: (...args: MembershipEvents[K]) => void): this
}

/** The request/response calls membership makes (member.ping, member.probe) and serves. */
export interface MembershipRpc {
  handle<M extends MethodDef>(method: M, fn: (req: RequestOf<M>) => Promise<ResponseOf<M>> | ResponseOf<M>): void
  request<M extends MethodDef>(peer: NodeId, method: M, data: RequestOf<M>, opts?: { timeoutMs?: number }): Promise<ResponseOf<M>>
}

export interface MembershipMeshEvents {
  'peer:connect': [NodeId]
  'peer:disconnect': [NodeId]
}

/** The part of the mesh membership uses. */
export interface MembershipMesh {
  readonly peerId: NodeId
  readonly rpc: MembershipRpc
  subscribe(topic: string, handler: GossipHandler, validate: GossipValidator): void
  publish(topic: string, data: Uint8Array): Promise<void>
  isConnected(peer: NodeId): boolean
  /** A member exists (heard in a heartbeat): dial it gradually; `left` ones slowly. */
  learn(peer: NodeId, addrs?: string[], how?: { left?: boolean }): void
  /** Stop dialling a member that was removed. */
  forget(peer: NodeId): void
  /** Close every connection to a peer this node found dead. */
  hangUp(peer: NodeId): Promise<void>
  /** Whether the connections to a peer closed on purpose just now (a trim back to the connection cap): no failure. */
  closedOnPurpose?(peer: NodeId): boolean
  on<K extends keyof MembershipMeshEvents>(event: K, listener: (...args: MembershipMeshEvents[K]) => void): unknown
  off<K extends keyof MembershipMeshEvents>(event: K, listener: (...args: MembershipMeshEvents[K]) => void): unknown
}

/** This node's event-loop delay, as local health reads it (monitorEventLoopDelay by default). */
export interface LagSampler {
  enable(): void
  disable(): void
  /** p99 of the delays seen since the last reset, in ms. */
  p99Ms(): number
  /** The longest delay seen since the last reset, in ms (a stall: SIGSTOP, a starved CPU); p99 when absent. */
  maxMs?(): number
  reset(): void
}

export interface MembershipComponents {
  mesh: MembershipMesh
  logger: Logger
  registry: Registry
  /** This node's current load, for its heartbeats. */
  load: () => LoadReport
  /** Whether a node is in the node registry: gossip is heard only from authors connected to us or registered. */
  isRegistered: (id: NodeId) => boolean
  /** Where local health reads the event-loop delay; the process's own by default (tests pass a fixed one). */
  eventLoopLag?: LagSampler
  /** This node's own health verdict and whether its queue is paused, for its heartbeats (placement, issue 12). */
  selfHealth?: () => HealthReport
  paused?: () => boolean
}
