/**
 * Task records in the replicated state. Each writer keeps one entry per task holding the aspects it is responsible
 * for: the coordinator's (spec, attempt, a final verdict of its own), the executor's (how its attempt went), a
 * canceller's request. Nobody overwrites another's aspect, so concurrent writers never lose each other's news;
 * the record everyone shows is the merge: the coordinator with the highest attempt, and that attempt's execution.
 * Entries are `{coord, exec, cancel}`; the previous release's `{c, e, x}` are read through proto's `decodeTaskEntry`.
 */
import {
  FINAL_STATUSES, decodeTaskEntry,
  type CoordAspect, type ExecAspect, type StoredSpec, type TaskEntry, type TaskRecord, type TaskStatus
} from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { compareStamps, type StateStore, type StoredEntry } from '../state/index.ts'

/** The replicated store as task records use it. */
export type RecordStore = Pick<StateStore, 'selfId' | 'set' | 'entryOf' | 'lookupAll' | 'groupAll'>

export interface Aspects {
  coord?: { aspect: CoordAspect, writer: NodeId }
  exec?: { aspect: ExecAspect, writer: NodeId }
  /** every execution of every attempt, newest attempt first */
  execs: Array<{ aspect: ExecAspect, writer: NodeId }>
  cancelRequested: boolean
}

export class TaskRecords {
  constructor (private readonly store: RecordStore) {}

  /** This node's own entry for a task (the aspects it wrote). */
  own (id: string): TaskEntry {
    const e = this.store.entryOf(this.store.selfId, 'tasks', id)
    return (e === undefined ? undefined : decodeTaskEntry(e.value)) ?? {}
  }

  /** Writes the coordinator's aspect; a spec's env values never go into it, its names do (`envNames`). */
  writeCoord (id: string, coord: CoordAspect): void {
    this.store.set('tasks', id, { ...this.own(id), coord: { ...coord, spec: storedSpec(coord.spec) } } satisfies TaskEntry)
  }

  writeExec (id: string, exec: ExecAspect): void {
    this.store.set('tasks', id, { ...this.own(id), exec } satisfies TaskEntry)
  }

  writeCancel (id: string): void {
    this.store.set('tasks', id, { ...this.own(id), cancel: { at: Date.now(), by: this.store.selfId } } satisfies TaskEntry)
  }

  aspects (id: string): Aspects {
    return merge(this.store.lookupAll('tasks', id))
  }

  get (id: string): TaskRecord | undefined {
    return toRecord(id, this.aspects(id))
  }

  /** Every task known, newest first. */
  list (): TaskRecord[] {
    const out: TaskRecord[] = []
    for (const [id, entries] of this.store.groupAll('tasks')) {
      const r = toRecord(id, merge(entries))
      if (r !== undefined) out.push(r)
    }
    return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : (a.id < b.id ? 1 : -1)))
  }

  /** Every task with its aspects (for takeover after a node's death, and restart recovery). */
  all (): Map<string, Aspects> {
    const out = new Map<string, Aspects>()
    for (const [id, entries] of this.store.groupAll('tasks')) out.set(id, merge(entries))
    return out
  }
}

/** A spec as a record keeps it: `env` replaced by the names of its variables. */
export function storedSpec (spec: StoredSpec): StoredSpec {
  if (spec.env === undefined) return spec
  const { env, ...rest } = spec
  const names = Object.keys(env)
  return names.length === 0 && rest.envNames === undefined ? rest : { ...rest, envNames: rest.envNames ?? names }
}

/** The names of the variables a recorded spec set. */
export function envNamesOf (spec: StoredSpec): string[] {
  return spec.envNames ?? Object.keys(spec.env ?? {})
}

/** Merges every writer's stored entry for one task (either form; malformed ones are skipped). */
export function merge (entries: StoredEntry[]): Aspects {
  let coord: { aspect: CoordAspect, writer: NodeId, stamp: StoredEntry['stamp'] } | undefined
  const execs: Array<{ aspect: ExecAspect, writer: NodeId, stamp: StoredEntry['stamp'] }> = []
  let cancelRequested = false
  for (const e of entries) {
    const v = decodeTaskEntry(e.value)
    if (v === undefined) continue
    if (v.coord !== undefined && (coord === undefined || newerCoord(v.coord, e.stamp, coord.aspect, coord.stamp))) {
      coord = { aspect: v.coord, writer: e.writer, stamp: e.stamp }
    }
    if (v.exec !== undefined) execs.push({ aspect: v.exec, writer: e.writer, stamp: e.stamp })
    if (v.cancel !== undefined) cancelRequested = true
  }
  execs.sort((a, b) => b.aspect.attempt - a.aspect.attempt || compareStamps(b.stamp, a.stamp))
  const attempt = coord?.aspect.attempt
  const current = attempt === undefined ? execs[0] : execs.find(x => x.aspect.attempt === attempt)
  const out: Aspects = { execs: execs.map(x => ({ aspect: x.aspect, writer: x.writer })), cancelRequested }
  if (coord !== undefined) out.coord = { aspect: coord.aspect, writer: coord.writer }
  if (current !== undefined) out.exec = { aspect: current.aspect, writer: current.writer }
  return out
}

/** The generation of a coordinator's aspect (how many takeovers it follows). */
export function generationOf (c: Pick<CoordAspect, 'generation'>): number {
  return c.generation ?? 0
}

/**
 * Which coordinator's aspect the record shows: the latest generation (a takeover's), then the highest attempt, then
 * the latest write; a superseded coordinator's later retries never outrank its successor's aspect.
 */
function newerCoord (a: CoordAspect, as: StoredEntry['stamp'], b: CoordAspect, bs: StoredEntry['stamp']): boolean {
  const g = generationOf(a) - generationOf(b)
  if (g !== 0) return g > 0
  return a.attempt > b.attempt || (a.attempt === b.attempt && compareStamps(as, bs) > 0)
}

/**
 * The node that drives the task now, per the records, when another than `self` with a later generation than
 * `generation` (this node's), or the same one after a takeover: this node's coordination is superseded and must
 * stop. Undefined while this node may go on.
 */
export function supersededBy (a: Aspects, self: NodeId, generation: number): NodeId | undefined {
  const c = a.coord?.aspect
  if (c === undefined || c.coordinator === self) return undefined
  // two successors that took it over at once (views differed) wrote one generation: the one the merge shows drives it
  const g = generationOf(c)
  return g > generation || (g === generation && g > 0) ? c.coordinator : undefined
}

/** The status everyone shows for a task. */
export function statusOf (a: Aspects): TaskStatus {
  if (a.coord?.aspect.final !== undefined) return a.coord.aspect.final
  const e = a.exec?.aspect
  if (e === undefined || e.lost === true) return 'pending'
  return e.status
}

export function isFinalStatus (s: TaskStatus): boolean {
  return FINAL_STATUSES.has(s)
}

export function toRecord (id: string, a: Aspects): TaskRecord | undefined {
  const c = a.coord?.aspect
  const e = a.exec?.aspect
  if (c === undefined && e === undefined) return undefined
  const status = statusOf(a)
  const final = isFinalStatus(status)
  const iso = (t: number | undefined): string | null => t === undefined ? null : new Date(t).toISOString()
  const createdAt = c?.createdAt ?? e?.queuedAt ?? 0
  const startedAt = e?.lost === true ? undefined : e?.startedAt
  const finishedAt = c?.final !== undefined ? (c.finishedAt ?? e?.finishedAt) : (final ? e?.finishedAt : undefined)
  const r: TaskRecord = {
    id,
    status,
    node: e?.lost === true ? null : (e?.node ?? null),
    nodeName: e?.lost === true ? null : (e?.nodeName ?? null),
    origin: c?.origin ?? '',
    originName: c?.originName ?? '',
    coordinator: c?.coordinator ?? '',
    attempts: c?.attempt ?? e?.attempt ?? 1,
    exitCode: c?.final !== undefined && c.exitCode !== undefined ? c.exitCode : (final ? (e?.exitCode ?? null) : null),
    signal: final && c?.final === undefined ? (e?.signal ?? null) : null,
    error: c?.final !== undefined ? (c.error ?? (c.final === e?.status ? e.error : undefined) ?? null) : (final ? (e?.error ?? null) : null),
    command: c?.spec.command ?? null,
    type: c?.spec.type ?? null,
    session: c?.spec.session ?? null,
    priority: c?.spec.priority ?? 0,
    cpus: c?.spec.cpus ?? 0,
    gpus: c?.spec.gpus ?? 0,
    memory: c?.spec.memory ?? 0,
    gpuIds: e?.gpus ?? [],
    createdAt: new Date(createdAt).toISOString(),
    startedAt: iso(startedAt),
    finishedAt: iso(finishedAt),
    durationMs: startedAt !== undefined && finishedAt !== undefined ? finishedAt - startedAt : null,
    cancelRequested: a.cancelRequested,
    oom: final && e?.oom === true,
    envNames: c === undefined ? [] : envNamesOf(c.spec),
    offeredBy: e?.lost === true ? null : (e?.offeredBy ?? null)
  }
  if (e?.result !== undefined && status === 'completed') r.result = e.result
  // why it waits: in an executor's queue (its record says), else for a node that can take it (the coordinator's)
  if (status === 'pending') {
    const reason = (e?.lost === true ? undefined : e?.reason) ?? c?.reason
    if (reason !== undefined) r.reason = reason
  }
  return r
}
