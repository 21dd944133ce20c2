/**
 * The checker: judges one history (history.ts) and prints a verdict. Pure: no I/O, no clock.
 *
 * - Tasks: every accepted task reaches one final state, the same on every node (else lost, or diverged). No task
 *   runs twice at once; a task whose run ended never runs again, except when that run's executor died (kill -9,
 *   restart, the whole cluster killed) before the next run began: the documented at-least-once case, counted; or
 *   was cut off (SIGSTOP, a partition) meanwhile, so that its coordinator could not tell it from dead: counted apart.
 * - Writes: every acknowledged session write is what every node holds after healing, or superseded by a write that
 *   did not end before it began (last-writer-wins); a value older than an acknowledged write, or none, loses it.
 * - Membership: detection latency per fault (injection to each observer's view showing the target dead), false
 *   suspicions and false deaths (a target with no fault, seen by an observer not cut off), per node-hour.
 * - Convergence: the first poll after the faults end where every node sees every node alive and every node's state
 *   hash is the same, within the bound.
 */
import type { HistoryEvent, MemberValue, NemesisValue, RoundValue } from './history.ts'

export const FINAL_TASK_STATUSES = new Set(['completed', 'failed', 'timeout', 'cancelled'])
/** Faults that kill the executor's process: a run cut short there may run again (at-least-once). */
export const EXECUTOR_DEATHS = new Set(['kill9', 'kill9-origin', 'restart', 'cluster-restart'])
/**
 * Faults that cut an executor off without killing it (SIGSTOP, partitions, and starvation, whose 2 s stalls are
 * SIGSTOPs on a 3 % CPU quota): to a coordinator that cannot reach it, it died, so a run that ended there unseen may
 * run again elsewhere (at least once, counted apart as cut off). Two runs at once stay a defect whatever the fault.
 */
export const EXECUTOR_CUT_OFF = new Set(['stop', 'partition-one', 'partition-halves', 'partition-ring', 'partition-oneway', 'starve'])
/** Faults after which the target is expected to be seen dead by every node it is cut off from. */
export const DETECTED = new Set(['kill9', 'kill9-origin', 'stop', 'partition-one', 'partition-halves'])
/** Faults that cut an observer off: its view of others says nothing while they last. */
export const ISOLATING = new Set(['kill9', 'kill9-origin', 'stop', 'restart', 'cluster-restart', 'partition-one', 'partition-halves', 'partition-ring', 'partition-oneway'])

export interface CheckOptions {
  /** every node of the cluster */
  nodes: string[]
  /** how long after the last fault ends everything must agree (ms) */
  convergeBoundMs?: number
  /** how long after a fault ends its targets may still be suspected without it being false (ms) */
  graceMs?: number
}

export interface Quantiles { p50Ms: number | null, p99Ms: number | null, samples: number }
export interface TaskCounts { accepted: number, completed: number, lost: number, ranTwice: number, atLeastOnce: number, atLeastOnceCutOff: number, diverged: number }
export interface WriteCounts { acknowledged: number, lost: number, superseded: number, diverged: number }

export interface FaultSummary {
  fault: string
  count: number
  detection: Quantiles & { undetected: number }
  falseSuspicions: number
  falseDeaths: number
  falseSuspicionsPerNodeHour: number
  falseDeathsPerNodeHour: number
  tasks: TaskCounts
  writes: WriteCounts
  convergeMs: Quantiles
}

export interface Verdict {
  valid: boolean
  tasks: TaskCounts
  writes: WriteCounts
  falseDeaths: number
  falseSuspicions: number
  suspicions: number
  suspicionsPerNodeHour: number
  falseDeathsPerNodeHour: number
  nodeHours: number
  detection: Quantiles & { undetected: number }
  convergeMs: number | null
  faults: FaultSummary[]
  problems: string[]
}

const PROBLEMS_MAX = 50

export function quantiles (xs: number[]): Quantiles {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number): number | null => s.length === 0 ? null : Math.round(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number)
  return { p50Ms: at(0.5), p99Ms: at(0.99), samples: s.length }
}

interface Fault extends NemesisValue { start: number, end: number }

function faultsOf (events: HistoryEvent[]): Fault[] {
  const byId = new Map<number, Fault>()
  let last = 0
  for (const e of events) last = Math.max(last, e.mono)
  for (const e of events) {
    if (e.op !== 'nemesis') continue
    const v = e.value as NemesisValue
    const f = byId.get(v.id)
    if (v.phase === 'start') byId.set(v.id, { ...v, start: e.mono, end: f?.end ?? Infinity })
    else if (f !== undefined) f.end = e.mono
  }
  for (const f of byId.values()) if (f.end === Infinity) f.end = last
  return [...byId.values()].sort((a, b) => a.start - b.start)
}

/** Whether a fault cuts a off from b: in different groups of a partition, or one a target and the other not. */
function cutOff (f: Fault, a: string, b: string): boolean {
  if (f.isolated !== undefined) {
    const ga = f.isolated.findIndex(g => g.includes(a))
    const gb = f.isolated.findIndex(g => g.includes(b))
    return ga !== gb
  }
  return f.targets.includes(a) !== f.targets.includes(b)
}

function emptyTasks (): TaskCounts { return { accepted: 0, completed: 0, lost: 0, ranTwice: 0, atLeastOnce: 0, atLeastOnceCutOff: 0, diverged: 0 } }
function emptyWrites (): WriteCounts { return { acknowledged: 0, lost: 0, superseded: 0, diverged: 0 } }

export function check (events: HistoryEvent[], opts: CheckOptions): Verdict {
  const graceMs = opts.graceMs ?? 10_000
  const boundMs = opts.convergeBoundMs ?? 30_000
  const problems: string[] = []
  const problem = (p: string): void => { if (problems.length < PROBLEMS_MAX) problems.push(p) }
  const faults = faultsOf(events)
  const classes = [...new Set(faults.map(f => f.fault))]
  /** the fault classes active at a time (for attributing operations): 'none' outside every fault */
  const activeAt = (t: number): string[] => {
    const a = [...new Set(faults.filter(f => t >= f.start && t <= f.end).map(f => f.fault))]
    return a.length === 0 ? ['none'] : a
  }
  const perClassTasks = new Map<string, TaskCounts>()
  const perClassWrites = new Map<string, WriteCounts>()
  const bump = <T extends object>(m: Map<string, T>, mk: () => T, cls: string[], k: keyof T): void => {
    for (const c of cls) {
      let x = m.get(c)
      if (x === undefined) { x = mk(); m.set(c, x) }
      ;(x[k] as number)++
    }
  }
  const tasks = emptyTasks()
  const writes = emptyWrites()

  // ---- tasks ----
  const accepted = new Map<string, number>()
  for (const e of events) {
    if (e.op === 'task' && e.type === 'ok') {
      const id = (e.value as { id?: string } | undefined)?.id ?? e.key
      if (id !== undefined) accepted.set(id, e.mono)
    }
  }
  const finals = new Map<string, Map<string, string | null>>()
  for (const e of events) {
    if (e.op !== 'final-task' || e.key === undefined) continue
    let m = finals.get(e.key)
    if (m === undefined) { m = new Map(); finals.set(e.key, m) }
    m.set(e.node, (e.value as { status?: string } | null)?.status ?? null)
  }
  interface Run { node: string, start: number, end?: number, token: string }
  const runs = new Map<string, Run[]>()
  for (const e of events) {
    if ((e.op !== 'run-start' && e.op !== 'run-end') || e.key === undefined) continue
    const token = String((e.value as { run?: string } | undefined)?.run ?? `${e.node}`)
    let rs = runs.get(e.key)
    if (rs === undefined) { rs = []; runs.set(e.key, rs) }
    if (e.op === 'run-start') rs.push({ node: e.node, start: e.mono, token })
    else {
      const r = rs.find(x => x.token === token && x.end === undefined)
      if (r !== undefined) r.end = e.mono
    }
  }
  /** when the executor of a run died (the first death fault on its node after the run began) */
  const deathAfter = (node: string, t: number): number | undefined => {
    // a death begun before the run started (a whole cluster is killed one daemon after another) counts too
    const d = faults.find(f => EXECUTOR_DEATHS.has(f.fault) && f.targets.includes(node) && (f.start >= t || f.end >= t))
    return d?.start
  }
  /** whether a node was cut off (stopped, partitioned) at some time between two instants */
  const cutOffBetween = (node: string, from: number, to: number): boolean =>
    faults.some(f => EXECUTOR_CUT_OFF.has(f.fault) && f.start <= to && f.end >= from && (f.targets.includes(node) || (f.isolated?.flat().includes(node) ?? false)))
  for (const [id, at] of accepted) {
    const cls = activeAt(at)
    tasks.accepted++
    bump(perClassTasks, emptyTasks, cls, 'accepted')
    const seen = finals.get(id) ?? new Map<string, string | null>()
    const statuses = opts.nodes.map(n => seen.get(n) ?? null)
    const missing = opts.nodes.filter((n, i) => statuses[i] === null || !FINAL_TASK_STATUSES.has(statuses[i] as string))
    if (missing.length > 0) {
      tasks.lost++
      bump(perClassTasks, emptyTasks, cls, 'lost')
      problem(`task ${id} lost: no final state on ${missing.join(', ')} (${statuses.map((s, i) => `${opts.nodes[i]}=${s}`).join(' ')})`)
    } else if (new Set(statuses).size > 1) {
      tasks.diverged++
      bump(perClassTasks, emptyTasks, cls, 'diverged')
      problem(`task ${id} diverged: ${statuses.map((s, i) => `${opts.nodes[i]}=${s}`).join(' ')}`)
    } else if (statuses[0] === 'completed') {
      tasks.completed++
      bump(perClassTasks, emptyTasks, cls, 'completed')
    }
    const rs = [...(runs.get(id) ?? [])].sort((a, b) => a.start - b.start)
    let twice = false
    let again = false
    let againCutOff = false
    for (let i = 0; i < rs.length; i++) {
      const a = rs[i] as Run
      const aEnd = a.end ?? deathAfter(a.node, a.start) ?? Infinity
      for (let j = i + 1; j < rs.length; j++) {
        const b = rs[j] as Run
        if (b.start < aEnd) {
          twice = true
          problem(`task ${id} ran twice at once: on ${a.node} from ${Math.round(a.start)} ms to ${a.end === undefined ? 'never ended' : Math.round(a.end)} and on ${b.node} from ${Math.round(b.start)} ms`)
        } else if (a.end !== undefined && j === i + 1) {
          // it ran to its end and then again: only if its executor died before the next run began
          const died = deathAfter(a.node, a.start)
          if (died !== undefined && died <= b.start) again = true
          else if (cutOffBetween(a.node, a.start, b.start)) againCutOff = true
          else {
            twice = true
            problem(`task ${id} ran again after its run on ${a.node} ended at ${Math.round(a.end)} ms (next on ${b.node} at ${Math.round(b.start)} ms) with no executor death between`)
          }
        }
      }
    }
    if (twice) { tasks.ranTwice++; bump(perClassTasks, emptyTasks, cls, 'ranTwice') } else if (again) { tasks.atLeastOnce++; bump(perClassTasks, emptyTasks, cls, 'atLeastOnce') } else if (againCutOff) { tasks.atLeastOnceCutOff++; bump(perClassTasks, emptyTasks, cls, 'atLeastOnceCutOff') }
  }

  // ---- writes ----
  interface Write { key: string, seq: number, invoke: number, ok?: number, node: string }
  const bySeq = new Map<string, Write>()
  const wkey = (key: string, seq: number): string => `${key}\u0000${seq}`
  for (const e of events) {
    if (e.op !== 'write' || e.key === undefined) continue
    const seq = (e.value as { seq?: number } | undefined)?.seq
    if (seq === undefined) continue
    if (e.type === 'invoke') bySeq.set(wkey(e.key, seq), { key: e.key, seq, invoke: e.mono, node: e.node })
    else if (e.type === 'ok') { const w = bySeq.get(wkey(e.key, seq)); if (w !== undefined) w.ok = e.mono }
  }
  const reads = new Map<string, Map<string, number | null>>()
  for (const e of events) {
    if (e.op !== 'final-read' || e.key === undefined) continue
    let m = reads.get(e.key)
    if (m === undefined) { m = new Map(); reads.set(e.key, m) }
    m.set(e.node, (e.value as { seq?: number } | null)?.seq ?? null)
  }
  const divergedKeys = new Set<string>()
  for (const w of bySeq.values()) {
    if (w.ok === undefined) continue
    const cls = activeAt(w.invoke)
    writes.acknowledged++
    bump(perClassWrites, emptyWrites, cls, 'acknowledged')
    const seen = reads.get(w.key) ?? new Map<string, number | null>()
    const finalsHere = opts.nodes.map(n => seen.has(n) ? seen.get(n) as number | null : null)
    if (new Set(finalsHere).size > 1 && !divergedKeys.has(w.key)) {
      divergedKeys.add(w.key)
      writes.diverged++
      bump(perClassWrites, emptyWrites, cls, 'diverged')
      problem(`session ${w.key} diverged: ${finalsHere.map((s, i) => `${opts.nodes[i]}=${s}`).join(' ')}`)
    }
    let lostOn: string | undefined
    let superseded = false
    opts.nodes.forEach((n, i) => {
      const f = finalsHere[i] ?? null
      if (f === w.seq) return
      const fw = f === null ? undefined : bySeq.get(wkey(w.key, f))
      // the value held was written and acknowledged before this write began: this one should have replaced it
      if (fw === undefined || (fw.ok !== undefined && fw.ok < w.invoke)) lostOn ??= `${n} holds ${f === null ? 'nothing' : `#${f}`}`
      else superseded = true
    })
    if (lostOn !== undefined) {
      writes.lost++
      bump(perClassWrites, emptyWrites, cls, 'lost')
      problem(`session write ${w.key} #${w.seq} (acknowledged by ${w.node} at ${Math.round(w.ok)} ms) lost: ${lostOn}`)
    } else if (superseded) {
      writes.superseded++
      bump(perClassWrites, emptyWrites, cls, 'superseded')
    }
  }

  // ---- membership: detection, false suspicions and deaths ----
  const first = events.reduce((m, e) => Math.min(m, e.mono), Infinity)
  const last = events.reduce((m, e) => Math.max(m, e.mono), 0)
  const hours = (ms: number): number => ms / 3_600_000
  const nodeHours = events.length === 0 ? 0 : opts.nodes.length * hours(last - first)
  const members = events.filter(e => e.op === 'member').sort((a, b) => a.mono - b.mono)
  const detectionByClass = new Map<string, { xs: number[], undetected: number }>()
  const allDetection: number[] = []
  let undetectedAll = 0
  for (const f of faults) {
    if (!DETECTED.has(f.fault)) continue
    const d = detectionByClass.get(f.fault) ?? { xs: [], undetected: 0 }
    detectionByClass.set(f.fault, d)
    const targets = f.isolated !== undefined ? f.isolated.flat() : f.targets
    for (const t of targets) {
      for (const o of opts.nodes) {
        if (o === t || !cutOff(f, o, t)) continue
        const seen = members.find(e => e.node === o && e.mono >= f.start && e.mono <= f.end + graceMs && (e.value as MemberValue).target === t && (e.value as MemberValue).state === 'dead')
        if (seen === undefined) { d.undetected++; undetectedAll++; problem(`${o} never saw ${t} dead during ${f.fault} #${f.id}`) } else { d.xs.push(seen.mono - f.start); allDetection.push(seen.mono - f.start) }
      }
    }
  }
  const excusedTarget = (t: string, at: number): Fault | undefined => faults.find(f => at >= f.start && at <= f.end + graceMs && (f.targets.includes(t) || (f.isolated?.flat().includes(t) ?? false)))
  const excusedObserver = (o: string, t: string, at: number): boolean => faults.some(f => ISOLATING.has(f.fault) && at >= f.start && at <= f.end + graceMs && (f.targets.includes(o) || (f.isolated !== undefined && cutOff(f, o, t))))
  let suspicions = 0
  let falseSuspicions = 0
  let falseDeaths = 0
  const falseByClass = new Map<string, { s: number, d: number }>()
  for (const e of members) {
    const v = e.value as MemberValue
    if (v.state !== 'suspect' && v.state !== 'dead') continue
    if (v.state === 'suspect') suspicions++
    if (excusedTarget(v.target, e.mono) !== undefined || excusedObserver(e.node, v.target, e.mono)) continue
    for (const c of activeAt(e.mono)) {
      const x = falseByClass.get(c) ?? { s: 0, d: 0 }
      falseByClass.set(c, x)
      if (v.state === 'suspect') x.s++
      else x.d++
    }
    if (v.state === 'suspect') falseSuspicions++
    else {
      falseDeaths++
      problem(`false death: ${e.node} saw ${v.target} dead at ${Math.round(e.mono)} ms with no fault on either`)
    }
  }

  // ---- convergence ----
  const rounds = events.filter(e => e.op === 'round')
  const agree = (r: HistoryEvent): boolean => {
    const v = r.value as RoundValue
    for (const o of opts.nodes) {
      const view = v.views[o]
      if (view === undefined) return false
      for (const t of opts.nodes) if (view[t] !== 'alive') return false
    }
    const hs = opts.nodes.map(n => v.hashes[n])
    return hs.every(h => h !== undefined && h === hs[0])
  }
  const convergedAfter = (t: number): number | undefined => rounds.find(r => r.mono >= t && agree(r))?.mono
  const convergeByClass = new Map<string, number[]>()
  for (const f of faults) {
    const c = convergedAfter(f.end)
    if (c !== undefined && (faults.find(g => g.start > f.end && g.start < c) === undefined)) {
      const xs = convergeByClass.get(f.fault) ?? []
      xs.push(c - f.end)
      convergeByClass.set(f.fault, xs)
    }
  }
  const lastEnd = faults.reduce((m, f) => Math.max(m, f.end), 0)
  const finalConverged = rounds.length === 0 ? undefined : convergedAfter(lastEnd)
  const convergeMs = finalConverged === undefined ? null : Math.round(finalConverged - lastEnd)
  if (rounds.length > 0 && (convergeMs === null || convergeMs > boundMs)) problem(`views and state hashes did not agree within ${boundMs} ms of the last fault's end`)

  const classHours = (c: string): number => {
    let ms = 0
    for (const f of faults) if (f.fault === c) ms += f.end - f.start + graceMs
    return opts.nodes.length * hours(ms)
  }
  const faultSummaries: FaultSummary[] = [...classes, 'none'].map(c => {
    const d = detectionByClass.get(c) ?? { xs: [], undetected: 0 }
    const fx = falseByClass.get(c) ?? { s: 0, d: 0 }
    const h = c === 'none' ? Math.max(0, nodeHours - classes.reduce((m, k) => m + classHours(k), 0)) : classHours(c)
    return {
      fault: c,
      count: faults.filter(f => f.fault === c).length,
      detection: { ...quantiles(d.xs), undetected: d.undetected },
      falseSuspicions: fx.s,
      falseDeaths: fx.d,
      falseSuspicionsPerNodeHour: h > 0 ? round2(fx.s / h) : 0,
      falseDeathsPerNodeHour: h > 0 ? round2(fx.d / h) : 0,
      tasks: perClassTasks.get(c) ?? emptyTasks(),
      writes: perClassWrites.get(c) ?? emptyWrites(),
      convergeMs: quantiles(convergeByClass.get(c) ?? [])
    }
  })

  const valid = tasks.lost === 0 && tasks.ranTwice === 0 && tasks.diverged === 0 && writes.lost === 0 && writes.diverged === 0 &&
    falseDeaths === 0 && (rounds.length === 0 || (convergeMs !== null && convergeMs <= boundMs))
  return {
    valid,
    tasks,
    writes,
    falseDeaths,
    falseSuspicions,
    suspicions,
    suspicionsPerNodeHour: nodeHours > 0 ? round2(suspicions / nodeHours) : 0,
    falseDeathsPerNodeHour: nodeHours > 0 ? round2(falseDeaths / nodeHours) : 0,
    nodeHours: round2(nodeHours),
    detection: { ...quantiles(allDetection), undetected: undetectedAll },
    convergeMs,
    faults: faultSummaries,
    problems
  }
}

function round2 (x: number): number { return Math.round(x * 100) / 100 }
