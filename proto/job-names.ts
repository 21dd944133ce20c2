/**
 * Jobs' names and limits, without their schemas: what gridctl needs to check a `distribute` before sending it. Kept
 * apart from proto/jobs.ts so that the CLI does not load typebox (tests/cluster/gridctl.test.ts counts its modules).
 */
export const JOB_STRATEGIES = ['broadcast', 'round-robin', 'random', 'least-loaded', 'map-reduce'] as const
export type JobStrategy = typeof JOB_STRATEGIES[number]
export const JOB_AGGREGATES = ['all-success', 'first-success', 'majority'] as const
export type JobAggregate = typeof JOB_AGGREGATES[number]
export const JOB_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const
export type JobStatus = typeof JOB_STATUSES[number]
/** A run's status in a job's results. */
export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled'

/** Most items one job may have. */
export const JOB_ITEMS_MAX = 1_000_000
/** Most bytes of one run's stdout a job keeps (the rest is in `gridctl logs` of the run's task). */
export const JOB_RESULT_STDOUT_MAX_BYTES = 64 * 1024
/** Items per chunk entry (items and progress alike). */
export const JOB_CHUNK_ITEMS = 64
/**
 * Most bytes one chunk entry holds of items (as JSON) or of its runs' stdout and errors: a state entry is at most
 * 2 MiB (STATE_ENTRY_MAX_BYTES), so 64 items or results of 64 KiB each cannot all go in one. A job whose items add up
 * to more within one chunk is refused; a chunk whose runs printed more keeps each run's share of it (the whole
 * stdout stays in `gridctl logs` of the run's task, and the driver, its reduce and its verdict see all of it).
 */
export const JOB_CHUNK_MAX_BYTES = 1536 * 1024
/** Largest item, as JSON text (it travels in its run's spec and on its stdin). */
export const JOB_ITEM_MAX_BYTES = 64 * 1024
