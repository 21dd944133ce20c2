/**
 * state: the replicated picture of the cluster (Yjs).
 *
 * Owns one Yjs document per writer (each node writes only its own; every node holds them all), their replication
 * (updates pushed on each peer pair's stream, tagged with transaction origins, and state-vector catch-up),
 * crash-safe persistence and compaction, expiry and collection, and the typed facades for the node registry, sessions
 * and task records. It must never leak a Y.Map or Y.Doc: other modules see plain values.
 */
export { StateStore, type StateInit, type StateEvents, type ChangeEvent } from './store.ts'
export type { StateComponents, StateMesh, StateRpc } from './components.ts'
export type { StoredEntry } from './merged-view.ts'
export type { Collector } from './maintenance.ts'
export { NodeRegistry, Sessions, ForgottenNodes, SESSION_ID_PATTERN, type SessionRecord } from './collections.ts'
export { HybridClock, compareStamps, type Stamp } from './hlc.ts'
export { checkUpdate } from './writer-doc.ts'
export { Ed25519RecordSigner, signedBytes, type RecordSigner, type SignedRecord } from './signing.ts'
export { STAMP_MAX_AHEAD_MS } from './intake.ts'
export type { ForgetWitness } from './maintenance.ts'
export { SelfRegistration, type Facts } from './self-registration.ts'
