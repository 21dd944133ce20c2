/**
 * Saying why a batch of warm-worker requests waits: nothing for a batch answered within WORKER_WAIT_NOTICE_MS (no
 * timer even starts unless the pool says one of its requests waits), then the reason of the first request still
 * waiting, at once and whenever it changes, looked at every WORKER_WAIT_RECHECK_MS until the batch is answered.
 */
import type { WorkerWait } from '../executor/index.ts'
import { WORKER_WAIT_REASON_MAX_CHARS } from '../../proto/index.ts'

/** How long a request may wait before its caller is told why. */
export const WORKER_WAIT_NOTICE_MS = 500
/** How often a waiting batch's reason is looked at again. */
export const WORKER_WAIT_RECHECK_MS = 500

export class WaitWatch {
  private readonly waits: WorkerWait[] = []
  private timer?: NodeJS.Timeout
  private last?: string
  private stopped = false

  /** `say` gets each new reason; a `say` that throws (the caller went away) ends the watch. */
  constructor (private readonly say: (reason: string) => void) {}

  /** A request of the batch waits (the pool's handle). */
  readonly add = (w: WorkerWait): void => {
    if (this.stopped) return
    this.waits.push(w)
    this.timer ??= setTimeout(() => { this.look() }, WORKER_WAIT_NOTICE_MS)
  }

  /** The batch is answered. */
  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private look (): void {
    if (this.stopped) return
    let reason: string | undefined
    for (const w of this.waits) {
      reason = w.reason()
      if (reason !== undefined) break
    }
    if (reason !== undefined && reason !== this.last) {
      this.last = reason
      try {
        this.say(reason.slice(0, WORKER_WAIT_REASON_MAX_CHARS))
      } catch {
        this.stop()
        return
      }
    }
    this.timer = setTimeout(() => { this.look() }, WORKER_WAIT_RECHECK_MS)
  }
}
