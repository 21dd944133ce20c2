/** Exponential backoff with full jitter: a random delay in [base, min(cap, base * 2^attempt)]. */
export function backoffMs (attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt))
  return Math.round(baseMs + random() * Math.max(0, ceiling - baseMs))
}

/** A value spread by ±fraction, so that many nodes on the same timer do not fire together. */
export function jitter (ms: number, fraction = 0.2, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - fraction + 2 * fraction * random())))
}

/** Resolves after `ms`, or rejects when the signal aborts. */
export async function delay (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) throw signal.reason
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** A signal that aborts when any of the given ones does, or after `timeoutMs`. */
export function anySignal (signals: Array<AbortSignal | undefined>, timeoutMs?: number): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => s !== undefined)
  if (timeoutMs !== undefined) list.push(AbortSignal.timeout(timeoutMs))
  return list.length === 1 ? list[0] as AbortSignal : AbortSignal.any(list)
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
