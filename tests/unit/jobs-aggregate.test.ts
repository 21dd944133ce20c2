import { describe, expect, it } from 'vitest'
import { decidedEarly, verdict } from '../../src/jobs/index.ts'
import type { RunOutcome } from '../../src/jobs/aggregate.ts'

const ok = (index: number, stdout = ''): RunOutcome => ({ index, status: 'completed', exitCode: 0, stdout })
const bad = (index: number, exitCode = 1, error?: string): RunOutcome => ({ index, status: 'failed', exitCode, stdout: '', ...(error === undefined ? {} : { error }) })

describe('jobs - aggregation', () => {
  it('all-success succeeds only when every run succeeded, and says how many did not and the first error', () => {
    expect(verdict('all-success', [ok(0), ok(1)], 2)).toEqual({ status: 'completed', answer: null })
    expect(verdict('all-success', [ok(0), bad(1, 3), bad(2, 1, 'node n2 died')], 3)).toEqual({ status: 'failed', answer: null, error: '2 of 3 runs did not succeed; the first: item 1: exit code 3' })
    // a run that never ended counts against it
    expect(verdict('all-success', [ok(0)], 2).status).toBe('failed')
  })

  it('first-success succeeds with the first run that succeeded, and is decided as soon as one did', () => {
    expect(decidedEarly('first-success', 0)).toBe(false)
    expect(decidedEarly('first-success', 1)).toBe(true)
    expect(decidedEarly('all-success', 1)).toBe(false)
    expect(verdict('first-success', [bad(0), ok(1, 'one\n'), ok(2, 'two\n')], 3, 2)).toEqual({ status: 'completed', answer: 'two' })
    expect(verdict('first-success', [bad(0), bad(1, 2)], 2)).toMatchObject({ status: 'failed', error: 'none of the 2 runs succeeded; the first: item 0: exit code 1' })
  })

  it('majority answers the trimmed stdout most runs printed, and succeeds when more than half of all runs printed it', () => {
    expect(verdict('majority', [ok(0, 'A\n'), ok(1, ' A'), ok(2, 'B\n')], 3)).toEqual({ status: 'completed', answer: 'A' })
    // two of four is not more than half
    expect(verdict('majority', [ok(0, 'A'), ok(1, 'A'), ok(2, 'B'), ok(3, 'C')], 4)).toMatchObject({ status: 'failed', answer: 'A' })
    // failed runs count in the whole but never as an answer
    expect(verdict('majority', [ok(0, 'A'), bad(1), bad(2)], 3)).toMatchObject({ status: 'failed', answer: 'A' })
    expect(verdict('majority', [ok(0, 'A'), ok(1, 'A'), bad(2)], 3)).toEqual({ status: 'completed', answer: 'A' })
    // a tie goes to the answer printed first (by index)
    expect(verdict('majority', [ok(0, 'B'), ok(1, 'A'), ok(2, 'A'), ok(3, 'B')], 4).answer).toBe('B')
  })
})

describe('jobs - a result keeps the first 64 KiB of stdout', () => {
  it('cuts a stream and a text at JOB_RESULT_STDOUT_MAX_BYTES', async () => {
    const { Capture, capped } = await import('../../src/jobs/capture.ts')
    const c = new Capture()
    c.add(Buffer.from('a'.repeat(40_000)))
    c.add(Buffer.from('b'.repeat(40_000)))
    c.add(Buffer.from('c'))
    const t = c.text()
    expect(t.length).toBe(64 * 1024)
    expect(t.endsWith('b')).toBe(true)
    expect(capped('short')).toBe('short')
    expect(Buffer.byteLength(capped('x'.repeat(100_000)))).toBe(64 * 1024)
  })
})
