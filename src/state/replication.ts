/**
 * Push replication on the long-lived stream of each peer pair. This node's batches go to every connected peer (one
 * copy each; the connection proves the writer). A peer whose stream is full or not open yet misses one: the gap it
 * sees in our next push starts its catch-up, and if no push follows soon it is nudged (an empty update, which also
 * starts a catch-up), so a lone missed write waits milliseconds, not an anti-entropy round. A peer's push is taken
 * only from its writer, its signature and content checked (intake), applied with the remote origin (never pushed on)
 * and queued for the log; a gap asks catch-up to run. It must not fetch state itself: catch-up does that.
 */
import type { Logger } from 'pino'
import { StatePush, type StateUpdate } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { jitter, type LogLimiter } from '../util/index.ts'
import type { StateMesh } from './components.ts'
import type { UpdateIntake } from './intake.ts'
import type { StateMetrics } from './metrics.ts'
import type { Outbox } from './outbox.ts'
import { EMPTY_UPDATE, ORIGIN_REMOTE, isEmptyUpdate } from './writer-doc.ts'
import type { WriterSet } from './writer-set.ts'

export interface ReplicationComponents {
  selfId: NodeId
  mesh: Pick<StateMesh, 'rpc' | 'connections'>
  writers: Pick<WriterSet, 'own' | 'apply'>
  outbox: Pick<Outbox, 'received' | 'scheduleFlush'>
  intake: UpdateIntake
  metrics: Pick<StateMetrics, 'applied' | 'flushes' | 'pushes' | 'rejected'>
  log: Logger
  limiter: LogLimiter
  /** Asks catch-up to pull from the peer soon. */
  syncSoon: (peer: NodeId) => void
}

/** A peer that missed a push (its stream was full or not open yet) is nudged this soon, rather than left to anti-entropy. */
const NUDGE_RETRY_MS = 200

export class Replication {
  /** Connected peers that missed a push since they last got one: they are nudged to catch up from us. */
  private readonly behind = new Set<NodeId>()
  private nudgeTimer?: NodeJS.Timeout
  private running = false

  constructor (private readonly c: ReplicationComponents) {
    c.mesh.rpc.onNotify(StatePush, (msg, from) => { this.onPush(msg, from) })
  }

  start (): void {
    this.running = true
  }

  stop (): void {
    this.running = false
    clearTimeout(this.nudgeTimer)
  }

  /** Sends a batch of this node's updates to every connected peer (one copy each). */
  async publish (msg: StateUpdate): Promise<void> {
    const rpc = this.c.mesh.rpc
    for (const peer of this.c.mesh.connections()) {
      const sent = rpc.notify(peer, StatePush, msg)
      this.c.metrics.pushes.inc({ outcome: sent ? 'sent' : 'skipped' })
      if (sent) continue
      this.behind.add(peer)
      this.openChannel(peer)
    }
    if (this.behind.size > 0) this.scheduleNudge()
    this.c.metrics.flushes.inc()
  }

  /** No stream to the peer yet (a fresh connection): open one for what comes next. */
  private openChannel (peer: NodeId): void {
    const rpc = this.c.mesh.rpc
    if (!rpc.hasChannel(peer)) rpc.ensureChannel(peer).catch(() => {})
  }

  private scheduleNudge (): void {
    if (this.nudgeTimer !== undefined || !this.running) return
    this.nudgeTimer = setTimeout(() => {
      this.nudgeTimer = undefined
      const rpc = this.c.mesh.rpc
      const connected = new Set(this.c.mesh.connections())
      for (const peer of this.behind) {
        if (!connected.has(peer)) { this.behind.delete(peer); continue } // it catches up when it reconnects
        if (rpc.notify(peer, StatePush, { w: this.c.selfId, g: this.c.writers.own.gen, u: EMPTY_UPDATE })) {
          this.behind.delete(peer)
          this.c.metrics.pushes.inc({ outcome: 'nudged' })
        } else {
          this.openChannel(peer)
        }
      }
      if (this.behind.size > 0) this.scheduleNudge()
    }, jitter(NUDGE_RETRY_MS, 0.3))
    this.nudgeTimer.unref()
  }

  /** A peer's update: taken only from its writer (the connection proves who sent it), checked, then applied. */
  private onPush (msg: StateUpdate, from: NodeId): void {
    if (msg.w !== from) {
      this.c.metrics.rejected.inc({ reason: 'not-writer' })
      if (this.c.limiter.allow(`not-writer:${from}`)) this.c.log.warn({ peer: from, writer: msg.w }, 'dropped a state update pushed by a peer that is not its writer (logged once a minute per peer)')
      return
    }
    // a nudge (an empty, unsigned update from the writer itself): it has something we missed
    if (msg.s === undefined && isEmptyUpdate(msg.u)) { this.c.syncSoon(from); return }
    const rec = this.c.intake.check(msg, from)
    if (rec === undefined) return
    const { added, needSync } = this.c.writers.apply(rec, ORIGIN_REMOTE)
    if (added) {
      this.c.outbox.received(rec)
      this.c.metrics.applied.inc({ source: 'push' })
      this.c.outbox.scheduleFlush()
    }
    if (needSync) this.c.syncSoon(from)
  }
}
