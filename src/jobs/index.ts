/**
 * jobs: one command distributed over the cluster (gridctl distribute): broadcast, round-robin, random, least-loaded
 * and map-reduce, with all-success, first-success and majority aggregation.
 *
 * Owns job submission (checking the request and the items), driving a job from the node it was submitted to (its
 * runs are tasks, submitted through the tasks service), the job's compact replicated state (a document, items and
 * progress in chunks), cancel and retry from any node, and takeover by a successor when the driver dies. It must not
 * place runs (tasks' routing does) nor run processes (the executor does).
 */
export { JobService, type JobsComponents, type JobsInit } from './service.ts'
export { JobRecords } from './records.ts'
export { parseItems, checkItems } from './items.ts'
export { verdict, decidedEarly } from './aggregate.ts'
export { broadcastTargets, fitParallel, runStrategy } from './placement.ts'
export { normalizeJob } from './request.ts'
