/** The lifecycle every long-lived component follows; the composition root starts in order and stops in reverse. */
export interface Startable {
  start(): Promise<void> | void
  stop(): Promise<void> | void
}

/** Options every async operation takes last: a signal that aborts it (deadlines are `AbortSignal.timeout`). */
export interface AbortOptions {
  signal?: AbortSignal
}
