import { describe, expect, it } from 'vitest'
import { pack } from 'msgpackr'
import { JOB_CHUNK_ITEMS, JOB_CHUNK_MAX_BYTES, JOB_RESULT_STDOUT_MAX_BYTES, STATE_ENTRY_MAX_BYTES, jobEntry, type ItemRun } from '../../proto/index.ts'
import { fromColumns, toColumns } from '../../src/jobs/run-columns.ts'

const nodeA = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
const nodeB = '12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'

describe('a progress chunk by column', () => {
  it('reads back every run as written: statuses, run numbers, rounds, nodes, exit codes, attempts, stdout, errors', () => {
    const runs: Array<ItemRun | null> = [
      null,
      { status: 'running', run: 1, node: nodeA, nodeName: 'n1' },
      { status: 'completed', run: 2, round: 1, node: nodeB, nodeName: 'n2', exitCode: 0, attempts: 1, stdout: 'out\n' },
      { status: 'failed', run: 1, node: nodeA, nodeName: 'n1', exitCode: 3, attempts: 2, error: 'exit code 3' },
      { status: 'cancelled', run: 1, exitCode: null, attempts: 0, error: 'cancelled' }
    ]
    const cols = toColumns(runs)
    expect(jobEntry.check({ cols })).toBe(true)
    expect(cols.n).toEqual([nodeA, nodeB])
    expect(fromColumns(cols)).toEqual(runs)
  })

  it('leaves out the columns nobody uses, and names each node once per chunk', () => {
    const runs: ItemRun[] = Array.from({ length: JOB_CHUNK_ITEMS }, () => ({ status: 'completed', run: 1, node: nodeA, nodeName: 'n1', exitCode: 0, attempts: 1 }))
    const cols = toColumns(runs)
    expect(cols.o).toBeUndefined()
    expect(cols.e).toBeUndefined()
    expect(cols.d).toBeUndefined()
    expect(cols.n).toEqual([nodeA])
    // a few bytes an item, where the object form spent over a hundred
    expect(JSON.stringify(cols).length).toBeLessThan(JSON.stringify(runs).length / 8)
    expect(fromColumns(cols)).toEqual(runs)
  })

  it('reads an item it cannot make sense of as not started', () => {
    expect(fromColumns({ s: 'c?r', r: [1, 1, 0], n: [], nn: [], ni: [-1, 5, -1], x: [0, null, null], a: [1, 0, 0] })).toEqual([
      { status: 'completed', run: 1, exitCode: 0, attempts: 1 }, null, null
    ])
  })

  it('fits a chunk whose every run printed the most stdout a job keeps into one state entry, keeping small outputs whole', () => {
    const runs: ItemRun[] = Array.from({ length: JOB_CHUNK_ITEMS }, (_, i) => ({
      status: 'failed', run: 1, node: nodeA, nodeName: 'n1', exitCode: 1, attempts: 1,
      stdout: i === 0 ? 'short answer' : 'é'.repeat(JOB_RESULT_STDOUT_MAX_BYTES / 2),
      error: 'x'.repeat(4096)
    }))
    const cols = toColumns(runs)
    const texts = [...(cols.o ?? []), ...(cols.e ?? [])]
    expect(texts.reduce((n, t) => n + Buffer.byteLength(t), 0)).toBeLessThanOrEqual(JOB_CHUNK_MAX_BYTES + 2 * texts.length)
    expect(pack({ cols }).byteLength).toBeLessThan(STATE_ENTRY_MAX_BYTES)
    expect(jobEntry.check({ cols })).toBe(true)
    const back = fromColumns(cols)
    expect(back[0]?.stdout).toBe('short answer')
    expect(back[0]?.error).toBe('x'.repeat(4096))
    // the large ones keep their beginnings
    expect(back[5]?.stdout?.length).toBeGreaterThan(1000)
    expect('é'.repeat(JOB_RESULT_STDOUT_MAX_BYTES / 2).startsWith(back[5]?.stdout?.replace(/\uFFFD$/, '') ?? 'nothing')).toBe(true)
  })
})
