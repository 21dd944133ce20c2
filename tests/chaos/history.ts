/**
 * The history of one chaos run: one JSON object per line, as Jepsen keeps it. Every operation a driver starts is an
 * `invoke`, then exactly one of `ok` (it happened), `fail` (it certainly did not) or `info` (unknown: the call timed
 * out or the node went away). Observations (task runs seen by the task itself, membership changes, final reads, the
 * nemesis) are `info` events with no invoke. Each carries wall time (Date.now(), ms), monotonic time (ms since the run
 * began) and the node it concerns.
 */
import { appendFileSync, readFileSync } from 'node:fs'

export type EventType = 'invoke' | 'ok' | 'fail' | 'info'

/** What an event is about. */
export type Op =
  | 'task' // submit a task (ok: value.id is the task id)
  | 'write' // put a session (key, value.seq)
  | 'run-start' | 'run-end' // a task's process started / ended on node (key: task id; value.attempt)
  | 'final-task' // after healing: node's record of a task (key: task id; value.status, value.attempts)
  | 'final-read' // after healing: node's value of a session (key; value.seq, or null when absent)
  | 'member' // node's view changed: value.target is now value.state
  | 'round' // one poll of every node: value {views: {node: {target: state}}, hashes: {node: hash}} (convergence)
  | 'nemesis' // a fault: value {id, fault, targets, phase: 'start' | 'end'}

export interface HistoryEvent {
  type: EventType
  op: Op
  /** the node the operation was sent to, or the observer */
  node: string
  /** wall clock, ms since the epoch */
  wall: number
  /** monotonic ms since the run began */
  mono: number
  /** the client that issued it (pairs an invoke with its completion) */
  process?: number
  key?: string
  value?: unknown
  error?: string
}

export interface NemesisValue { id: number, fault: string, targets: string[], phase: 'start' | 'end', isolated?: string[][] }
export interface MemberValue { target: string, state: string }
export interface RoundValue { views: Record<string, Record<string, string>>, hashes: Record<string, string> }

export class History {
  readonly events: HistoryEvent[] = []
  private readonly t0 = performance.now()

  constructor (private readonly file?: string) {}

  now (): { wall: number, mono: number } {
    return { wall: Date.now(), mono: Math.round((performance.now() - this.t0) * 1000) / 1000 }
  }

  add (e: Omit<HistoryEvent, 'wall' | 'mono'> & Partial<Pick<HistoryEvent, 'wall' | 'mono'>>): HistoryEvent {
    const t = this.now()
    const ev: HistoryEvent = { ...e, wall: e.wall ?? t.wall, mono: e.mono ?? (e.wall !== undefined ? t.mono - (t.wall - e.wall) : t.mono) }
    this.events.push(ev)
    if (this.file !== undefined) appendFileSync(this.file, JSON.stringify(ev) + '\n')
    return ev
  }
}

export function readHistory (file: string): HistoryEvent[] {
  return readFileSync(file, 'utf8').split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as HistoryEvent)
}
