import { setTimeout as sleep } from 'node:timers/promises'

/** Exponential backoff with full jitter: a random delay in [base, min(cap, base * 2^attempt)]. */
export function backoffMs (attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt))
  return Math.round(baseMs + random() * Math.max(0, ceiling - baseMs))
}

/** A value spread by ±fraction, so that many nodes on the same timer do not fire together. */
export function jitter (ms: number, fraction = 0.2, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - fraction + 2 * fraction * random())))
}

/**
 * Resolves after `ms`, or rejects when the signal aborts (with Node's AbortError, the signal's reason as its cause):
 * node:timers/promises' setTimeout with the signal second.
 */
export async function delay (ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal })
}

/** Runs `fn` every `intervalMs` (jittered), never overlapping itself; errors go to `onError`. */
export function repeat (fn: () => Promise<void> | void, intervalMs: number, onError: (err: unknown) => void, opts: { jitter?: number, immediate?: boolean } = {}): { stop: () => void } {
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  const schedule = (ms: number): void => {
    if (stopped) return
    timer = setTimeout(() => { void run() }, ms)
    timer.unref?.()
  }
  const run = async (): Promise<void> => {
    try { await fn() } catch (err) { onError(err) }
    schedule(jitter(intervalMs, opts.jitter ?? 0.1))
  }
  schedule(opts.immediate === true ? 0 : jitter(intervalMs, opts.jitter ?? 0.1))
  return { stop: () => { stopped = true; clearTimeout(timer) } }
}

/**
 * A deadline that an answer already received beats: `fn` runs `ms` from now, but only after the event loop has read
 * the I/O that is ready by then. After a stall of the loop (a starved CPU, a long GC, SIGSTOP), Node runs the overdue
 * timers of an iteration before it reads the sockets, so a plain timer would fail a request whose answer has been
 * waiting in the kernel for most of the stall; `setImmediate` runs after that iteration's I/O has been read. Cleared
 * with `clearTimeout`, like the timer it returns (a callback whose timer fired runs once the I/O is read, so it must
 * check that what it guards is still pending).
 */
export function afterPendingIo (fn: () => void, ms: number): NodeJS.Timeout {
  return setTimeout(() => { setImmediate(fn) }, ms)
}
