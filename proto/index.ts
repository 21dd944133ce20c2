/**
 * proto: every wire contract, in one place.
 *
 * Owns libp2p protocol ids, gossip topic names, frame size limits, the shapes of every peer message with its runtime
 * validator, and the control API's request/response shapes. It must hold no behaviour beyond encoding, decoding and
 * validating; modules import their contracts from here rather than defining them inline.
 */
export * from './constants.ts'
export * from './codec.ts'
export * from './validate.ts'
export * from './rpc.ts'
export * from './membership.ts'
export * from './methods.ts'
export * from './api.ts'
export * from './swarm-key.ts'
export * from './state.ts'
export * from './tasks.ts'
export * from './placement.ts'
export * from './legacy-entries.ts'
export * from './worker.ts'
export * from './task-stream.ts'
export * from './jobs.ts'
export * from './sync.ts'
export * from './workflows.ts'
