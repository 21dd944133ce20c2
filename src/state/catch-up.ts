/**
 * Catch-up (y-protocols' sync step 1 and 2, as RPC `state.sync`): this node sends the generation and state vector
 * of every writer document it holds and gets back only what it lacks, in rounds of bounded size. It runs on every new
 * connection, every few seconds with a random peer (anti-entropy), and whenever replication sees a gap; concurrent
 * requests for the same peer are merged. It also answers peers' catch-up requests. It must not push: replication
 * does that.
 */
import type { Logger } from 'pino'
import { StateSync, type SyncResponse } from '../../proto/index.ts'
import { toGridError, type NodeId } from '../interface/index.ts'
import { jitter, repeat } from '../util/index.ts'
import type { StateMesh } from './components.ts'
import type { UpdateIntake } from './intake.ts'
import type { StateMetrics } from './metrics.ts'
import type { Outbox } from './outbox.ts'
import { ORIGIN_REMOTE, isEmptyUpdate } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

export interface CatchUpComponents {
  mesh: StateMesh
  writers: WriterSet
  outbox: Pick<Outbox, 'received' | 'scheduleFlush'>
  intake: UpdateIntake
  metrics: Pick<StateMetrics, 'applied' | 'syncs' | 'syncBytes'>
  log: Logger
}

export interface CatchUpInit {
  /** How often this node catches up with a random connected peer. */
  antiEntropyIntervalMs?: number
}

type DocSummaries = Record<string, { g: number, sv: Uint8Array }>

/** How often this node catches up with a random peer, by default (pushes and nudges do the fast path). */
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 5_000
/** Each answer holds at most this many bytes of updates (a single larger document goes alone); `more` asks again. */
const SYNC_MAX_BYTES = 8 * 1024 * 1024
const SYNC_TIMEOUT_MS = 15_000
/** A catch-up stops after this many rounds even if the peer still says there is more (the next one resumes). */
const SYNC_MAX_ROUNDS = 64
/** A new connection is caught up from this soon (jittered), once its streams are likely open. */
const CONNECT_SYNC_DELAY_MS = 100

export class CatchUp {
  private readonly syncing = new Map<NodeId, Promise<void>>()
  private readonly syncAgain = new Set<NodeId>()
  private loop?: { stop: () => void }
  private running = false

  constructor (private readonly c: CatchUpComponents, private readonly init: CatchUpInit) {
    c.mesh.rpc.handle(StateSync, req => this.serveSync(req.docs, req.maxBytes ?? SYNC_MAX_BYTES))
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

  /** One catch-up with a peer: send our state vectors, apply what comes back, repeat while it says there is more. */
  async syncFrom (peer: NodeId): Promise<void> {
    try {
      for (let round = 0; round < SYNC_MAX_ROUNDS; round++) {
        const docs: DocSummaries = {}
        for (const [w, slot] of this.c.writers) docs[w] = { g: slot.current.gen, sv: slot.current.stateVector() }
        const res: SyncResponse = await this.c.mesh.rpc.request(peer, StateSync, { docs, maxBytes: SYNC_MAX_BYTES }, { timeoutMs: SYNC_TIMEOUT_MS })
        for (const rec of res.updates) {
          if (!this.c.intake.check(rec.u, peer)) continue
          this.c.metrics.syncBytes.inc(rec.u.byteLength)
          this.c.writers.apply(rec, ORIGIN_REMOTE)
          this.c.outbox.received(rec)
          this.c.metrics.applied.inc({ source: 'sync' })
        }
        // a new generation is complete once a peer that holds it has given us everything it has
        for (const [w, g] of Object.entries(res.gens)) this.c.writers.completeGeneration(w, g)
        if (res.updates.length > 0) this.c.outbox.scheduleFlush()
        if (!res.more) break
      }
      this.c.metrics.syncs.inc({ outcome: 'ok' })
    } catch (err) {
      this.c.metrics.syncs.inc({ outcome: toGridError(err).code })
      this.c.log.debug({ peer, err }, 'catch-up failed')
    }
  }

  /** Answers a peer's catch-up: what it lacks of each document, up to `maxBytes`, and the generation of each. */
  serveSync (docs: DocSummaries, maxBytes: number): SyncResponse {
    const updates: SyncResponse['updates'] = []
    const gens: Record<string, number> = {}
    let bytes = 0
    let more = false
    for (const [w, slot] of this.c.writers) {
      const cur = slot.current
      gens[w] = cur.gen
      if (more) continue
      const theirs = docs[w]
      let u: Uint8Array
      if (theirs === undefined || theirs.g < cur.gen) u = cur.encode()
      else if (theirs.g === cur.gen) {
        try {
          u = cur.encode(theirs.sv)
        } catch {
          u = cur.encode()
        }
        if (isEmptyUpdate(u)) continue
      } else continue
      if (bytes > 0 && bytes + u.byteLength > maxBytes) { more = true; continue }
      updates.push({ w, g: cur.gen, u })
      bytes += u.byteLength
    }
    return { updates, gens, more }
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
