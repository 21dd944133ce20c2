/**
 * The executor side's records of an attempt's end, against stub components: the answer to a remote coordinator goes
 * before the record (which only feeds the views); a local attempt's end is recorded before its client hears it; a
 * stopping node records what waits.
 */
import pino from 'pino'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { ExecAspect } from '../../proto/index.ts'
import type { TasksComponents, TasksInit } from '../../src/tasks/components.ts'
import { ExecutorSide } from '../../src/tasks/executor-side.ts'
import { TaskRecords } from '../../src/tasks/records.ts'
import { taskMetrics } from '../../src/tasks/task-metrics.ts'

function harness (): { emit: (id: string, s: ExecAspect) => void, written: string[], side: ExecutorSide } {
  const written: string[] = []
  let onState: ((id: string, s: ExecAspect) => void) | undefined
  const store = {
    selfId: 'self',
    set: (_c: string, key: string) => { written.push(key); return [Date.now(), 0] },
    entryOf: () => undefined,
    setCollector: () => {}
  }
  const c = {
    peerId: 'self',
    rpc: { handle: () => {} },
    members: { on: () => {} },
    executor: { on: (_e: string, fn: (id: string, s: ExecAspect) => void) => { onState = fn }, typeOf: () => 'command', get: () => undefined },
    store
  } as unknown as TasksComponents
  const records = new TaskRecords(store as never)
  const m = taskMetrics(new Registry(), { running: () => 0, queued: () => 0, coordinating: () => 0 })
  const side = new ExecutorSide(c, { nodeName: 'n1' } as TasksInit, records, m, pino({ level: 'silent' }), () => ({ running: 0, queued: 0 }))
  return { emit: (id, s) => { onState?.(id, s) }, written, side }
}

const end = (offeredBy: string): ExecAspect => ({ attempt: 1, node: 'self', nodeName: 'n1', status: 'completed', queuedAt: 1, startedAt: 2, finishedAt: 3, exitCode: 0, offeredBy })

describe('tasks - executor side records', () => {
  it('records the end of an attempt another node offered after this turn, and a local one at once', async () => {
    const h = harness()
    h.emit('remote', end('coordinator-peer'))
    h.emit('local', end('self'))
    expect(h.written).toEqual(['local'])
    await new Promise(resolve => setTimeout(resolve, 5))
    expect(h.written).toEqual(['local', 'remote'])
  })

  it('records what waits when it stops, and from then on at once', () => {
    const h = harness()
    h.emit('a', end('coordinator-peer'))
    h.side.stop()
    expect(h.written).toEqual(['a'])
    h.emit('b', end('coordinator-peer'))
    expect(h.written).toEqual(['a', 'b'])
  })
})
