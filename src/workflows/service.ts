/**
 * workflows' facade: the operations the control API offers (submit, list, get, pause, resume, cancel, retry), the
 * drivers of the workflows this node drives, and takeover (a workflow whose driver died is driven on by its
 * successor, the same rule as tasks' and jobs').
 */
import type { Logger } from 'pino'
import { workflowEntry, workflowKeys, type TaskSpec, type WorkflowDoc, type WorkflowRecord, type WorkflowStreamEvent } from '../../proto/index.ts'
import { ConflictError, InvalidArgumentError, NotFoundError, toGridError, type NodeId, type Startable } from '../interface/index.ts'
import { normalizeJob } from '../jobs/index.ts'
import type { ChangeEvent } from '../state/index.ts'
import { EventQueue, newTaskId, normalizeSpec, orphaned } from '../tasks/index.ts'
import { repeat } from '../util/index.ts'
import type { WorkflowsComponents, WorkflowsInit } from './components.ts'
import { WorkflowDriver } from './driver.ts'
import { checkWorkflow, type WorkflowDef } from './file.ts'
import { toWorkflowRecord, WorkflowRecords } from './records.ts'

export type { WorkflowsComponents, WorkflowsInit } from './components.ts'

const CLIENT_HIGH_WATER = 1 << 20
const CLIENT_HARD_LIMIT = 8 << 20
/** Workflows whose driver is gone are looked for this often (besides at each death). */
const ORPHAN_SWEEP_MS = 5_000

export class WorkflowService implements Startable {
  readonly records: WorkflowRecords
  private readonly drivers = new Map<string, WorkflowDriver>()
  /**
   * The env values of the workflows submitted here, by workflow and job: never in the replicated document, which
   * keeps their names only (as task records do); a successor that must start such a job fails it saying so.
   */
  private readonly envs = new Map<string, Map<string, Record<string, string>>>()
  private readonly log: Logger
  private running = false
  private sweep?: { stop: () => void }
  /** What endOf saw in the current pass of the state's maintenance (`now` names the pass). */
  private ends?: { now: number, byId: Map<string, { final: boolean, finishedAt?: number } | null> }

  constructor (private readonly c: WorkflowsComponents, private readonly init: WorkflowsInit) {
    this.log = c.logger
    this.records = new WorkflowRecords(c.store)
    c.store.setCollector('workflows', (key, entry, now) => this.collectable(key, entry.value, entry.stamp[0], now))
  }

  async start (): Promise<void> {
    this.running = true
    for (const [id, m] of this.records.docs()) if (m.doc.driver === this.c.peerId && m.doc.final === undefined) this.driveRecorded(id, m.doc, m.paused, m.cancelRequested)
    this.c.members.on('member:state', this.onMember)
    this.c.store.on('change', this.onChange)
    this.sweep = repeat(() => { this.adoptOrphans() }, ORPHAN_SWEEP_MS, err => { this.log.error({ err }, 'workflow orphan sweep failed') }, { jitter: 0.3 })
  }

  async stop (): Promise<void> {
    this.running = false
    this.sweep?.stop()
    this.c.members.off('member:state', this.onMember)
    this.c.store.off('change', this.onChange)
    for (const d of this.drivers.values()) d.stop()
  }

  /** Every mistake of a workflow at once (InvalidArgumentError, details.errors), before anything is recorded. */
  check (body: unknown): { def: WorkflowDef, detach: boolean } {
    const checked = checkWorkflow(body)
    const errors = checked.ok ? [] : [...checked.errors]
    if (checked.ok) {
      const resolve = (nameOrId: string): string => {
        const id = this.c.resolveNode(nameOrId)
        if (id === undefined) throw new InvalidArgumentError(`no node ${nameOrId} in this cluster`)
        return id
      }
      for (const n of checked.def.order) {
        const def = checked.def.defs[n]
        if (def === undefined) continue
        try {
          const spec: TaskSpec = def.distribute ? normalizeJob(def.body, resolve).spec : normalizeSpec(def.body, resolve).spec
          const routed = this.c.tasks.eligible(spec)
          if (!routed.ok && routed.wait !== true) errors.push(`job ${n}: no node can run it: ${routed.reason}`)
        } catch (err) {
          errors.push(`job ${n}: ${toGridError(err).message.replace(/^invalid (task|job): /, '')}`)
        }
      }
    }
    if (errors.length > 0) throw new InvalidArgumentError(`invalid workflow:\n  - ${errors.join('\n  - ')}`, { details: { errors } })
    return checked as { def: WorkflowDef, detach: boolean }
  }

  submit (body: unknown): { id: string, detach: boolean, events?: EventQueue<WorkflowStreamEvent> } {
    const { def, detach } = this.check(body)
    const id = `w${newTaskId().slice(1)}`
    const { defs, envs } = withoutEnvValues(def.defs)
    if (envs.size > 0) this.envs.set(id, envs)
    const doc: WorkflowDoc = {
      name: def.name,
      order: def.order,
      defs,
      jobs: Object.fromEntries(def.order.map(n => [n, { status: 'pending' as const, run: 0 }])),
      origin: this.c.peerId,
      originName: this.init.nodeName,
      driver: this.c.peerId,
      driverName: this.init.nodeName,
      createdAt: Date.now()
    }
    if (def.parallelism !== undefined) doc.parallelism = def.parallelism
    this.records.writeDoc(id, doc)
    const sink = detach ? undefined : new EventQueue<WorkflowStreamEvent>(CLIENT_HIGH_WATER, CLIENT_HARD_LIMIT, e => (e.type === 'done' ? 4096 : 512))
    sink?.push({ type: 'accepted', id, name: def.name, jobs: def.order })
    this.log.info({ workflow: id, name: def.name, jobs: def.order.length }, 'workflow submitted')
    this.drive(id, doc, false, sink)
    return sink === undefined ? { id, detach: true } : { id, detach: false, events: sink }
  }

  private drive (id: string, doc: WorkflowDoc, paused: boolean, sink?: EventQueue<WorkflowStreamEvent>): WorkflowDriver {
    const envs = this.envs.get(id)
    const d = new WorkflowDriver(this.c, this.records, id, doc, paused, this.log, sink, job => envs?.get(job))
    this.drivers.set(id, d)
    void d.drive().finally(() => { if (this.drivers.get(id) === d) this.drivers.delete(id) })
    return d
  }

  private driveRecorded (id: string, doc: WorkflowDoc, paused: boolean, cancelRequested: boolean): void {
    if (this.drivers.has(id) || !this.running) return
    const d = this.drive(id, doc, paused)
    if (cancelRequested) d.requestCancel()
  }

  list (filter: { status?: string } = {}): WorkflowRecord[] {
    const out: WorkflowRecord[] = []
    for (const [id, m] of this.records.docs()) {
      const r = toWorkflowRecord(id, m)
      if (filter.status === undefined || r.status === filter.status) out.push(r)
    }
    return out
  }

  get (id: string): WorkflowRecord {
    const m = this.records.doc(id)
    if (m === undefined) throw new NotFoundError(`no workflow ${id}`)
    return toWorkflowRecord(id, m)
  }

  /** The kept stdout of one of a workflow's jobs. */
  stdout (id: string, job: string): string {
    return this.records.stdout(id, job)
  }

  private open (id: string): NonNullable<ReturnType<WorkflowRecords['doc']>> {
    const m = this.records.doc(id)
    if (m === undefined) throw new NotFoundError(`no workflow ${id}`)
    if (m.doc.final !== undefined) throw new ConflictError(`workflow ${id} already ${m.doc.final}`)
    return m
  }

  /** No new job starts (running jobs go on) until resume; the mark reaches its driver wherever it is. */
  pause (id: string): WorkflowRecord {
    this.open(id)
    this.records.writePause(id, true)
    this.drivers.get(id)?.setPaused(true)
    return this.get(id)
  }

  /** New jobs start again. */
  resume (id: string): WorkflowRecord {
    this.open(id)
    this.records.writePause(id, false)
    this.drivers.get(id)?.setPaused(false)
    return this.get(id)
  }

  /** Cancels a workflow from any node: its driver cancels the running jobs, wherever they run. */
  cancel (id: string): { id: string, status: 'cancelling' } {
    this.open(id)
    this.records.writeCancel(id)
    this.drivers.get(id)?.requestCancel()
    return { id, status: 'cancelling' }
  }

  /** A failed or cancelled workflow runs again under the same id: what succeeded is kept, the rest runs; this node drives it. */
  retry (id: string): { id: string, retrying: string[] } {
    const m = this.records.doc(id)
    if (m === undefined) throw new NotFoundError(`no workflow ${id}`)
    if (m.doc.final === undefined) throw new ConflictError(`workflow ${id} has not ended yet; cancel it or wait for it before retrying it`)
    if (m.doc.final === 'succeeded') throw new ConflictError(`every job of workflow ${id} succeeded; there is nothing to retry`)
    const { final: _f, finishedAt: _t, error: _e, ...open } = m.doc
    const retrying = m.doc.order.filter(n => m.doc.jobs[n]?.status !== 'succeeded')
    const jobs = { ...m.doc.jobs }
    for (const n of retrying) {
      const s = jobs[n] ?? { status: 'pending', run: 0 }
      jobs[n] = { status: 'pending', run: s.run }
    }
    const doc: WorkflowDoc = { ...open, jobs, retries: (m.doc.retries ?? 0) + 1, retriedAt: Date.now(), driver: this.c.peerId, driverName: this.init.nodeName }
    this.records.writeDoc(id, doc)
    this.driveRecorded(id, doc, false, false)
    return { id, retrying }
  }

  private readonly onMember = (t: { id: NodeId, to: string }): void => {
    if (t.to !== 'dead' && t.to !== 'left') return
    try { this.adoptOrphans(t.id) } catch (err) { this.log.error({ err, peer: t.id }, 'taking over workflows failed') }
  }

  /** Takes over the unfinished workflows whose driver is dead or gone, where this node is their successor. */
  private adoptOrphans (deadNode?: NodeId): void {
    if (!this.running) return
    const self = this.c.peerId
    for (const [id, m] of orphaned(this.records.docs(), this.c.members, self, id => this.drivers.has(id), deadNode)) {
      const doc = m.doc
      const next: WorkflowDoc = { ...doc, driver: self, driverName: this.init.nodeName }
      this.records.writeDoc(id, next)
      this.log.warn({ workflow: id, previous: doc.driver, paused: m.paused }, 'took over a workflow whose driver is gone')
      this.driveRecorded(id, next, m.paused, m.cancelRequested)
    }
  }

  /** A pause, resume or cancel mark written elsewhere reaches the workflow's driver here. */
  private readonly onChange = (e: ChangeEvent): void => {
    if (e.collection !== 'workflows' || e.local || !workflowKeys.isDoc(e.key)) return
    const d = this.drivers.get(e.key)
    if (d === undefined) return
    const m = this.records.doc(e.key)
    if (m === undefined) return
    d.setPaused(m.paused)
    if (m.cancelRequested) d.requestCancel()
  }

  /**
   * A workflow's end as one pass of the state's maintenance sees it (null: no document). A pass asks for each of this
   * node's entries, one per job of a workflow it drives, so the document is merged once per workflow and pass.
   */
  private endOf (id: string, now: number): { final: boolean, finishedAt?: number } | null {
    if (this.ends?.now !== now) this.ends = { now, byId: new Map() }
    let end = this.ends.byId.get(id)
    if (end === undefined) {
      const m = this.records.doc(id)
      end = m === undefined ? null : { final: m.doc.final !== undefined, ...(m.doc.finishedAt === undefined ? {} : { finishedAt: m.doc.finishedAt }) }
      this.ends.byId.set(id, end)
    }
    return end
  }

  /** This node's entries of a workflow that ended longer than the retention ago (or whose workflow is gone) may go. */
  private collectable (key: string, value: unknown, writtenAt: number, now: number): boolean {
    if (!workflowEntry.check(value)) return true
    const id = workflowKeys.workflowOf(key)
    const end = this.endOf(id, now)
    const expired = end === null
      ? now - writtenAt > this.init.retentionMs
      : end.final && !this.drivers.has(id) && now - (end.finishedAt ?? writtenAt) > this.init.retentionMs
    // the env values held for `workflow retry` go with the document
    if (expired && workflowKeys.isDoc(key)) this.envs.delete(id)
    return expired
  }
}

/** The definitions as the replicated document keeps them: each job's env replaced by the names of its variables. */
function withoutEnvValues (defs: WorkflowDoc['defs']): { defs: WorkflowDoc['defs'], envs: Map<string, Record<string, string>> } {
  const envs = new Map<string, Record<string, string>>()
  const out: WorkflowDoc['defs'] = {}
  for (const [name, def] of Object.entries(defs)) {
    const { env, ...body } = def.body as { env?: Record<string, string> }
    if (env === undefined || Object.keys(env).length === 0) { out[name] = def; continue }
    envs.set(name, env)
    out[name] = { ...def, body: { ...body, envNames: Object.keys(env) } }
  }
  return { defs: out, envs }
}
