/**
 * What waits to leave this node: this node's own updates, for its peers, and every applied update (local, pushed or
 * fetched), for the write-ahead log. A write after a quiet spell is flushed within a couple of ms; under load,
 * batches are spaced by how much the last one carried, so the messages to peers stay few whatever the write rate.
 * A flush hands merged batches to `publish` and appends to the log. It must not choose peers or read documents
 * beyond this node's current generation.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { STATE_BATCH_MAX_BYTES, type StateUpdate } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import type { LogLimiter } from '../util/index.ts'
import type { StateMetrics } from './metrics.ts'
import type { DocRecord, StateFiles } from './persistence.ts'
import { EMPTY_UPDATE } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

export interface OutboxComponents {
  selfId: NodeId
  writers: Pick<WriterSet, 'own'>
  files: Pick<StateFiles, 'append'>
  /** Sends one batch of this node's updates to its peers. */
  publish: (msg: StateUpdate) => Promise<void>
  metrics: Pick<StateMetrics, 'applied'>
  log: Logger
  limiter: LogLimiter
}

export interface OutboxInit {
  /** A local write after a quiet spell is pushed this soon (under load, batches are up to 100 ms apart). */
  flushIntervalMs?: number
}

/** How soon a write after a quiet spell is flushed, by default. */
export const DEFAULT_FLUSH_INTERVAL_MS = 2
/** Under load, the next batch waits this long per update the last one carried... */
const PUSH_SPACING_PER_UPDATE_MS = 5
/** ...up to this long. */
const PUSH_MAX_SPACING_MS = 100

export class Outbox {
  private outbox: Uint8Array[] = []
  private walQueue: DocRecord[] = []
  private flushTimer?: NodeJS.Timeout
  private lastFlushAt = 0
  private lastBatchSize = 0
  private running = false

  constructor (private readonly c: OutboxComponents, private readonly init: OutboxInit) {}

  /** Batches go to peers only while started; the log gets everything either way. */
  start (): void {
    this.running = true
  }

  stop (): void {
    this.running = false
    clearTimeout(this.flushTimer)
  }

  /** A local write to this node's document at generation `gen`: for the peers and the log. */
  local (update: Uint8Array, gen: number): void {
    this.outbox.push(update)
    this.walQueue.push({ w: this.c.selfId, g: gen, u: update })
    this.c.metrics.applied.inc({ source: 'local' })
    this.scheduleFlush()
  }

  /** An update from a peer, applied here: for the log only (it is never pushed on). */
  received (rec: DocRecord): void {
    this.walQueue.push(rec)
  }

  scheduleFlush (): void {
    if (this.flushTimer !== undefined) return
    const sinceLast = Date.now() - this.lastFlushAt
    // the more the last batch carried, the longer the next one waits: up to PUSH_MAX_SPACING_MS
    const spacing = Math.min(PUSH_MAX_SPACING_MS, this.lastBatchSize * PUSH_SPACING_PER_UPDATE_MS)
    const wait = Math.max(this.init.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS, spacing - sinceLast)
    this.flushTimer = setTimeout(() => { void this.flush() }, wait)
  }

  /** Waits until every local write so far has been pushed to peers and logged. */
  async flush (): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    this.lastFlushAt = Date.now()
    this.lastBatchSize = this.outbox.length
    const outbox = this.outbox
    const wal = this.walQueue
    this.outbox = []
    this.walQueue = []
    const own = this.c.writers.own
    if (outbox.length > 0 && this.running) {
      for (const batch of batches(outbox, STATE_BATCH_MAX_BYTES)) {
        await this.c.publish({ w: this.c.selfId, g: own.gen, u: batch })
      }
    }
    try {
      await this.c.files.append(wal)
    } catch (err) {
      if (this.c.limiter.allow('wal')) this.c.log.error({ err }, 'cannot write the state log; state survives in memory and at peers')
    }
  }
}

/** Groups updates into merged batches of at most `max` bytes; a batch still larger goes as an empty update (a nudge: peers fetch it by catch-up). */
function batches (updates: Uint8Array[], max: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let group: Uint8Array[] = []
  let size = 0
  for (const u of updates) {
    if (group.length > 0 && size + u.byteLength > max) {
      out.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
      group = []
      size = 0
    }
    group.push(u)
    size += u.byteLength
  }
  if (group.length > 0) out.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
  return out.flatMap(u => u.byteLength > max ? [EMPTY_UPDATE] : [u])
}
