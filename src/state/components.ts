/**
 * What the state store needs from the rest of the node, and nothing more: this node's id, the peers it is connected
 * to, request/response and one-way notifications on the long-lived stream of each pair, and new connections. The mesh
 * satisfies these interfaces as it is (the composition root passes it unchanged); unit tests pass a stub. This file
 * must not import the mesh: state depends on the shape, not the implementation.
 */
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { MethodDef, RequestOf, ResponseOf } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import type { RecordSigner } from './signing.ts'

/** Request/response and notifications between this node and one peer. */
export interface StateRpc {
  /** Serves a method for peers; `ctx.peer` is the authenticated caller. */
  handle<M extends MethodDef> (method: M, fn: (req: RequestOf<M>, ctx: { peer: NodeId }) => Promise<ResponseOf<M>> | ResponseOf<M>): void
  /** Receives a one-way notification; `peer` is the authenticated sender. */
  onNotify<M extends MethodDef> (method: M, fn: (data: RequestOf<M>, peer: NodeId) => void): void
  /** Sends a notification on an open stream to the peer (never dials); false when none is open or it is full. */
  notify<M extends MethodDef> (peer: NodeId, method: M, data: RequestOf<M>): boolean
  /** Sends a request and waits for its answer, for at most `timeoutMs`. */
  request<M extends MethodDef> (peer: NodeId, method: M, data: RequestOf<M>, opts?: { timeoutMs?: number }): Promise<ResponseOf<M>>
  /** True when a stream to the peer is open now. */
  hasChannel (peer: NodeId): boolean
  /** Opens a stream to the peer if none is open. */
  ensureChannel (peer: NodeId): Promise<void>
}

/** This node's place among its peers, as the state store sees it. */
export interface StateMesh {
  readonly peerId: NodeId
  readonly rpc: StateRpc
  /** The peers connected now. */
  connections (): NodeId[]
  on (event: 'peer:connect', listener: (peer: NodeId) => void): unknown
  off (event: 'peer:connect', listener: (peer: NodeId) => void): unknown
}

export interface StateComponents {
  mesh: StateMesh
  /** signs this node's records with its identity key and verifies peers' (Ed25519RecordSigner in the daemon) */
  signer: RecordSigner
  logger: Logger
  registry: Registry
}
