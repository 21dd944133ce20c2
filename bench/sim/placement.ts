/**
 * Placement under the simulation: tasks arrive at random live nodes; each origin places them with the real routing
 * (`route` on `candidates` built from its own membership view, the default `least-loaded` strategy, corrected by a
 * real `DispatchLedger`, the view rebuilt at most every 100 ms as the coordinator does) and the task runs on the
 * first candidate it can reach. Each node is modelled as SLOTS slots and a FIFO queue; its load (running, queued,
 * free slots) is what its real heartbeats carry. The same arrivals (time, duration) also go to an ideal
 * join-shortest-queue with perfect, instant knowledge of every node: the comparison is placement quality.
 */
import type { LoadReport, MemberView, NodeId } from '../../src/interface/index.ts'
import { route } from '../../src/routing/index.ts'
import { DispatchLedger } from '../../src/tasks/dispatch-ledger.ts'
import { candidates } from '../../src/tasks/view.ts'
import { percentile } from './checks.ts'
import { KIND, type VirtualClock } from './clock.ts'
import type { SimNetwork } from './network.ts'
import type { Rng } from './rng.ts'

export const SLOTS = 4
/** the coordinator's view cache (src/tasks/coordinator.ts VIEW_TTL_MS) */
const VIEW_TTL_MS = 100
const NO_REGISTRY = { get: () => undefined, list: () => new Map() }

export interface PlacementOptions {
  /** share of the cluster's slots busy on average */
  utilisation: number
  meanTaskMs: number
}

export interface PlacementReport {
  tasks: number
  /** tasks no reachable candidate took (every offer failed) */
  unplaced: number
  meanWaitMs: number
  p99WaitMs: number | null
  idealMeanWaitMs: number
  idealP99WaitMs: number | null
}

interface Slots { running: number, queue: Array<() => void> }

export class Placement {
  private readonly real: Slots[]
  private readonly ideal: Slots[]
  private readonly ledgers: DispatchLedger[]
  private readonly views: Array<{ at: number, members: MemberView[], reportedAt: Map<NodeId, number> } | undefined>
  private readonly waits: number[] = []
  private readonly idealWaits: number[] = []
  private tasks = 0
  private unplaced = 0
  private turn = 0

  constructor (
    private readonly clock: VirtualClock, private readonly net: SimNetwork, private readonly rng: Rng,
    private readonly view: (i: number) => MemberView[] | undefined, private readonly opts: PlacementOptions
  ) {
    const n = net.n
    this.real = Array.from({ length: n }, () => ({ running: 0, queue: [] }))
    this.ideal = Array.from({ length: n }, () => ({ running: 0, queue: [] }))
    this.ledgers = Array.from({ length: n }, () => new DispatchLedger(() => Date.now()))
    this.views = new Array(n).fill(undefined)
  }

  /** A node's load as its heartbeats report it. */
  load (i: number, base: LoadReport): LoadReport {
    const s = this.real[i] as Slots
    return { ...base, slots: SLOTS, freeSlots: Math.max(0, SLOTS - s.running), running: s.running, queued: s.queue.length }
  }

  /** A node's process died: what ran or waited there is gone (the real cluster would retry it elsewhere). */
  crashed (i: number): void {
    this.real[i] = { running: 0, queue: [] }
    this.ledgers[i] = new DispatchLedger(() => Date.now())
    this.views[i] = undefined
  }

  start (fromMs: number, untilMs: number): void {
    const rate = this.opts.utilisation * this.net.n * SLOTS / this.opts.meanTaskMs
    const next = (): void => {
      if (this.clock.now >= untilMs) return
      this.clock.at(this.rng.exp(1 / rate), -1, KIND.control, () => { this.arrive(); next() })
    }
    this.clock.at(fromMs, -1, KIND.control, next)
  }

  private arrive (): void {
    const n = this.net.n
    const f = this.net.faults
    let origin = -1
    for (let tries = 0; tries < 20 && origin < 0; tries++) {
      const i = this.rng.int(n)
      if (f.crashed[i] !== 1 && f.frozen[i] !== 1 && this.view(i) !== undefined) origin = i
    }
    if (origin < 0) return
    const duration = this.rng.exp(this.opts.meanTaskMs)
    const id = `t${++this.tasks}`
    this.placeIdeal(duration)
    const target = this.clock.on(origin, () => this.placeReal(origin, id))
    if (target === undefined) { this.unplaced++; return }
    this.clock.at(this.net.delay(origin, target), target, KIND.control, () => {
      this.admit(this.real, target, duration, this.waits, () => {
        this.clock.at(this.net.delay(target, origin), origin, KIND.control, () => { this.ledgers[origin]?.ended(id) })
      })
    })
  }

  private placeReal (origin: number, id: string): number | undefined {
    const now = Date.now()
    let v = this.views[origin]
    if (v === undefined || now - v.at > VIEW_TTL_MS) {
      const members = this.view(origin) ?? []
      v = { at: now, members, reportedAt: new Map(members.map(m => [m.id, m.lastSeen])) }
      this.views[origin] = v
    }
    const reportedAt = v.reportedAt
    const ledger = this.ledgers[origin] as DispatchLedger
    const r = route(candidates(v.members, NO_REGISTRY), { cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, strategy: 'least-loaded' }, {
      origin: { id: this.net.ids[origin] as NodeId, region: '' },
      recentlySent: peer => ledger.unreported(peer, reportedAt.get(peer) ?? 0),
      random: Math.random,
      turn: this.turn++
    })
    if (!r.ok) return undefined
    for (const c of r.candidates) {
      const t = this.net.index.get(c)
      if (t === undefined) continue
      // an offer to a node it cannot reach (or that does not answer) fails, and the next candidate is tried
      if (t !== origin && (!this.net.reachable(origin, t) || this.net.faults.frozen[t] === 1)) continue
      ledger.sent(c, id)
      return t
    }
    return undefined
  }

  private placeIdeal (duration: number): void {
    let best = -1
    let bestLoad = Infinity
    const n = this.net.n
    const start = this.rng.int(n)
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n
      if (this.net.faults.crashed[i] === 1) continue
      const s = this.ideal[i] as Slots
      const load = s.running + s.queue.length
      if (load < bestLoad) { bestLoad = load; best = i }
    }
    if (best >= 0) this.admit(this.ideal, best, duration, this.idealWaits, () => {})
  }

  private admit (pool: Slots[], i: number, duration: number, waits: number[], done: () => void): void {
    const s = pool[i] as Slots
    const arrived = this.clock.now
    const run = (): void => {
      waits.push(this.clock.now - arrived)
      s.running++
      this.clock.at(duration, -1, KIND.control, () => {
        if (pool[i] !== s) return // its node crashed meanwhile
        s.running--
        done()
        s.queue.shift()?.()
      })
    }
    if (s.running < SLOTS) run()
    else s.queue.push(run)
  }

  report (): PlacementReport {
    const mean = (a: number[]): number => a.length === 0 ? 0 : Math.round(a.reduce((x, y) => x + y, 0) / a.length)
    const sorted = [...this.waits].sort((a, b) => a - b)
    const idealSorted = [...this.idealWaits].sort((a, b) => a - b)
    return {
      tasks: this.tasks,
      unplaced: this.unplaced,
      meanWaitMs: mean(this.waits),
      p99WaitMs: round(percentile(sorted, 99)),
      idealMeanWaitMs: mean(this.idealWaits),
      idealP99WaitMs: round(percentile(idealSorted, 99))
    }
  }
}

function round (v: number | null): number | null { return v === null ? null : Math.round(v) }
