/**
 * interface: the shared vocabulary of every module.
 *
 * Owns plain types (node ids, node states, load reports, the cluster view), typed errors with stable codes and the
 * Startable lifecycle. It must not hold behaviour beyond small pure helpers, and imports nothing from other modules.
 */

export * from './errors.ts'
export * from './types.ts'
export * from './lifecycle.ts'
export * from './units.ts'
export * from './hints.ts'
