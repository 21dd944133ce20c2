import { describe, expect, it } from 'vitest'
import { prepareJob } from '../../src/executor/job.ts'
import { StdinFeed, type StdinSink } from '../../src/executor/stdin-feed.ts'
import type { TaskSpec } from '../../proto/index.ts'

/** A child's stdin that takes `room` bytes before it answers false, until `drain`. */
function sink (room = Infinity): StdinSink & { got: Buffer[], ended: boolean, free: () => void } {
  let used = 0
  const s = {
    got: [] as Buffer[],
    ended: false,
    write: (d: Uint8Array) => { s.got.push(Buffer.from(d)); used += d.byteLength; return used <= room },
    end: () => { s.ended = true },
    free: () => { used = 0 }
  }
  return s
}

describe('executor - a task\'s open stdin', () => {
  it('holds what comes before the process starts, within its bound, and hands it over in order', async () => {
    const feed = new StdinFeed(10)
    expect(await feed.write(Buffer.from('abc'))).toBe(true)
    expect(await feed.write(Buffer.from('def'))).toBe(true)
    feed.end()
    const s = sink()
    feed.attach(s)
    expect(Buffer.concat(s.got).toString()).toBe('abcdef')
    expect(s.ended).toBe(true)
  })

  it('makes a writer past the bound wait until the process has taken the bytes', async () => {
    const feed = new StdinFeed(4)
    let answered = false
    const w = feed.write(Buffer.from('0123456789')).then(v => { answered = true; return v })
    await Promise.resolve()
    expect(answered).toBe(false)
    expect(feed.bufferedBytes).toBe(10)
    const s = sink(4)
    feed.attach(s)
    await Promise.resolve()
    expect(answered).toBe(false)
    s.free()
    feed.drained()
    expect(await w).toBe(true)
  })

  it('holds a writer back while the process does not read, and lets it go on drain', async () => {
    const feed = new StdinFeed(0)
    const s = sink(3)
    feed.attach(s)
    expect(await feed.write(Buffer.from('ab'))).toBe(true)
    let answered = false
    const w = feed.write(Buffer.from('cd')).then(v => { answered = true; return v })
    await Promise.resolve()
    expect(answered).toBe(false)
    feed.drained()
    expect(await w).toBe(true)
  })

  it('answers every waiting and later writer "not open" once the process is over', async () => {
    const feed = new StdinFeed(2)
    const w = feed.write(Buffer.from('too much'))
    feed.close()
    expect(await w).toBe(false)
    expect(await feed.write(Buffer.from('x'))).toBe(false)
    expect(feed.open).toBe(false)
  })
})

describe('executor - a job\'s directory, environment and stdin', () => {
  const spec = (s: Partial<TaskSpec>): TaskSpec => ({ cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, priority: 50, retries: 3, retryOnFailure: false, env: {}, strategy: 'least-loaded', ...s })
  const ctx = { nodeId: 'n1', nodeName: 'a', maxLogBytes: 1024, maxStdinBufferBytes: 1024, taskTypes: { say: { command: ['echo'], env: { MODE: 'type' }, cwd: '/srv/say' } } }
  const task = (s: Partial<TaskSpec>, attempt = 1) => ({ id: 't1', attempt, spec: spec(s), origin: 'n0', coordinator: 'n0' })

  it('lets a task type\'s env and cwd win over the caller\'s, and never takes the caller\'s PATH for it', () => {
    const job = prepareJob(task({ type: 'say', env: { MODE: 'caller', PATH: '/tmp/evil', LD_PRELOAD: '/tmp/x.so', OTHER: '1' }, cwd: '/tmp' }), ctx)
    expect(job.cwd).toBe('/srv/say')
    expect(job.env.MODE).toBe('type')
    expect(job.env.PATH).toBeUndefined()
    expect(job.env.LD_PRELOAD).toBeUndefined()
    expect(job.env.OTHER).toBe('1')
  })

  it('keeps a plain command\'s env and cwd as given, and leaves the default directory to the start', () => {
    expect(prepareJob(task({ command: ['x'], env: { PATH: '/opt/bin' }, cwd: '/w' }), ctx)).toMatchObject({ cwd: '/w', env: { PATH: '/opt/bin' } })
    expect(prepareJob(task({ command: ['x'], cwdDefault: '/home/u' }), ctx).cwd).toBeUndefined()
  })

  it('opens stdin for the first attempt only: it is not replayed', () => {
    expect(prepareJob(task({ command: ['cat'], stdin: true }), ctx).stdin).toBeDefined()
    expect(prepareJob(task({ command: ['cat'], stdin: true }, 2), ctx).stdin).toBeUndefined()
    expect(prepareJob(task({ command: ['cat'] }), ctx).stdin).toBeUndefined()
  })
})
