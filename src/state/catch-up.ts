/**
 * Catch-up (RPC `state.sync`): this node sends, for every writer document it holds, the generation and the first
 * sequence number of that generation's signed records it lacks, and gets back the signed records it lacks, as their
 * writers signed them, in answers of at most STATE_SYNC_CHUNK_BYTES over as many rounds as it takes (so a document of
 * any size is served, and no answer comes near the RPC frame limit). Every record passes intake (signature, content,
 * stamps) before it is applied, whoever relayed it. It runs on every new connection, every few seconds with a random
 * peer (anti-entropy), and whenever replication sees a gap; concurrent requests for the same peer are merged. It also
 * answers peers' catch-up requests, one at a time per peer and at most SERVE_BYTES_PER_SEC of records a second to
 * each; a request arriving meanwhile, or the same request again within SERVE_REPEAT_MS with nothing new held since,
 * is answered busy with a time to retry after (a peer asking in a loop costs a small error frame, not megabytes), and
 * this node's own catch-up waits that long and asks again. It must not push: replication does that.
 */
import type { Logger } from 'pino'
import { STATE_SYNC_CHUNK_BYTES, StateSync, type SyncResponse } from '../../proto/index.ts'
import { BusyError, toGridError, type NodeId } from '../interface/index.ts'
import { jitter, repeat } from '../util/index.ts'
import type { StateMesh } from './components.ts'
import type { UpdateIntake } from './intake.ts'
import type { StateMetrics } from './metrics.ts'
import type { Outbox } from './outbox.ts'
import { ORIGIN_REMOTE } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

export interface CatchUpComponents {
  mesh: StateMesh
  writers: WriterSet
  outbox: Pick<Outbox, 'received' | 'scheduleFlush' | 'seal'>
  intake: UpdateIntake
  metrics: Pick<StateMetrics, 'applied' | 'syncs' | 'syncBytes'>
  log: Logger
}

export interface CatchUpInit {
  /** How often this node catches up with a random connected peer. */
  antiEntropyIntervalMs?: number
}

type DocSummaries = Record<string, { g: number, n?: number }>

/** How often this node catches up with a random peer, by default (pushes and nudges do the fast path). */
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 5_000
const SYNC_TIMEOUT_MS = 15_000
/** A catch-up stops after this many rounds (of STATE_SYNC_CHUNK_BYTES: 1 GiB) even if the peer says there is more; the next one resumes. */
const SYNC_MAX_ROUNDS = 256
/** The same request from the same peer within this long, nothing new held since, is answered busy (it has the answer). */
const SERVE_REPEAT_MS = 1_000
/**
 * Records served to one peer per second at most: after an answer of B bytes, the next waits B / this. A catch-up's
 * rounds are spaced by the requester applying each answer (far longer), so only a peer asking in a flood waits.
 */
const SERVE_BYTES_PER_SEC = 64 * 1024 * 1024
/** A busy answer tells the peer to retry after this long at least... */
const BUSY_RETRY_MIN_MS = 20
/** ...and this node waits at most this long on one before asking again (at most BUSY_RETRIES times in a catch-up). */
const BUSY_RETRY_MAX_MS = 1_000
const BUSY_RETRIES = 20
/** Peers whose last answer is remembered (the oldest is forgotten past it). */
const SERVED_MAX_PEERS = 4096
/** A new connection is caught up from this soon (jittered), once its streams are likely open. */
const CONNECT_SYNC_DELAY_MS = 100

export class CatchUp {
  private readonly syncing = new Map<NodeId, Promise<void>>()
  private readonly syncAgain = new Set<NodeId>()
  private loop?: { stop: () => void }
  private running = false
  /** Peers whose catch-up request is being answered now. */
  private readonly serving = new Set<NodeId>()
  /** The last answer to each peer: its request, what this node held then, when, and when the next may be served. */
  private readonly served = new Map<NodeId, { key: string, version: number, at: number, until: number }>()

  constructor (private readonly c: CatchUpComponents, private readonly init: CatchUpInit) {
    c.mesh.rpc.handle(StateSync, async (req, ctx) => await this.serveFor(ctx.peer, req.docs, req.maxBytes ?? STATE_SYNC_CHUNK_BYTES))
  }

  start (): void {
    this.running = true
    this.c.mesh.on('peer:connect', this.onConnect)
    const onError = (err: unknown): void => { this.c.log.error({ err }, 'state loop failed') }
    this.loop = repeat(() => { this.antiEntropy() }, this.init.antiEntropyIntervalMs ?? DEFAULT_ANTI_ENTROPY_INTERVAL_MS, onError, { jitter: 0.3 })
  }

  stop (): void {
    this.running = false
    this.c.mesh.off('peer:connect', this.onConnect)
    this.loop?.stop()
    this.loop = undefined
  }

  /** Pulls what this node lacks from a peer; concurrent calls for the same peer are merged. */
  syncSoon (peer: NodeId): void {
    if (!this.running) return
    if (this.syncing.has(peer)) { this.syncAgain.add(peer); return }
    const p = this.syncFrom(peer).finally(() => {
      this.syncing.delete(peer)
      if (this.syncAgain.delete(peer)) this.syncSoon(peer)
    })
    this.syncing.set(peer, p)
  }

  /** One catch-up with a peer: send what we hold, apply what comes back, repeat while it says there is more. */
  async syncFrom (peer: NodeId): Promise<void> {
    let busy = 0
    try {
      for (let round = 0; round < SYNC_MAX_ROUNDS; round++) {
        const docs: DocSummaries = {}
        for (const [w, slot] of this.c.writers) docs[w] = { g: slot.log.gen, n: slot.log.next }
        let res: SyncResponse
        try {
          res = await this.c.mesh.rpc.request(peer, StateSync, { docs, maxBytes: STATE_SYNC_CHUNK_BYTES }, { timeoutMs: SYNC_TIMEOUT_MS })
        } catch (err) {
          const retryAfterMs = busyRetryMs(err)
          if (retryAfterMs === undefined || ++busy > BUSY_RETRIES) throw err
          await new Promise(resolve => setTimeout(resolve, Math.min(BUSY_RETRY_MAX_MS, retryAfterMs)))
          continue
        }
        let added = 0
        for (const u of res.updates) {
          const rec = this.c.intake.check(u, peer)
          if (rec === undefined) continue
          this.c.metrics.syncBytes.inc(rec.u.byteLength)
          if (!this.c.writers.apply(rec, ORIGIN_REMOTE).added) continue
          this.c.outbox.received(rec)
          this.c.metrics.applied.inc({ source: 'sync' })
          added++
        }
        // a new generation is complete once we hold every record the peer holds of it
        for (const [w, g] of Object.entries(res.gens)) this.c.writers.completeGeneration(w, g, res.next?.[w] ?? 0)
        if (added > 0) this.c.outbox.scheduleFlush()
        // a peer that sends nothing new (records we refuse, say) is not asked again and again
        if (!res.more || added === 0) break
      }
      this.c.metrics.syncs.inc({ outcome: 'ok' })
    } catch (err) {
      this.c.metrics.syncs.inc({ outcome: toGridError(err).code })
      this.c.log.debug({ peer, err }, 'catch-up failed')
    }
  }

  /** Answers one peer's catch-up, one at a time and at most SERVE_BYTES_PER_SEC; otherwise busy, with when to retry. */
  private async serveFor (peer: NodeId, docs: DocSummaries, maxBytes: number): Promise<SyncResponse> {
    const now = Date.now()
    const last = this.served.get(peer)
    if (this.serving.has(peer)) throw busyError('a catch-up request from this peer is being answered already', BUSY_RETRY_MIN_MS)
    if (last !== undefined && now < last.until) throw busyError('this peer was just sent a catch-up answer', last.until - now)
    this.c.outbox.seal()
    const key = JSON.stringify([docs, maxBytes])
    const version = this.c.writers.version
    if (last !== undefined && last.key === key && last.version === version && now - last.at < SERVE_REPEAT_MS) {
      throw busyError('this peer asked the same a moment ago, and nothing new came since', SERVE_REPEAT_MS - (now - last.at))
    }
    this.serving.add(peer)
    try {
      const res = this.serveSync(docs, maxBytes)
      const bytes = res.updates.reduce((n, u) => n + u.u.byteLength, 0)
      this.served.set(peer, { key, version, at: now, until: now + Math.ceil(bytes * 1000 / SERVE_BYTES_PER_SEC) })
      if (this.served.size > SERVED_MAX_PEERS) this.served.delete(this.served.keys().next().value as NodeId)
      // the answer goes out before this peer's next request is taken
      await new Promise(resolve => setImmediate(resolve))
      return res
    } finally {
      this.serving.delete(peer)
    }
  }

  /** The signed records a peer lacks of each current generation, up to `maxBytes` (a record alone may pass it), and the generation and `n` held of each. */
  serveSync (docs: DocSummaries, maxBytes: number): SyncResponse {
    this.c.outbox.seal()
    const limit = Math.min(maxBytes, STATE_SYNC_CHUNK_BYTES)
    const updates: SyncResponse['updates'] = []
    const gens: Record<string, number> = {}
    const next: Record<string, number> = {}
    let bytes = 0
    let more = false
    for (const [w, slot] of this.c.writers) {
      const log = slot.log
      gens[w] = log.gen
      next[w] = log.next
      if (more) continue
      const theirs = docs[w]
      if (theirs !== undefined && theirs.g > log.gen) continue
      const from = theirs === undefined || theirs.g < log.gen ? 0 : (theirs.n ?? 0)
      for (const rec of log.from(from)) {
        if (bytes > 0 && bytes + rec.u.byteLength > limit) { more = true; break }
        updates.push(rec)
        bytes += rec.u.byteLength
      }
    }
    return { updates, gens, next, more }
  }

  private readonly onConnect = (peer: NodeId): void => {
    setTimeout(() => { this.syncSoon(peer) }, jitter(CONNECT_SYNC_DELAY_MS, 0.5)).unref()
  }

  private antiEntropy (): void {
    const peers = this.c.mesh.connections()
    if (peers.length === 0) return
    this.syncSoon(peers[Math.floor(Math.random() * peers.length)] as NodeId)
  }
}

/** A busy answer to a catch-up request, saying when to ask again. */
function busyError (why: string, retryAfterMs: number): BusyError {
  const after = Math.max(BUSY_RETRY_MIN_MS, retryAfterMs)
  return new BusyError(`busy: ${why}; ask again in ${after} ms`, { details: { busy: true, retryAfterMs: after } })
}

/** How long to wait before asking again, when `err` is a peer's busy answer; undefined for any other error. */
function busyRetryMs (err: unknown): number | undefined {
  const e = toGridError(err)
  // BUSY: this answer, or the RPC layer's per-peer cap (src/mesh/rpc.ts); both say when to retry
  if (e.code !== 'BUSY' || typeof e.details !== 'object' || e.details === null) return undefined
  const d = e.details as { retryAfterMs?: unknown }
  return typeof d.retryAfterMs === 'number' ? d.retryAfterMs : undefined
}
