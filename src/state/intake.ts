/**
 * The gate for records that come from peers, pushed or fetched by catch-up: a record must be signed by its writer
 * (whoever relayed it), be of bounded size, decode to plain entries, and carry no entry stamped further ahead of this
 * node's clock than STAMP_MAX_AHEAD_MS. A rejected one is counted by reason (`grid_state_updates_rejected_total`)
 * and logged at most once a minute per peer and reason (a misbehaving peer must not flood the log). It must not
 * apply anything: it only says yes or no.
 */
import type { Logger } from 'pino'
import { STATE_RECORD_MAX_BYTES, type StateUpdate } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import type { LogLimiter } from '../util/index.ts'
import type { StateMetrics } from './metrics.ts'
import type { RecordSigner, SignedRecord } from './signing.ts'
import { checkUpdate } from './writer-doc.ts'

/**
 * An entry stamped more than this ahead of the receiver's clock is refused (its whole record, until the clock catches
 * up: catch-up offers it again). Honest stamps are at most HybridClock's MAX_DRIFT_MS (60 s) ahead of the fastest
 * wall clock in the cluster, so 5 minutes leaves room for that plus minutes of clock error, while a stamp from the
 * future (a forged entry that nothing could overwrite or delete for a year) never lands.
 */
export const STAMP_MAX_AHEAD_MS = 5 * 60_000

export interface UpdateIntakeComponents {
  log: Logger
  limiter: LogLimiter
  metrics: Pick<StateMetrics, 'rejected'>
  signer: Pick<RecordSigner, 'verify'>
  now?: () => number
}

export class UpdateIntake {
  constructor (private readonly c: UpdateIntakeComponents) {}

  /** The record, when `rec` from `from` is signed by its writer and holds only plain entries of our collections. */
  check (rec: StateUpdate, from: NodeId): SignedRecord | undefined {
    if (rec.n === undefined || rec.s === undefined) { this.reject('unsigned', from, rec.w); return undefined }
    if (rec.u.byteLength > STATE_RECORD_MAX_BYTES) { this.reject('too-large', from, rec.w); return undefined }
    const signed = rec as SignedRecord
    if (!this.c.signer.verify(signed)) { this.reject('bad-signature', from, rec.w); return undefined }
    let maxStampMs: number
    try {
      maxStampMs = checkUpdate(rec.u).maxStampMs
    } catch (err) {
      this.reject('bad-update', from, rec.w, err)
      return undefined
    }
    const now = (this.c.now ?? Date.now)()
    if (maxStampMs > now + STAMP_MAX_AHEAD_MS) { this.reject('future-stamp', from, rec.w, undefined, { aheadMs: maxStampMs - now }); return undefined }
    return signed
  }

  /** Counts a dropped record and logs it (once a minute per peer and reason). */
  reject (reason: string, from: NodeId, writer?: NodeId, err?: unknown, extra: Record<string, unknown> = {}): void {
    this.c.metrics.rejected.inc({ reason })
    if (this.c.limiter.allow(`reject:${reason}:${from}`)) this.c.log.warn({ peer: from, writer, reason, err, ...extra }, 'dropped an invalid state update from a peer (logged once a minute per peer and reason)')
  }
}
