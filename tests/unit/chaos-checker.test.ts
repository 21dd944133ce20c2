import { describe, expect, it } from 'vitest'
import { check } from '../chaos/checker.ts'
import type { HistoryEvent } from '../chaos/history.ts'

const NODES = ['n1', 'n2', 'n3']

/** A small history builder: events at given monotonic times (wall = mono). */
function hist (): { h: HistoryEvent[], at: (mono: number, e: Omit<HistoryEvent, 'wall' | 'mono'>) => void } {
  const h: HistoryEvent[] = []
  return { h, at: (mono, e) => { h.push({ ...e, wall: mono, mono }) } }
}

function accepted (at: ReturnType<typeof hist>['at'], t: number, id: string): void {
  at(t, { type: 'invoke', op: 'task', node: 'n1', process: 1 })
  at(t + 1, { type: 'ok', op: 'task', node: 'n1', process: 1, key: id, value: { id } })
}
function finals (at: ReturnType<typeof hist>['at'], t: number, id: string, status: Record<string, string | null>): void {
  for (const n of NODES) at(t, { type: 'info', op: 'final-task', node: n, key: id, value: status[n] === null ? null : { status: status[n] ?? 'completed' } })
}
function ran (at: ReturnType<typeof hist>['at'], id: string, node: string, run: string, start: number, end?: number): void {
  at(start, { type: 'info', op: 'run-start', node, key: id, value: { run } })
  if (end !== undefined) at(end, { type: 'info', op: 'run-end', node, key: id, value: { run } })
}
function write (at: ReturnType<typeof hist>['at'], node: string, key: string, seq: number, invoke: number, ok?: number): void {
  at(invoke, { type: 'invoke', op: 'write', node, key, value: { seq }, process: seq })
  at(ok ?? invoke + 5, { type: ok === undefined ? 'info' : 'ok', op: 'write', node, key, value: { seq }, process: seq })
}
function reads (at: ReturnType<typeof hist>['at'], t: number, key: string, seqs: Record<string, number | null>): void {
  for (const n of NODES) at(t, { type: 'info', op: 'final-read', node: n, key, value: seqs[n] === null ? null : { seq: seqs[n] } })
}

describe('chaos checker - judging a history', () => {
  it('passes a history where every task completed once and every write is held', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    ran(at, 't1', 'n2', 'a', 10, 500)
    write(at, 'n1', 's1', 1, 20, 25)
    finals(at, 1000, 't1', {})
    reads(at, 1000, 's1', { n1: 1, n2: 1, n3: 1 })
    const v = check(h, { nodes: NODES })
    expect(v.valid).toBe(true)
    expect(v.tasks).toMatchObject({ accepted: 1, completed: 1, lost: 0, ranTwice: 0 })
    expect(v.writes).toMatchObject({ acknowledged: 1, lost: 0 })
  })

  it('finds a lost task: accepted, but a node holds no final state for it', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    finals(at, 1000, 't1', { n3: null })
    const v = check(h, { nodes: NODES })
    expect(v.valid).toBe(false)
    expect(v.tasks.lost).toBe(1)
    expect(v.problems.join('\n')).toMatch(/task t1 lost: no final state on n3/)
  })

  it('finds a task run twice at once (the second run began before the first ended)', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    ran(at, 't1', 'n2', 'a', 10, 500)
    ran(at, 't1', 'n3', 'b', 200, 700)
    finals(at, 1000, 't1', {})
    const v = check(h, { nodes: NODES })
    expect(v.valid).toBe(false)
    expect(v.tasks.ranTwice).toBe(1)
  })

  it('finds a completed task run again with no executor death between', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    ran(at, 't1', 'n2', 'a', 10, 500)
    ran(at, 't1', 'n3', 'b', 600, 900)
    finals(at, 1000, 't1', {})
    const v = check(h, { nodes: NODES })
    expect(v.tasks.ranTwice).toBe(1)
    expect(v.valid).toBe(false)
  })

  it('counts, and allows, the at-least-once case: the run ended but its executor was killed before reporting it', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    ran(at, 't1', 'n2', 'a', 10, 500)
    at(510, { type: 'info', op: 'nemesis', node: 'n2', value: { id: 1, fault: 'kill9', targets: ['n2'], phase: 'start' } })
    at(5000, { type: 'info', op: 'nemesis', node: 'n2', value: { id: 1, fault: 'kill9', targets: ['n2'], phase: 'end' } })
    ran(at, 't1', 'n3', 'b', 2000, 2500)
    finals(at, 9000, 't1', {})
    const v = check(h, { nodes: NODES })
    expect(v.tasks).toMatchObject({ ranTwice: 0, atLeastOnce: 1 })
    expect(v.valid).toBe(true)
  })

  it('counts apart a run again after its executor was cut off by a partition (its coordinator saw it dead)', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    at(100, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'partition-one', targets: ['n1'], phase: 'start', isolated: [['n1'], ['n2', 'n3']] } })
    ran(at, 't1', 'n2', 'a', 10, 500)
    ran(at, 't1', 'n1', 'b', 7000, 7500)
    at(9000, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'partition-one', targets: ['n1'], phase: 'end' } })
    finals(at, 20_000, 't1', {})
    const v = check(h, { nodes: NODES })
    expect(v.tasks).toMatchObject({ ranTwice: 0, atLeastOnce: 0, atLeastOnceCutOff: 1 })
    expect(v.valid).toBe(true)
  })

  it('counts a run again after its executor was starved (stalled, seen dead) as cut off, and two at once as a defect', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    accepted(at, 0, 't2')
    at(100, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'starve', targets: ['n1'], phase: 'start' } })
    ran(at, 't1', 'n1', 'a', 200, 1200)
    ran(at, 't1', 'n2', 'b', 2000, 3000)
    ran(at, 't2', 'n1', 'c', 200, 1200)
    ran(at, 't2', 'n2', 'd', 1000, 2000)
    at(9000, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'starve', targets: ['n1'], phase: 'end' } })
    finals(at, 20_000, 't1', {})
    finals(at, 20_000, 't2', {})
    const v = check(h, { nodes: NODES })
    expect(v.tasks).toMatchObject({ ranTwice: 1, atLeastOnceCutOff: 1 })
  })

  it('does not count a run cut short by its executor\'s death as running at once with its retry', () => {
    const { h, at } = hist()
    accepted(at, 0, 't1')
    ran(at, 't1', 'n2', 'a', 10)
    at(300, { type: 'info', op: 'nemesis', node: 'n2', value: { id: 1, fault: 'kill9', targets: ['n2'], phase: 'start' } })
    ran(at, 't1', 'n3', 'b', 2000, 2500)
    finals(at, 9000, 't1', {})
    expect(check(h, { nodes: NODES }).tasks).toMatchObject({ ranTwice: 0 })
  })

  it('finds a lost write: a node holds a value acknowledged before the lost write began', () => {
    const { h, at } = hist()
    write(at, 'n1', 's1', 1, 0, 10)
    write(at, 'n2', 's1', 2, 20, 30)
    reads(at, 1000, 's1', { n1: 1, n2: 1, n3: 1 })
    const v = check(h, { nodes: NODES })
    expect(v.valid).toBe(false)
    expect(v.writes.lost).toBe(1)
    expect(v.problems.join('\n')).toMatch(/s1 #2 .* lost/)
  })

  it('finds a write lost entirely (no node holds the session)', () => {
    const { h, at } = hist()
    write(at, 'n1', 's1', 1, 0, 10)
    reads(at, 1000, 's1', { n1: null, n2: null, n3: null })
    expect(check(h, { nodes: NODES }).writes.lost).toBe(1)
  })

  it('accepts a superseded write: a concurrent or later write won', () => {
    const { h, at } = hist()
    write(at, 'n1', 's1', 1, 0, 50)
    write(at, 'n2', 's1', 2, 20, 30) // concurrent with #1: either may win
    write(at, 'n3', 's1', 3, 100) // never acknowledged, but later: it may win too
    reads(at, 1000, 's1', { n1: 3, n2: 3, n3: 3 })
    const v = check(h, { nodes: NODES })
    expect(v.writes).toMatchObject({ acknowledged: 2, lost: 0, superseded: 2 })
    expect(v.valid).toBe(true)
  })

  it('measures detection from injection to each observer seeing the target dead, and flags a false death', () => {
    const { h, at } = hist()
    at(1000, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'kill9', targets: ['n1'], phase: 'start' } })
    at(1800, { type: 'info', op: 'member', node: 'n2', value: { target: 'n1', state: 'dead' } })
    at(2400, { type: 'info', op: 'member', node: 'n3', value: { target: 'n1', state: 'dead' } })
    at(5000, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'kill9', targets: ['n1'], phase: 'end' } })
    at(30_000, { type: 'info', op: 'member', node: 'n2', value: { target: 'n3', state: 'suspect' } })
    at(31_000, { type: 'info', op: 'member', node: 'n2', value: { target: 'n3', state: 'dead' } })
    const v = check(h, { nodes: NODES })
    expect(v.detection).toMatchObject({ p50Ms: 800, p99Ms: 1400, samples: 2, undetected: 0 })
    expect(v.falseDeaths).toBe(1)
    expect(v.falseSuspicions).toBe(1)
    expect(v.valid).toBe(false)
  })

  it('converges at the first poll where every view is all alive and every state hash is the same', () => {
    const { h, at } = hist()
    at(0, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'partition-one', targets: ['n1'], phase: 'start', isolated: [['n1'], ['n2', 'n3']] } })
    at(5000, { type: 'info', op: 'nemesis', node: 'n1', value: { id: 1, fault: 'partition-one', targets: ['n1'], phase: 'end' } })
    const alive = { n1: 'alive', n2: 'alive', n3: 'alive' }
    at(6000, { type: 'info', op: 'round', node: 'harness', value: { views: { n1: alive, n2: alive, n3: alive }, hashes: { n1: 'a', n2: 'b', n3: 'b' } } })
    at(7500, { type: 'info', op: 'round', node: 'harness', value: { views: { n1: alive, n2: alive, n3: alive }, hashes: { n1: 'b', n2: 'b', n3: 'b' } } })
    const v = check(h, { nodes: NODES })
    expect(v.convergeMs).toBe(2500)
    expect(v.valid).toBe(true)
    expect(check(h, { nodes: NODES, convergeBoundMs: 2000 }).valid).toBe(false)
  })
})
