import { describe, expect, it } from 'vitest'
import { JOB_RESULT_STDOUT_MAX_BYTES } from '../../proto/index.ts'
import { followTask, runEnd } from '../../src/jobs/capture.ts'
import type { ClientEvent } from '../../src/tasks/index.ts'

const exit = (status: 'completed' | 'failed'): ClientEvent => ({ type: 'exit', id: 't', status, exitCode: status === 'completed' ? 0 : 3, code: status === 'completed' ? 0 : 3, signal: null, error: null, node: null, nodeName: null, attempts: 1 })
const out = (text: string, stream: 'stdout' | 'stderr' = 'stdout'): ClientEvent => ({ type: 'output', stream, data: Buffer.from(text) } as unknown as ClientEvent)

async function * events (list: ClientEvent[], fail?: Error): AsyncIterable<ClientEvent> {
  for (const e of list) yield e
  if (fail !== undefined) throw fail
}

describe('followTask: how jobs and workflows read a run', () => {
  it('keeps stdout (not stderr) and returns the exit', async () => {
    const f = await followTask(events([out('a'), out('noise', 'stderr'), out('b\n'), exit('failed'), out('after')]))
    expect(f.exit?.status).toBe('failed')
    expect(f.stdout).toBe('ab\n')
  })

  it('keeps only the first JOB_RESULT_STDOUT_MAX_BYTES of stdout', async () => {
    const big = 'x'.repeat(JOB_RESULT_STDOUT_MAX_BYTES)
    const f = await followTask(events([out(big), out('tail'), exit('completed')]))
    expect(f.stdout.length).toBe(JOB_RESULT_STDOUT_MAX_BYTES)
    expect(f.stdout.endsWith('tail')).toBe(false)
  })

  it('says why when the stream ends or breaks before an exit, with what stdout it had', async () => {
    const ended = await followTask(events([out('partial')]))
    expect(ended.exit).toBeUndefined()
    expect(ended.stdout).toBe('partial')
    expect(ended.exit === undefined && ended.error).toMatch(/ended without an exit/)
    const broke = await followTask(events([out('p')], new Error('the origin went away')))
    expect(broke.exit === undefined && broke.error).toMatch(/the origin went away/)
  })

  it('turns what was followed into the run as jobs and workflows record it', async () => {
    expect(runEnd(await followTask(events([out('42\n'), exit('completed')])))).toEqual({ status: 'completed', exitCode: 0, attempts: 1, stdout: '42\n' })
    expect(runEnd(await followTask(events([exit('failed')])))).toMatchObject({ status: 'failed', exitCode: 3, error: 'failed' })
    expect(runEnd(await followTask(events([out('p')])))).toMatchObject({ status: 'failed', stdout: 'p', error: expect.stringMatching(/without an exit/) })
  })
})
