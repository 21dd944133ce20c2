import { describe, expect, it } from 'vitest'
import type { ItemRun } from '../../proto/index.ts'
import { RunTable } from '../../src/jobs/run-table.ts'

describe('the driver\'s run table', () => {
  it('gives back every run as set, and null for an item not started', () => {
    const runs: Array<ItemRun | null> = [
      null,
      { status: 'running', run: 1 },
      { status: 'completed', run: 2, round: 1, node: 'A', nodeName: 'n1', exitCode: 0, attempts: 1, stdout: 'out\n' },
      { status: 'failed', run: 1, node: 'B', nodeName: 'n2', exitCode: -1, attempts: 3, error: 'exit code -1' },
      { status: 'cancelled', run: 1, exitCode: null, attempts: 0 },
      { status: 'failed', run: 4, node: 'A', error: 'no reply' }
    ]
    const t = RunTable.from(runs)
    expect(t.toArray()).toEqual(runs)
    expect(t.slice(2, 4)).toEqual(runs.slice(2, 4))
    expect(t.count('failed')).toBe(2)
    expect(t.statusOf(0)).toBeUndefined()
    expect(t.runOf(5)).toBe(4)
  })

  it('keeps no stdout or error of a run replaced by one without', () => {
    const t = new RunTable(2)
    t.set(0, { status: 'failed', run: 1, stdout: 'partial', error: 'timed out' })
    t.set(0, { status: 'completed', run: 2, exitCode: 0, attempts: 1 })
    expect(t.get(0)).toEqual({ status: 'completed', run: 2, exitCode: 0, attempts: 1 })
    expect(t.get(1)).toBeNull()
  })

  it('records a running and a completed run without an ItemRun as set() would, and counts every status in one pass', () => {
    const a = new RunTable(4)
    const b = new RunTable(4)
    a.setRunning(0, 1, 0)
    b.set(0, { status: 'running', run: 1 })
    const n2 = a.nodeRef('B', 'n2')
    a.setCompleted(1, 2, 1, n2, '{"echo":1}')
    b.set(1, { status: 'completed', run: 2, round: 1, node: 'B', nodeName: 'n2', exitCode: 0, attempts: 1, stdout: '{"echo":1}' })
    a.set(2, { status: 'failed', run: 1, stdout: 'partial', error: 'boom' })
    a.setCompleted(2, 2, 0, n2, '')
    b.set(2, { status: 'completed', run: 2, node: 'B', nodeName: 'n2', exitCode: 0, attempts: 1 })
    expect(a.toArray()).toEqual(b.toArray())
    expect(a.counts()).toEqual({ none: 1, running: 1, completed: 2, failed: 0, cancelled: 0 })
  })
})
