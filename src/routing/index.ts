/**
 * routing: where a task should run.
 *
 * Owns placement as a pure function of the cluster view and the task's requirements: feasibility filters,
 * strategy rankers (least-loaded with the power of two choices, round-robin, random, capability, region, affinity,
 * an explicit node), a first choice with fallbacks, and the explanation when no node can ever run the task. It must
 * do no I/O and keep no timers or state: callers pass randomness, counters and recent dispatches in.
 */
export { route, freeFraction, hasRoom, labelOf, isRouter, POOL_LABEL, DEFAULT_POOL, type Candidate, type Requirements, type RouteContext, type RouteResult, type SessionPlan } from './route.ts'
export { boundedLoadHash } from './bounded-hash.ts'
