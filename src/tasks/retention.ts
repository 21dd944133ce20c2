/**
 * Which of this node's own finished task records may go: those finished longer ago than the retention period, and,
 * past `maxRecords` finished records, the oldest (so a writer's task records, and its document, stay bounded however
 * many tasks finish within the retention period). It is the collector the state store calls for each of this node's
 * task entries every maintenance round; it must not write anything itself.
 */
import { FINAL_STATUSES, decodeTaskEntry } from '../../proto/index.ts'

/** Most finished task records a node keeps as a writer, by default (the oldest go first past it). */
export const TASK_RECORDS_MAX = 10_000

export class RecordRetention {
  /** this round's finished records: key → when it finished */
  private current = new Map<string, number>()
  private roundAt = Number.NaN
  /** the oldest finished records past `maxRecords`, as of the last full round */
  private overflow = new Set<string>()

  constructor (private readonly retentionMs: number, private readonly maxRecords = TASK_RECORDS_MAX) {}

  /** Called for each of this node's task entries in a round (all with the same `now`). */
  collectable (key: string, value: unknown, now: number): boolean {
    if (now !== this.roundAt) this.newRound(now)
    const v = decodeTaskEntry(value)
    const finished = v?.exec?.finishedAt ?? v?.coord?.finishedAt
    if (v === undefined || finished === undefined) return false
    const finalHere = (v.exec !== undefined && FINAL_STATUSES.has(v.exec.status)) || v.coord?.final !== undefined
    if (!finalHere) return false
    if (now - finished > this.retentionMs) return true
    this.current.set(key, finished)
    return this.overflow.has(key)
  }

  /** The round that ended gave every finished record still kept: past the cap, its oldest go in this round. */
  private newRound (now: number): void {
    const last = this.current
    this.current = new Map()
    this.roundAt = now
    this.overflow = new Set()
    const excess = last.size - this.maxRecords
    if (excess <= 0) return
    const oldest = [...last].sort((a, b) => a[1] - b[1]).slice(0, excess)
    for (const [key] of oldest) this.overflow.add(key)
  }
}
