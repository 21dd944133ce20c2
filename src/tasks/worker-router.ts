/**
 * Requests to warm workers across the mesh. The fast path: no replicated record per request (they are counted in
 * metrics instead), one long-lived stream per peer pair, and requests to the same node that arrive in the same
 * tick travel together in one RPC.
 *
 * Placement: a session's requests go to its owner while it is alive, not draining, and hosts the type; otherwise
 * the session is re-homed by consistent hashing with bounded loads (no node takes more than 1.25x its share of
 * sessions) and the new owner is recorded. Requests without a session go to the host with the fewest of this node's
 * requests outstanding, taking turns among equals.
 */
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  WORKER_BATCH_MAX, WorkerCall, WorkerClose,
  type SessionWorkerInfo, type WorkerOutcome
} from '../../proto/index.ts'
import {
  GridError, NotFoundError, UnsatisfiableError, toGridError, type NodeId, type Startable
} from '../interface/index.ts'
import type { WorkerInfo, WorkerPool, WorkerWait } from '../executor/index.ts'
import type { Membership } from '../membership/index.ts'
import type { Mesh } from '../mesh/index.ts'
import { boundedLoadHash } from '../routing/index.ts'
import type { NodeRegistry, Sessions } from '../state/index.ts'
import { LogLimiter, repeat } from '../util/index.ts'
import { WaitWatch } from './worker-waits.ts'

export interface WorkerCallRequest {
  type: string
  session?: string
  node?: NodeId
  payloads: unknown[]
  timeoutMs: number
  priority: number
  retries: number
}

export interface WorkerCallOptions {
  /** why the requests wait, when they wait more than a moment (at first, and whenever the reason changes) */
  onWaiting?: (reason: string) => void
}

export interface WorkerCallResult {
  node: NodeId
  nodeName: string
  results: WorkerOutcome[]
}

export interface WorkerServiceComponents {
  mesh: Mesh
  membership: Membership
  nodeRegistry: NodeRegistry
  sessions: Sessions
  pool: WorkerPool
  logger: Logger
  registry: Registry
}

interface Batch {
  node: NodeId
  type: string
  session?: string
  timeoutMs: number
  priority: number
  retries: number
  payloads: unknown[]
  waiters: Array<{ from: number, count: number, resolve: (r: WorkerCallResult) => void, reject: (e: Error) => void, onWaiting?: (reason: string) => void }>
}

/** A batch's outcomes counted so far (for its metrics, added once the batch is answered). */
interface Tally { open: boolean, outcomes: Map<string, number> }

/** How often a session's record is refreshed with its worker's counters (start and stop are written at once). */
const SESSION_INFO_INTERVAL_MS = 5_000

export class WorkerService implements Startable {
  private readonly log: Logger
  private readonly batches = new Map<string, Batch>()
  private flushScheduled = false
  /** worker.call RPCs in flight, per node: a request to an idle node goes at once, others wait a tick to batch */
  private readonly inflight = new Map<NodeId, number>()
  private turn = 0
  /** requests sent from this node and not answered yet, per node (local ones too): the least loaded host is chosen */
  private readonly outstanding = new Map<NodeId, number>()
  /** "worker request waiting" is logged once per call, and once per type, session and reason in a while */
  private readonly waitLog = new LogLimiter(10_000)
  private readonly dirtySessions = new Map<string, WorkerInfo & { running: boolean }>()
  private loop?: { stop: () => void }
  private readonly m: { requests: Counter<'type' | 'outcome'>, seconds: Histogram<'type' | 'where'>, rpcBatch: Histogram }

  constructor (private readonly c: WorkerServiceComponents, private readonly nodeName: string) {
    this.log = c.logger
    const r = c.registry
    const pool = c.pool
    this.m = {
      requests: new Counter({ name: 'grid_worker_requests_total', help: 'Requests served by warm workers on this node, by type and outcome', labelNames: ['type', 'outcome'], registers: [r] }),
      seconds: new Histogram({ name: 'grid_worker_request_seconds', help: 'Round trip of warm-worker requests made from this node (where: local or remote)', labelNames: ['type', 'where'], buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1, 10], registers: [r] }),
      rpcBatch: new Histogram({ name: 'grid_worker_batch_size', help: 'Requests per worker.call sent from this node', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 512, 1024], registers: [r] })
    }
    new Gauge({
      name: 'grid_workers',
      help: 'Warm workers running on this node, by type',
      labelNames: ['type'],
      registers: [r],
      collect () {
        this.reset()
        const counts = new Map<string, number>()
        for (const w of pool.list()) counts.set(w.type, (counts.get(w.type) ?? 0) + 1)
        for (const t of pool.types()) this.set({ type: t }, counts.get(t) ?? 0)
      }
    })
    c.mesh.rpc.handle(WorkerCall, async (req, ctx) => {
      // the caller hears why the batch waits, if it does (ctx.emit throws once the caller is gone: the watch ends)
      const watch = new WaitWatch(waiting => { ctx.emit({ waiting }) })
      try {
        const results = await this.localBatch({ ...req, retries: 0 }, watch.add)
        return { node: c.mesh.peerId, nodeName: this.nodeName, results }
      } finally {
        watch.stop()
      }
    })
    c.mesh.rpc.handle(WorkerClose, async req => ({ closed: await c.pool.closeSession(req.session) }))
    c.pool.on('worker:state', w => {
      if (w.session === null) return
      this.dirtySessions.set(w.session, w)
      // start and stop are news: write them now; counters ride the periodic refresh
      if (!w.running || w.served === 0) this.writeSessionInfo(w.session)
    })
  }

  start (): void {
    this.loop = repeat(() => {
      for (const w of this.c.pool.list()) if (w.session !== null) this.dirtySessions.set(w.session, { ...w, running: true })
      for (const s of [...this.dirtySessions.keys()]) this.writeSessionInfo(s)
    }, SESSION_INFO_INTERVAL_MS, err => { this.log.warn({ err }, 'session refresh failed') })
  }

  stop (): void {
    this.loop?.stop()
  }

  /** True when this node's configuration makes the type a warm-worker type, or some alive node hosts its workers. */
  isWorkerType (type: string): boolean {
    return this.c.pool.has(type) || this.hosts(type).length > 0
  }

  /** How many alive, open nodes host workers of the type now (a job cuts its items into batches for them). */
  hostCount (type: string): number {
    return this.hosts(type).length
  }

  /**
   * Why no request of a worker type can be served now: no alive, open node hosts its workers (undefined when one
   * does). Says what a worker needs and why the nodes that could host one cannot.
   */
  cannotServe (type: string): string | undefined {
    if (this.hosts(type).length > 0) return undefined
    const need = this.c.pool.need(type)
    const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`
    const needs = need === undefined
      ? ''
      : ` needs ${[need.gpus > 0 ? plural(need.gpus, 'GPU') : '', need.cpus > 0 ? plural(need.cpus, 'CPU slot') : '', need.memory > 0 ? `${Math.ceil(need.memory / 1048576)} MiB` : ''].filter(x => x !== '').join(', ') || 'nothing'},`
    const why: string[] = []
    const here = this.c.pool.cannotHost(type)
    if (need !== undefined && here !== undefined) why.push(`${this.nodeName}: ${here}`)
    for (const v of this.c.membership.view()) {
      const r = this.c.nodeRegistry.get(v.id)?.value
      if (v.id === this.c.mesh.peerId || r === undefined || !(r.workerTypes ?? []).includes(type)) continue
      why.push(`${r.name} hosts them but is ${v.state !== 'alive' ? v.state : 'draining'}`)
    }
    const detail = why.length > 0 ? ` (${why.slice(0, 5).join('; ')})` : ''
    const missing = need !== undefined && need.gpus > 0 ? `no alive node has ${need.gpus === 1 ? 'a GPU for one' : `${need.gpus} GPUs for one`}` : 'no alive node can host one'
    return `worker type ${type}${needs} and ${missing}${detail}`
  }

  /** Sends requests to a worker of the type; every payload gets its own outcome. */
  async call (req: WorkerCallRequest, opts: WorkerCallOptions = {}): Promise<WorkerCallResult> {
    let node = this.choose(req)
    let logged = false
    const onWaiting = (reason: string): void => {
      // once per call (a wait episode), and not for every caller of a crowd waiting for the same thing
      if (!logged && this.waitLog.allow(`${req.type}\u0000${req.session ?? ''}\u0000${reason}`)) this.log.info({ type: req.type, session: req.session, node, reason }, 'worker request waiting')
      logged = true
      opts.onWaiting?.(reason)
    }
    try {
      return await this.send(node, req, onWaiting)
    } catch (err) {
      const e = toGridError(err)
      // the node went away, drains, or cannot host the worker: place the session elsewhere and try once more
      if (req.node !== undefined || !['PEER_UNREACHABLE', 'UNAVAILABLE', 'UNSATISFIABLE', 'TIMEOUT'].includes(e.code)) throw e
      this.log.info({ type: req.type, session: req.session, node, err: e.message }, 'worker node refused or unreachable; placing again')
      node = this.choose(req, node)
      return await this.send(node, req, onWaiting)
    }
  }

  /** Ends a session's worker wherever it lives. */
  async close (session: string): Promise<{ closed: number, node: NodeId | null }> {
    const s = this.c.sessions.get(session)
    if (s === undefined) throw new NotFoundError(`no session ${session}`)
    const w = s.worker as SessionWorkerInfo | null | undefined
    const node = (w?.node ?? s.owner) as NodeId | null
    if (node === null) return { closed: 0, node: null }
    const closed = node === this.c.mesh.peerId
      ? await this.c.pool.closeSession(session)
      : (await this.c.mesh.rpc.request(node, WorkerClose, { session }, { timeoutMs: 30_000 })).closed
    return { closed, node }
  }

  /** Nodes that are alive, not draining, and host workers of the type. */
  private hosts (type: string, exclude?: NodeId): NodeId[] {
    const out: NodeId[] = []
    for (const v of this.c.membership.view()) {
      if (v.state !== 'alive' || v.selfState !== 'alive' || v.id === exclude) continue
      const r = this.c.nodeRegistry.get(v.id)?.value
      if (r === undefined || r.drain || !(r.workerTypes ?? []).includes(type)) continue
      out.push(v.id)
    }
    return out
  }

  private choose (req: WorkerCallRequest, exclude?: NodeId): NodeId {
    if (req.node !== undefined) {
      // placing a session's request on a node makes that node the session's home, at once
      if (req.session !== undefined) {
        const s = this.c.sessions.get(req.session)
        if (s?.owner !== req.node) this.c.sessions.put(req.session, s?.value ?? null, { owner: req.node, worker: null })
      }
      return req.node
    }
    const hosts = this.hosts(req.type, exclude)
    if (hosts.length === 0) throw new UnsatisfiableError(`no alive node hosts warm workers of type ${req.type}`)
    if (req.session === undefined) return this.leastLoaded(hosts)
    const s = this.c.sessions.get(req.session)
    const owner = s?.owner ?? null
    if (owner !== null && owner !== exclude && hosts.includes(owner)) return owner
    // re-home: bounded-load consistent hashing over the hosts, by how many sessions each already owns
    const owned = new Map<NodeId, number>()
    for (const x of this.c.sessions.list()) if (x.owner !== null) owned.set(x.owner, (owned.get(x.owner) ?? 0) + 1)
    const home = boundedLoadHash(req.session, hosts, id => owned.get(id) ?? 0) as NodeId
    this.c.sessions.put(req.session, s?.value ?? null, { owner: home, worker: null })
    this.log.info({ session: req.session, owner: home, previous: owner }, 'session placed on a worker node')
    return home
  }

  /**
   * The host with the fewest of this node's requests outstanding, taking turns among equals: a node answering slower
   * gets less (a job's batches stay spread evenly over the hosts, and none is refused by a full queue while
   * others idle).
   */
  private leastLoaded (hosts: NodeId[]): NodeId {
    const from = this.turn++ % hosts.length
    let best = hosts[from] as NodeId
    let load = this.outstanding.get(best) ?? 0
    for (let k = 1; k < hosts.length && load > 0; k++) {
      const h = hosts[(from + k) % hosts.length] as NodeId
      const l = this.outstanding.get(h) ?? 0
      if (l < load) { best = h; load = l }
    }
    return best
  }

  private async send (node: NodeId, req: WorkerCallRequest, onWaiting: (reason: string) => void): Promise<WorkerCallResult> {
    const n = req.payloads.length
    this.outstanding.set(node, (this.outstanding.get(node) ?? 0) + n)
    try {
      return await this.sendNow(node, req, onWaiting)
    } finally {
      const left = (this.outstanding.get(node) ?? n) - n
      if (left <= 0) this.outstanding.delete(node)
      else this.outstanding.set(node, left)
    }
  }

  private async sendNow (node: NodeId, req: WorkerCallRequest, onWaiting: (reason: string) => void): Promise<WorkerCallResult> {
    const started = performance.now()
    const where = node === this.c.mesh.peerId ? 'local' : 'remote'
    let res: WorkerCallResult
    if (where === 'local') {
      const watch = new WaitWatch(onWaiting)
      try {
        const results = await this.localBatch(req, watch.add)
        res = { node, nodeName: this.nodeName, results }
      } finally {
        watch.stop()
      }
    } else {
      res = await this.enqueue(node, req, onWaiting)
    }
    this.m.seconds.observe({ type: req.type, where }, (performance.now() - started) / 1000)
    return res
  }

  /** A batch's requests to this node's workers: each its own outcome, counted in the metrics once per batch. */
  private async localBatch (req: { type: string, session?: string, payloads: unknown[], timeoutMs: number, priority: number, retries: number }, onWaiting: (w: WorkerWait) => void): Promise<WorkerOutcome[]> {
    const base = { type: req.type, ...(req.session === undefined ? {} : { session: req.session }), timeoutMs: req.timeoutMs, priority: req.priority, retries: req.retries }
    const tally: Tally = { open: true, outcomes: new Map() }
    try {
      return await Promise.all(req.payloads.map(async payload => await this.local({ ...base, payload }, onWaiting, tally)))
    } finally {
      // (a batch refused part-way: what its other requests come to later is counted one by one)
      tally.open = false
      for (const [outcome, n] of tally.outcomes) this.m.requests.inc({ type: req.type, outcome }, n)
    }
  }

  private async local (r: { type: string, session?: string, payload: unknown, timeoutMs: number, priority: number, retries: number }, onWaiting: (w: WorkerWait) => void, tally: Tally): Promise<WorkerOutcome> {
    let out: WorkerOutcome
    try {
      out = await this.c.pool.request(r, onWaiting)
    } catch (err) {
      const e = toGridError(err)
      // refusals travel back as errors, so the caller can place the request elsewhere
      if (e.code === 'UNAVAILABLE' || e.code === 'UNSATISFIABLE') throw e
      out = { ok: false, code: e.code, error: e.message }
    }
    const outcome = out.ok ? 'ok' : out.code
    if (tally.open) tally.outcomes.set(outcome, (tally.outcomes.get(outcome) ?? 0) + 1)
    else this.m.requests.inc({ type: r.type, outcome })
    return out
  }

  /** Requests to the same node in the same tick go in one RPC. */
  private async enqueue (node: NodeId, req: WorkerCallRequest, onWaiting: (reason: string) => void): Promise<WorkerCallResult> {
    const key = `${node}\u0000${req.type}\u0000${req.session ?? ''}\u0000${req.timeoutMs}\u0000${req.priority}\u0000${req.retries}`
    return await new Promise<WorkerCallResult>((resolve, reject) => {
      let b = this.batches.get(key)
      if (b === undefined || b.payloads.length + req.payloads.length > WORKER_BATCH_MAX) {
        if (b !== undefined) this.flushBatch(key, b)
        b = { node, type: req.type, timeoutMs: req.timeoutMs, priority: req.priority, retries: req.retries, payloads: [], waiters: [] }
        if (req.session !== undefined) b.session = req.session
        this.batches.set(key, b)
      }
      b.waiters.push({ from: b.payloads.length, count: req.payloads.length, resolve, reject, onWaiting })
      b.payloads.push(...req.payloads)
      if ((this.inflight.get(node) ?? 0) === 0) {
        // nothing on its way to that node: no reason to wait for company
        this.flushBatch(key, b)
        return
      }
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => {
          this.flushScheduled = false
          for (const [k, batch] of this.batches) this.flushBatch(k, batch)
        })
      }
    })
  }

  private flushBatch (key: string, b: Batch): void {
    if (this.batches.get(key) === b) this.batches.delete(key)
    this.m.rpcBatch.observe(b.payloads.length)
    const body = { type: b.type, timeoutMs: b.timeoutMs, priority: b.priority, payloads: b.payloads, ...(b.session === undefined ? {} : { session: b.session }) }
    this.inflight.set(b.node, (this.inflight.get(b.node) ?? 0) + 1)
    const done = (): void => {
      const n = (this.inflight.get(b.node) ?? 1) - 1
      if (n === 0) this.inflight.delete(b.node)
      else this.inflight.set(b.node, n)
    }
    // a batch is answered as one: each of its callers waits for what the batch waits for
    const onEvent = (ev: { waiting: string }): void => { for (const w of b.waiters) w.onWaiting?.(ev.waiting) }
    this.c.mesh.rpc.request(b.node, WorkerCall, body, { timeoutMs: b.timeoutMs + 5_000, onEvent }).finally(done).then(res => {
      for (const w of b.waiters) w.resolve({ node: res.node, nodeName: res.nodeName, results: res.results.slice(w.from, w.from + w.count) })
    }, (err: unknown) => {
      const e = err instanceof GridError ? err : toGridError(err)
      for (const w of b.waiters) w.reject(e)
    })
  }

  private writeSessionInfo (session: string): void {
    const w = this.dirtySessions.get(session)
    if (w === undefined) return
    this.dirtySessions.delete(session)
    const s = this.c.sessions.get(session)
    if (s === undefined) return
    const info: SessionWorkerInfo | null = w.running
      ? { node: this.c.mesh.peerId, nodeName: this.nodeName, type: w.type, pid: w.pid, gpus: w.gpus, served: w.served, startedAt: w.startedAt, lastUsedAt: w.lastUsedAt }
      : null
    const prev = s.worker as SessionWorkerInfo | null | undefined
    // another node's worker (the session moved) is not ours to clear
    if (info === null && prev != null && prev.node !== this.c.mesh.peerId) return
    if (info !== null && prev != null && prev.pid === info.pid && prev.served === info.served && prev.lastUsedAt === info.lastUsedAt && s.owner === this.c.mesh.peerId) return
    // the node that hosts a session's worker is its owner
    this.c.sessions.put(session, s.value, info === null ? { worker: null } : { worker: info, owner: this.c.mesh.peerId })
  }
}

