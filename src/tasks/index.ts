/**
 * tasks: a task's life across the mesh.
 *
 * Owns submission (spec checking, routing, the pending record), coordination (offers, fallbacks, streaming, retries
 * with backoff, re-attaching, successor takeover), cancel from any node, logs from any node, drain, and the task
 * records in the replicated state (each writer's aspects, merged). It must not run processes (the executor does)
 * nor decide placement itself (routing does).
 */
export { TaskService, WORKER_DEFAULT_TIMEOUT_MS, type ClientEvent, type TasksComponents, type TasksInit } from './service.ts'
export { newTaskId } from './task-ids.ts'
export { lostItsEnv } from './coordinator.ts'
export { DispatchLedger } from './dispatch-ledger.ts'
export { TaskRecords, merge, statusOf, toRecord, type Aspects } from './records.ts'
export { normalizeSpec, SubmitRequestSchema, DEFAULTS, type SubmitOptions } from './spec.ts'
export { parseStdinBody, type StdinWrite } from './stdin-relay.ts'
export { orphaned, successor, type SuccessorView } from './successor.ts'
export { isDraining, nodeName, requireNode, resolveNode, type RegistryReader } from './view.ts'
export { drainMarkPath } from './drain-mark.ts'
export { EventQueue } from './event-queue.ts'
export { WorkerService, type WorkerCallRequest, type WorkerCallResult } from './worker-router.ts'
export { QueueControl, QUEUE_REQUEST_TIMEOUT_MS, type QueueControlComponents } from './queue-control.ts'
export { Stealer, STEAL_AFTER_MS, STEAL_INTERVAL_MS, type StealerComponents, type StealerInit } from './stealer.ts'
