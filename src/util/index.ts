/**
 * util: small helpers every module may use: crash-safe file writes, backoff with jitter, timers, a log limiter and
 * the data directory's lock.
 *
 * Must not import any other module of ours but interface, and holds no state of its own.
 */
export * from './fs.ts'
export * from './time.ts'
export * from './log-limiter.ts'
export * from './pid-lock.ts'
