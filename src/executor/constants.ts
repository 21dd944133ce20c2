/** How long after a spawner crash it is started again, doubling up to SPAWNER_RESTART_CAP_MS: a spawner that dies at
 * once (out of memory, a broken node binary) must not be restarted in a tight loop. */
export const SPAWNER_RESTART_BASE_MS = 100
export const SPAWNER_RESTART_CAP_MS = 10_000
/** A spawner that has lived this long after a restart is healthy again: the next crash waits the base time. */
export const SPAWNER_RESTART_RESET_MS = 60_000

/**
 * Bytes written to a child's stdin that the spawner has not yet handed to the child. Above this, `write` answers
 * false and the writer waits for `drain`: a child that does not read its stdin then holds up its writer, not the
 * spawner's memory.
 */
export const STDIN_HIGH_WATER_BYTES = 64 * 1024

/**
 * How long a child with direct stdio (a warm worker) may take to connect: from the spawn request to the spawner's
 * connection with the right hello. Past it the start failed (the child is killed if it was forked). Generous: the
 * spawner forks one child at a time, and a burst of tasks may be ahead.
 */
export const STDIO_CONNECT_TIMEOUT_MS = 10_000
/**
 * After a child with direct stdio exits, how long its last stdout may take to arrive before its exit is reported
 * anyway (a grandchild that escaped its process group may hold the socket open): the spawner waits as long for a
 * relayed child's pipes.
 */
export const STDIO_FLUSH_TIMEOUT_MS = 2_000

/** A task's stdin held while it waits to start (queued): past this its client waits until the process reads. */
export const STDIN_BUFFER_MAX_BYTES = 1024 * 1024

/** How often tasks' scratch directories past the record retention are removed (and once at start). */
export const SCRATCH_SWEEP_INTERVAL_MS = 10 * 60_000
/**
 * Files a scratch sweep removes at once. fs.promises.rm of a 10,000-file directory starts an unlink for every entry
 * at once and then runs their thousands of callbacks back to back (measured: the event loop held up to 274 ms at a
 * time); a few at a time keeps each turn of the loop short, and the disk stays busy all the same.
 */
export const SCRATCH_REMOVE_CONCURRENCY = 8

/** Finished tasks kept for `logs` at most (besides their total log budget): bounds the executor's memory under churn. */
export const RETAINED_TASKS_MAX = 10_000

/** How long after a worker crash it is started again, doubling up to WORKER_RESTART_CAP_MS. */
export const WORKER_RESTART_BASE_MS = 250
export const WORKER_RESTART_CAP_MS = 30_000
/** A retiring worker gets this long to exit by itself after its stdin closes, before TERM (then KILL after the
 * kill grace period): a worker is asked to exit when stdin closes, and may need a moment to unload a model. */
export const WORKER_EXIT_GRACE_MS = 2_000
/** How soon a request waits to try again when no worker could be started (resources or the spawner busy). */
export const WORKER_START_RETRY_MS = 200

/**
 * How soon after a task starts or ends the tasks still queued get their pending reason (place in the queue, what
 * they lack) recorded again. Each such record is replicated, so a queue of hundreds is not rewritten at every start.
 */
export const QUEUE_REASON_REFRESH_MS = 1_000
