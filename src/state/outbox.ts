/**
 * What waits to leave this node: this node's own updates, for its peers, and every applied update (local, pushed or
 * fetched), for the write-ahead log. A write after a quiet spell is flushed within a couple of ms; under load,
 * batches are spaced by how much the last one carried, so the messages to peers stay few whatever the write rate.
 * A flush signs each merged batch as this node's next record (kept in its own record log, for catch-up), hands it to
 * `publish` and appends it to the log. It must not choose peers or read documents beyond this node's current generation.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { STATE_BATCH_MAX_BYTES, STATE_RECORD_MAX_BYTES, type StateUpdate } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import type { LogLimiter } from '../util/index.ts'
import type { StateMetrics } from './metrics.ts'
import type { DocRecord, StateFiles } from './persistence.ts'
import type { RecordSigner, SignedRecord } from './signing.ts'
import { EMPTY_UPDATE } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

export interface OutboxComponents {
  selfId: NodeId
  writers: Pick<WriterSet, 'own' | 'ownLog' | 'appendOwn'>
  signer: Pick<RecordSigner, 'sign'>
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
  private outbox: Array<{ u: Uint8Array, gen: number }> = []
  private walQueue: DocRecord[] = []
  /** this node's records signed and not yet flushed */
  private sealed: SignedRecord[] = []
  private flushTimer?: NodeJS.Timeout
  private lastFlushAt = 0
  private lastBatchSize = 0
  private running = false
  /** The flush in progress, and the one that callers since it began wait for (it begins when this one ends). */
  private flushing: Promise<void> | undefined
  private nextFlush: Promise<void> | undefined

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
    this.outbox.push({ u: update, gen })
    this.c.metrics.applied.inc({ source: 'local' })
    this.scheduleFlush()
  }

  /** An update from a peer, applied here: for the log only (it is never pushed on). */
  received (rec: DocRecord): void {
    this.walQueue.push(rec)
  }

  /** Signs `u` as this node's next record of generation `gen` and keeps it in its record log. */
  signOwn (gen: number, u: Uint8Array): SignedRecord {
    if (u.byteLength > STATE_RECORD_MAX_BYTES) this.c.log.error({ bytes: u.byteLength }, 'a state record is over STATE_RECORD_MAX_BYTES; peers will refuse it')
    const n = this.c.writers.ownLog.next
    const rec: SignedRecord = { w: this.c.selfId, g: gen, n, u, s: this.c.signer.sign(this.c.selfId, gen, n, u) }
    this.c.writers.appendOwn(rec)
    return rec
  }

  scheduleFlush (): void {
    if (this.flushTimer !== undefined) return
    const sinceLast = Date.now() - this.lastFlushAt
    // the more the last batch carried, the longer the next one waits: up to PUSH_MAX_SPACING_MS
    const spacing = Math.min(PUSH_MAX_SPACING_MS, this.lastBatchSize * PUSH_SPACING_PER_UPDATE_MS)
    const wait = Math.max(this.init.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS, spacing - sinceLast)
    this.flushTimer = setTimeout(() => { void this.flush() }, wait)
  }

  /**
   * Signs the local updates waiting so far into this node's next records (kept in its record log, so catch-up serves
   * them at once); the next flush pushes and logs them.
   */
  seal (): void {
    if (this.outbox.length === 0) return
    const gen = this.c.writers.own.gen
    // updates of an older generation are in the snapshot that began this one (regeneration copies the document)
    const updates = this.outbox.filter(x => x.gen === gen).map(x => x.u)
    this.outbox = []
    for (const u of batches(updates, STATE_BATCH_MAX_BYTES)) this.sealed.push(this.signOwn(gen, u))
  }

  /**
   * Waits until every local write so far has been pushed to peers and logged. Callers share flushes (group commit):
   * every call until the next flush begins waits for that one, which begins at the end of this turn of the event
   * loop, or once the flush in progress has ended (it may have sealed before the caller's write). So many requests
   * answered at once (each waiting for its record to be logged) cost one signed record and one log append, not one each.
   */
  async flush (): Promise<void> {
    if (this.nextFlush !== undefined) return await this.nextFlush
    const begin = (): Promise<void> => {
      this.nextFlush = undefined
      const now = this.flushing = this.flushNow().finally(() => { if (this.flushing === now) this.flushing = undefined })
      return now
    }
    const after = this.flushing ?? new Promise<void>(resolve => { setImmediate(resolve) })
    const next = this.nextFlush = after.then(begin, begin)
    return await next
  }

  /** One flush: seals what waits, pushes it, appends it to the log. */
  private async flushNow (): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    this.lastFlushAt = Date.now()
    this.lastBatchSize = this.outbox.length + this.sealed.length
    this.seal()
    const signed = this.sealed
    this.sealed = []
    const wal = [...this.walQueue, ...signed]
    this.walQueue = []
    if (this.running) {
      // a record too big for a push goes as a nudge: peers fetch it by catch-up
      for (const rec of signed) await this.c.publish(rec.u.byteLength <= STATE_BATCH_MAX_BYTES * 2 ? rec : { w: rec.w, g: rec.g, u: EMPTY_UPDATE })
    }
    try {
      await this.c.files.append(wal)
    } catch (err) {
      if (this.c.limiter.allow('wal')) this.c.log.error({ err }, 'cannot write the state log; state survives in memory and at peers')
    }
  }
}

/** Merging costs more than linearly in the number of updates: a batch merges at most this many. */
const BATCH_MAX_UPDATES = 256

/** Groups updates into merged batches of at most `max` bytes and BATCH_MAX_UPDATES updates (an update larger than `max` goes alone). */
function batches (updates: Uint8Array[], max: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let group: Uint8Array[] = []
  let size = 0
  for (const u of updates) {
    if (group.length > 0 && (size + u.byteLength > max || group.length >= BATCH_MAX_UPDATES)) {
      out.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
      group = []
      size = 0
    }
    group.push(u)
    size += u.byteLength
  }
  if (group.length > 0) out.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
  return out
}
