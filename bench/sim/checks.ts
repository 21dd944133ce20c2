/**
 * What the simulator checks and measures, from every node's `member:state` transitions and the faults it injected.
 *
 * - Detection: for each silent fault (a killed, powered-off or frozen process) lasting at least DETECTABLE_MS, the
 *   time from its start until the first node that is itself clean declares the node dead.
 * - False death (the safety invariant): an observer declares a subject dead (on its own evidence or a notice) while
 *   both have been clean for GRACE_MS (no crash, freeze or slow link of their own, not in a partition) and the links
 *   were within the detector's assumptions (the noise model: delays far below the probe timeout, a few percent of
 *   gossip lost, stream packets retransmitted). Each one is a violation.
 * - Convergence (the liveness invariant): after the heal, every live node sees every other live node alive; the
 *   time that takes, and a violation if the run ends first.
 */
import type { Transition } from '../../src/membership/index.ts'
import type { NodeId } from '../../src/interface/index.ts'

/** A fault shorter than this may pass unnoticed by design (3 missed heartbeats plus a probe): not counted for detection. */
export const DETECTABLE_MS = 15_000
/** How long after its last fault a node counts as clean: the detector's whole chain (overdue, probe, suspicion) and margin. */
export const GRACE_MS = 15_000

export interface FaultRecord {
  node: number
  kind: 'kill' | 'power' | 'freeze' | 'partition' | 'slow'
  start: number
  end?: number
  detectedAt?: number
}

export interface Violation { at: number, kind: 'false-death' | 'not-converged', detail: string }

export class Checks {
  readonly faults: FaultRecord[] = []
  readonly violations: Violation[] = []
  falseDeaths = 0
  deaths = 0
  /** per node: until when it is not clean (Infinity while a fault of its own lasts) */
  private readonly dirtyUntil: Float64Array
  private readonly active = new Map<number, FaultRecord>()
  /** until when partitions may explain a death between any two nodes */
  private partitionedUntil = -Infinity

  constructor (private readonly n: number, private readonly index: Map<NodeId, number>, private readonly now: () => number) {
    this.dirtyUntil = new Float64Array(n).fill(-Infinity)
  }

  faultStart (node: number, kind: FaultRecord['kind']): FaultRecord {
    const f: FaultRecord = { node, kind, start: this.now() }
    this.faults.push(f)
    if (kind !== 'partition') this.active.set(node, f)
    this.dirtyUntil[node] = Infinity
    if (kind === 'partition') this.partitionedUntil = Infinity
    return f
  }

  faultEnd (f: FaultRecord): void {
    f.end = this.now()
    if (this.active.get(f.node) === f) this.active.delete(f.node)
    this.dirtyUntil[f.node] = f.end + GRACE_MS
    if (f.kind === 'partition' && ![...this.faults].some(g => g.kind === 'partition' && g.end === undefined)) this.partitionedUntil = f.end + GRACE_MS
  }

  clean (node: number): boolean { return (this.dirtyUntil[node] ?? 0) < this.now() }

  onTransition (observer: number, t: Transition): void {
    if (t.to !== 'dead') return
    this.deaths++
    const subject = this.index.get(t.id)
    if (subject === undefined) return
    const f = this.active.get(subject)
    if (f !== undefined && f.kind !== 'slow') {
      if (f.detectedAt === undefined && this.clean(observer)) f.detectedAt = this.now()
      return
    }
    if (this.clean(subject) && this.clean(observer) && this.partitionedUntil < this.now()) {
      this.falseDeaths++
      if (this.violations.length < 20) this.violations.push({ at: this.now(), kind: 'false-death', detail: `node ${observer} declared node ${subject} dead (${t.reason}) though both were clean` })
    }
  }

  /** Detection latencies (ms) of the silent faults that lasted long enough, and how many went undetected. */
  detection (): { latencies: number[], undetected: number } {
    const latencies: number[] = []
    let undetected = 0
    for (const f of this.faults) {
      if (f.kind === 'partition' || f.kind === 'slow') continue
      const end = f.end ?? this.now()
      if (end - f.start < DETECTABLE_MS) continue
      if (f.detectedAt === undefined) undetected++
      else latencies.push(f.detectedAt - f.start)
    }
    return { latencies: latencies.sort((a, b) => a - b), undetected }
  }
}

export function percentile (sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))
  return sorted[i] as number
}
