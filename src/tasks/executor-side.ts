/**
 * The executor's side of the task protocol: the RPC handlers that admit offered tasks into the local executor and
 * stream their events back (run, attach, logs, cancel, drain), and the executor's state changes turned into this
 * node's replicated execution records. It must not coordinate (retries and verdicts are the coordinator's).
 */
import type { Logger } from 'pino'
import {
  FINAL_STATUSES, NodeDrain, TaskAttach, TaskCancel, TaskLogs, TaskRun, TaskStdin,
  type ExecAspect, type TaskEvent, type TaskOffer
} from '../../proto/index.ts'
import { CancelledError, NotFoundError } from '../interface/index.ts'
import { followerWatcher, type Watcher } from '../executor/index.ts'
import type { RpcContext } from '../mesh/index.ts'
import type { TasksComponents, TasksInit } from './components.ts'
import { admitOffer, layoutSynced, refuseSuperseded } from './admission.ts'
import { isFinalStatus, type TaskRecords } from './records.ts'
import { RecordRetention } from './retention.ts'
import type { TaskMetrics } from './task-metrics.ts'

/** Tasks that end sooner leave one executor record (the final one) instead of two; `running` shows this much late. */
const EXEC_WRITE_DELAY_MS = 250

export class ExecutorSide {
  private readonly execWrites = new Map<string, NodeJS.Timeout>()
  /** Ends of attempts other nodes offered, recorded after this turn (writeFinal). */
  private readonly finals = new Map<string, ExecAspect>()
  private finalsTimer: NodeJS.Timeout | undefined
  private deferFinals = true

  constructor (
    private readonly c: TasksComponents,
    private readonly init: TasksInit,
    private readonly records: TaskRecords,
    private readonly m: TaskMetrics,
    private readonly log: Logger,
    setDraining: (drain: boolean) => { running: number, queued: number }
  ) {
    c.rpc.handle(TaskRun, async (req, ctx) => await this.serveRun(req, ctx))
    c.rpc.handle(TaskAttach, async (req, ctx) => await this.serveAttach(req.id, req.attempt, req.from, ctx))
    c.rpc.handle(TaskCancel, req => ({ found: this.c.executor.cancel(req.id), status: this.c.executor.get(req.id)?.state.status ?? 'unknown' }))
    c.rpc.handle(TaskLogs, async (req, ctx) => await this.serveLogs(req.id, req.follow, ctx))
    c.rpc.handle(NodeDrain, req => setDraining(req.drain))
    c.rpc.handle(TaskStdin, async req => await this.c.executor.writeStdin(req.id, req.attempt, req.data, req.end))
    // a task's stdin comes through its origin only: when the origin is gone, the task's stdin ends
    c.members.on('member:state', t => {
      if (t.to === 'dead' || t.to === 'left') this.c.executor.closeStdinFrom(t.id)
    })
    c.executor.on('task:state', (id, state) => {
      try { this.onExecState(id, state) } catch (err) { this.log.error({ err, task: id }, 'recording a task state failed') }
    })
    const retention = new RecordRetention(init.retentionMs, init.maxRecords)
    c.store.setCollector('tasks', (key, entry, now) => retention.collectable(key, entry.value, now))
  }

  /** What this node ran before a restart and no longer runs is lost: its record says so, and the coordinator retries. */
  markLostAfterRestart (): void {
    for (const id of this.records.all().keys()) {
      const own = this.records.own(id).exec
      if (own !== undefined && !isFinalStatus(own.status) && this.c.executor.get(id) === undefined) {
        this.records.writeExec(id, { ...own, status: 'failed', lost: true, error: `executor ${this.init.nodeName} restarted while the task ran`, finishedAt: Date.now() })
      }
    }
  }

  private async serveRun (offer: TaskOffer, ctx: RpcContext): Promise<ExecAspect> {
    refuseSuperseded(this.c, this.records, offer)
    const syncDir = await layoutSynced(this.c, offer)
    return await new Promise<ExecAspect>((resolve, reject) => {
      const early: TaskEvent[] = []
      let ready = false
      const watcher: Watcher = {
        primary: true,
        event: ev => { if (!ready) { early.push(ev); return true } return ctx.emit(ev) },
        drain: async () => { await ctx.drain() },
        done: resolve
      }
      let admitted: { queued: boolean, reason?: string }
      try {
        // the authenticated sender, whoever the offer says it comes from: a task sent by an outside key holder shows as such
        admitted = admitOffer(this.c, offer, watcher, ctx.peer, syncDir)
      } catch (err) {
        reject(err)
        return
      }
      ctx.emit({ k: 'admitted', queued: admitted.queued, node: this.c.peerId, nodeName: this.init.nodeName, ...(admitted.reason === undefined ? {} : { reason: admitted.reason }) })
      ready = true
      for (const ev of early) ctx.emit(ev)
      ctx.signal.addEventListener('abort', () => {
        // the origin went away: the task runs on; its record will tell
        this.c.executor.unwatch(offer.id, watcher)
        reject(new CancelledError('the origin stopped watching'))
      }, { once: true })
    })
  }

  private async serveAttach (id: string, attempt: number, from: number, ctx: RpcContext): Promise<ExecAspect> {
    const job = this.c.executor.get(id)
    if (job === undefined || job.state.attempt !== attempt) throw new NotFoundError(`this node has no attempt ${attempt} of task ${id}`)
    return await new Promise<ExecAspect>((resolve, reject) => {
      const watcher: Watcher = { primary: true, event: ev => ctx.emit(ev), drain: async () => { await ctx.drain() }, done: resolve }
      this.c.executor.watch(id, from, watcher)
      ctx.signal.addEventListener('abort', () => { this.c.executor.unwatch(id, watcher); reject(new CancelledError('the watcher went away')) }, { once: true })
    })
  }

  private async serveLogs (id: string, follow: boolean, ctx: RpcContext): Promise<{ found: boolean, truncatedBytes: number }> {
    const job = this.c.executor.get(id)
    if (job === undefined) return { found: false, truncatedBytes: 0 }
    await new Promise<void>(resolve => {
      // a follower that falls behind skips ahead (a gap event), so one that never reads holds no output here
      const watcher = followerWatcher({
        send: ev => { try { return ctx.emit(ev) } catch { return true } },
        drain: async () => { await ctx.drain() }
      }, () => { resolve() })
      this.c.executor.watch(id, 0, watcher)
      if (!follow) { this.c.executor.unwatch(id, watcher); resolve(); return }
      ctx.signal.addEventListener('abort', () => { this.c.executor.unwatch(id, watcher); resolve() }, { once: true })
    })
    return { found: true, truncatedBytes: job.truncatedBytes }
  }

  /**
   * A task's end goes into its record. An attempt another node offered is recorded once the answer has left for its
   * coordinator (after this turn of the event loop: the answer's frame leaves at the end of the turn, and the record
   * only feeds the views, which the coordinator's answer does not wait for; it writes the end itself if this never
   * comes). A local attempt is recorded at once, so this node's view shows the end before its client hears of it.
   */
  private writeFinal (id: string, state: ExecAspect): void {
    if (!this.deferFinals || state.offeredBy === undefined || state.offeredBy === this.c.peerId) {
      this.records.writeExec(id, state)
      return
    }
    this.finals.set(id, state)
    this.finalsTimer ??= setTimeout(() => { this.writeFinals() }, 0)
  }

  private writeFinals (): void {
    clearTimeout(this.finalsTimer)
    this.finalsTimer = undefined
    for (const [id, state] of this.finals) {
      this.finals.delete(id)
      try { this.records.writeExec(id, state) } catch (err) { this.log.error({ err, task: id }, 'recording a task state failed') }
    }
  }

  /** Stopping: what waits is recorded now, and what ends from here on at once (the state store stops after this). */
  stop (): void {
    this.deferFinals = false
    this.writeFinals()
  }

  /** Executor state → the replicated record: final states at once, others after a short delay (often never). */
  private onExecState (id: string, state: ExecAspect): void {
    if (state.status === 'running' && state.startedAt !== undefined) {
      this.m.started.inc()
      this.log.debug({ task: id, attempt: state.attempt, pid: state.pid, gpus: state.gpus }, 'task started')
    }
    if (FINAL_STATUSES.has(state.status)) {
      this.log.debug({ task: id, attempt: state.attempt, status: state.status, exitCode: state.exitCode, durationMs: state.startedAt === undefined || state.finishedAt === undefined ? null : state.finishedAt - state.startedAt, error: state.error }, 'task finished')
      clearTimeout(this.execWrites.get(id))
      this.execWrites.delete(id)
      this.writeFinal(id, state)
      if (state.lost !== true) this.m.completed.inc({ status: state.status, type: this.c.executor.typeOf(id) ?? 'command' })
      if (state.startedAt !== undefined && state.finishedAt !== undefined) this.m.duration.observe((state.finishedAt - state.startedAt) / 1000)
      return
    }
    if (this.execWrites.has(id)) return
    this.execWrites.set(id, setTimeout(() => {
      this.execWrites.delete(id)
      const now = this.c.executor.get(id)?.state
      if (now !== undefined && !FINAL_STATUSES.has(now.status)) this.records.writeExec(id, now)
    }, EXEC_WRITE_DELAY_MS))
  }
}
