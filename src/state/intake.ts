/**
 * The gate for updates that come from peers, pushed or fetched by catch-up: an update must decode to plain entries
 * before it touches a document. A rejected one is counted by reason and logged at most once a minute per peer (a
 * misbehaving peer must not flood the log). It must not apply anything: it only says yes or no.
 */
import type { Logger } from 'pino'
import type { NodeId } from '../interface/index.ts'
import type { LogLimiter } from '../util/index.ts'
import type { StateMetrics } from './metrics.ts'
import { checkUpdate } from './writer-doc.ts'

export interface UpdateIntakeComponents {
  log: Logger
  limiter: LogLimiter
  metrics: Pick<StateMetrics, 'rejected'>
}

export class UpdateIntake {
  constructor (private readonly c: UpdateIntakeComponents) {}

  /** True when the update from `from` holds only plain entries of our collections; otherwise it is rejected. */
  check (update: Uint8Array, from: NodeId): boolean {
    try {
      checkUpdate(update)
      return true
    } catch (err) {
      this.reject('bad-update', from, err)
      return false
    }
  }

  /** Counts a dropped update and logs it (once a minute per peer). */
  reject (reason: string, from: NodeId, err?: unknown): void {
    this.c.metrics.rejected.inc({ reason })
    if (this.c.limiter.allow(`reject:${from}`)) this.c.log.warn({ peer: from, reason, err }, 'dropped an invalid state update from a peer (logged once a minute per peer)')
  }
}
