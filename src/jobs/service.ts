/**
 * jobs' facade: the operations the control API offers (submit, list, get, cancel, retry), the drivers of the jobs
 * this node drives, and takeover (a job whose driver died is driven on by its successor, the same rule as tasks').
 */
import type { Logger } from 'pino'
import {
  jobEntry, jobKeys,
  type ItemRun, type JobDoc, type JobRecord, type JobStreamEvent, type TaskSpec
} from '../../proto/index.ts'
import { ConflictError, InvalidArgumentError, NotFoundError, UnsatisfiableError, type NodeId, type Startable } from '../interface/index.ts'
import type { ChangeEvent } from '../state/index.ts'
import { EventQueue, newTaskId, orphaned } from '../tasks/index.ts'
import { repeat } from '../util/index.ts'
import type { JobsComponents, JobsInit } from './components.ts'
import { JobDriver } from './driver.ts'
import { broadcastTargets, fitParallel } from './placement.ts'
import { JobRecords } from './records.ts'
import { normalizeJob } from './request.ts'
import { WORKER_ITEMS_PER_HOST } from './worker-batch.ts'

export type { JobsComponents, JobsInit } from './components.ts'

const CLIENT_HIGH_WATER = 1 << 20
const CLIENT_HARD_LIMIT = 32 << 20
/** Jobs whose driver is gone are looked for this often (besides at each death). */
const ORPHAN_SWEEP_MS = 5_000

export class JobService implements Startable {
  readonly records: JobRecords
  private readonly drivers = new Map<string, JobDriver>()
  private readonly log: Logger
  private running = false
  private sweep?: { stop: () => void }

  constructor (private readonly c: JobsComponents, private readonly init: JobsInit) {
    this.log = c.logger
    this.records = new JobRecords(c.store)
    c.store.setCollector('jobs', (key, entry, now) => this.collectable(key, entry.value, entry.stamp[0], now))
  }

  async start (): Promise<void> {
    this.running = true
    // what this node drove before a restart goes on
    for (const [id, m] of this.records.docs()) if (m.doc.driver === this.c.peerId && m.doc.final === undefined) this.resume(id, m.doc, m.cancelRequested)
    this.c.members.on('member:state', this.onMember)
    this.c.store.on('change', this.onChange)
    this.sweep = repeat(() => { this.adoptOrphans() }, ORPHAN_SWEEP_MS, err => { this.log.error({ err }, 'job orphan sweep failed') }, { jitter: 0.3 })
  }

  async stop (): Promise<void> {
    this.running = false
    this.sweep?.stop()
    this.c.members.off('member:state', this.onMember)
    this.c.store.off('change', this.onChange)
    for (const d of this.drivers.values()) d.stop()
  }

  /** Checks, records and starts driving a job; bad input and a job no node can run fail here, before any record. */
  submit (body: unknown): { id: string, detach: boolean, events?: EventQueue<JobStreamEvent> } {
    const req = normalizeJob(body, nameOrId => {
      const id = this.c.resolveNode(nameOrId)
      if (id === undefined) throw new InvalidArgumentError(`no node ${nameOrId} in this cluster`)
      return id
    })
    const spec = req.spec
    const worker = this.isWorkerJob(spec)
    if (worker) {
      // as gridctl run --type: a worker type never degrades to one-shot processes of the worker's program
      const why = spec.node === undefined ? this.c.workers?.cannotServe(spec.type as string) : undefined
      if (why !== undefined) throw new UnsatisfiableError(why)
      if (req.strategy === 'broadcast' || req.strategy === 'map-reduce') throw new InvalidArgumentError(`invalid job: ${spec.type ?? ''} is served by warm workers, whose items are spread over the workers as batched requests; ${req.strategy} is for commands and one-shot task types`)
    }
    const routed = this.c.tasks.eligible(spec)
    if (!routed.ok && routed.wait !== true) throw new UnsatisfiableError(`no node can run this job's runs: ${routed.reason}`)
    const eligible = routed.ok ? routed.candidates : []
    let items: unknown[]
    if (req.strategy === 'broadcast') {
      if (eligible.length === 0) throw new UnsatisfiableError(`no node can run this job's runs now${routed.ok ? '' : `: ${routed.reason}`}`)
      items = broadcastTargets(eligible, this.c.nameOf).map(n => this.c.nameOf(n))
    } else {
      items = req.items ?? Array.from({ length: req.count ?? 1 }, (_, i) => i)
    }
    const id = `j${newTaskId().slice(1)}`
    const { env: _env, ...specNoEnv } = spec
    const envNames = Object.keys(spec.env)
    const doc: JobDoc = {
      strategy: req.strategy,
      aggregate: req.aggregate,
      spec: envNames.length === 0 ? specNoEnv : { ...specNoEnv, envNames },
      maxParallel: req.maxParallel ?? (worker ? WORKER_ITEMS_PER_HOST * Math.max(1, this.c.workers?.hostCount(spec.type as string) ?? eligible.length) : fitParallel(eligible, this.c.members.view(), spec)),
      total: items.length,
      origin: this.c.peerId,
      originName: this.init.nodeName,
      driver: this.c.peerId,
      driverName: this.init.nodeName,
      createdAt: Date.now()
    }
    if (req.reduce !== undefined) doc.reduce = req.reduce
    this.records.writeDoc(id, doc)
    this.records.writeItems(id, items)
    const sink = req.detach ? undefined : new EventQueue<JobStreamEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, e => (e.type === 'result' ? e.stdout.length + 256 : e.type === 'done' ? 1024 : 128))
    sink?.push({ type: 'accepted', id, total: items.length })
    this.log.info({ job: id, strategy: doc.strategy, aggregate: doc.aggregate, total: doc.total, maxParallel: doc.maxParallel }, 'job submitted')
    this.drive(id, doc, spec, items, new Array<ItemRun | null>(items.length).fill(null), sink, req.results)
    return sink === undefined ? { id, detach: true } : { id, detach: false, events: sink }
  }

  private drive (id: string, doc: JobDoc, spec: TaskSpec, items: unknown[], runs: Array<ItemRun | null>, sink?: EventQueue<JobStreamEvent>, results = true): JobDriver {
    const d = new JobDriver(this.c, this.records, id, doc, spec, items, runs, this.log, sink, this.isWorkerJob(spec), results)
    this.drivers.set(id, d)
    void d.drive().finally(() => { if (this.drivers.get(id) === d) this.drivers.delete(id) })
    return d
  }

  /** Drives a recorded job from where its records say it is (after a restart, a takeover, or a retry). */
  private resume (id: string, doc: JobDoc, cancelRequested: boolean): void {
    if (this.drivers.has(id) || !this.running) return
    const { envNames, env, ...rest } = doc.spec
    // env values stay with the node they were given to; a job taken over without them cannot start new runs
    if (envNames !== undefined && envNames.length > 0 && env === undefined && doc.origin !== this.c.peerId) {
      this.log.warn({ job: id, envNames }, 'a job taken over was given env values only its origin held: its runs not yet started will fail')
    }
    const spec: TaskSpec = { ...rest, env: env ?? {} } as TaskSpec
    const items = this.records.items(id, doc.total)
    const runs = this.records.runs(id, doc.total)
    const d = this.drive(id, doc, spec, items, runs)
    if (cancelRequested) d.requestCancel()
  }

  private isWorkerJob (spec: Pick<TaskSpec, 'type'>): boolean {
    return spec.type !== undefined && this.c.workers?.isWorkerType(spec.type) === true
  }

  list (filter: { status?: string } = {}): JobRecord[] {
    const out: JobRecord[] = []
    for (const [id] of this.records.docs()) {
      const r = this.records.record(id, false, this.drivers.get(id)?.table)
      if (r !== undefined && (filter.status === undefined || r.status === filter.status)) out.push(r)
    }
    return out
  }

  get (id: string): JobRecord {
    const r = this.records.record(id, true, this.drivers.get(id)?.table)
    if (r === undefined) throw new NotFoundError(`no job ${id}`)
    return r
  }

  /**
   * One job with its per-item results, as the pieces of its JSON text (as get's): the results are made a slice at a
   * time as the text is written, never all at once. An unknown job throws here, before any piece.
   */
  resultParts (id: string): Iterable<string> {
    const live = this.drivers.get(id)?.table
    const r = this.records.record(id, false, live)
    if (r === undefined) throw new NotFoundError(`no job ${id}`)
    return this.records.resultParts(r, live)
  }

  /** One job without its per-item results. */
  summary (id: string): JobRecord {
    const r = this.records.record(id, false, this.drivers.get(id)?.table)
    if (r === undefined) throw new NotFoundError(`no job ${id}`)
    return r
  }

  /** Cancels a job from any node: the mark reaches its driver, which cancels every run. */
  cancel (id: string): { id: string, status: 'cancelling' } {
    const m = this.records.doc(id)
    if (m === undefined) throw new NotFoundError(`no job ${id}`)
    if (m.doc.final !== undefined) throw new ConflictError(`job ${id} already ${m.doc.final}`)
    this.records.writeCancel(id)
    this.drivers.get(id)?.requestCancel()
    return { id, status: 'cancelling' }
  }

  /** Runs again the items of a finished job that did not succeed, keeping the rest; this node drives it. */
  retry (id: string): { id: string, retrying: number } {
    const m = this.records.doc(id)
    if (m === undefined) throw new NotFoundError(`no job ${id}`)
    if (m.doc.final === undefined) throw new ConflictError(`job ${id} has not ended yet; cancel it or wait for it before retrying it`)
    const runs = this.records.runs(id, m.doc.total)
    const retrying = runs.filter(r => r?.status !== 'completed').length
    if (retrying === 0 && m.doc.strategy !== 'map-reduce') throw new ConflictError(`every run of job ${id} succeeded; there is nothing to retry`)
    const { final: _f, answer: _a, error: _e, finishedAt: _t, ...open } = m.doc
    const doc: JobDoc = { ...open, retries: (m.doc.retries ?? 0) + 1, retriedAt: Date.now(), driver: this.c.peerId, driverName: this.init.nodeName }
    this.records.writeDoc(id, doc)
    this.resume(id, doc, false)
    return { id, retrying }
  }

  private readonly onMember = (t: { id: NodeId, to: string }): void => {
    if (t.to !== 'dead' && t.to !== 'left') return
    try { this.adoptOrphans(t.id) } catch (err) { this.log.error({ err, peer: t.id }, 'taking over jobs failed') }
  }

  /** Takes over the unfinished jobs whose driver is dead or gone, where this node is their successor. */
  private adoptOrphans (deadNode?: NodeId): void {
    if (!this.running) return
    const self = this.c.peerId
    for (const [id, m] of orphaned(this.records.docs(), this.c.members, self, id => this.drivers.has(id), deadNode)) {
      const doc = m.doc
      const next: JobDoc = { ...doc, driver: self, driverName: this.init.nodeName }
      this.records.writeDoc(id, next)
      this.log.warn({ job: id, previous: doc.driver }, 'took over a job whose driver is gone')
      this.resume(id, next, m.cancelRequested)
    }
  }

  /** A cancel mark written elsewhere reaches the job's driver here. */
  private readonly onChange = (e: ChangeEvent): void => {
    if (e.collection !== 'jobs' || e.local || !jobKeys.isDoc(e.key)) return
    const d = this.drivers.get(e.key)
    if (d === undefined) return
    if (this.records.doc(e.key)?.cancelRequested === true) d.requestCancel()
  }

  /** The merged documents looked up in this maintenance round (one `now`): a job's chunks all ask about one. */
  private collectRound: { now: number, docs: Map<string, ReturnType<JobRecords['doc']>> } = { now: -1, docs: new Map() }

  /**
   * This node's entries of a job that ended longer than the retention ago (or whose job is gone) may go. Only its
   * document entries are checked whole: this node wrote every entry of its own, and a progress chunk's 64 runs
   * checked every round cost more than the round.
   */
  private collectable (key: string, value: unknown, writtenAt: number, now: number): boolean {
    if (jobKeys.isDoc(key) ? !jobEntry.check(value) : (typeof value !== 'object' || value === null)) return true
    if (this.collectRound.now !== now) this.collectRound = { now, docs: new Map() }
    const id = jobKeys.jobOf(key)
    let m = this.collectRound.docs.get(id)
    if (m === undefined && !this.collectRound.docs.has(id)) { m = this.records.doc(id); this.collectRound.docs.set(id, m) }
    if (m === undefined) return now - writtenAt > this.init.retentionMs
    if (m.doc.final === undefined || this.drivers.has(jobKeys.jobOf(key))) return false
    return now - (m.doc.finishedAt ?? writtenAt) > this.init.retentionMs
  }
}
