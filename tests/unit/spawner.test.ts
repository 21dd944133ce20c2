import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { ProcessHost, STDIN_HIGH_WATER_BYTES } from '../../src/executor/index.ts'
import { quietLogger } from './executor-fixtures.ts'
import { gone, start, until } from './spawner-fixtures.ts'

describe('spawner - children of the helper process', () => {
  let host: ProcessHost | undefined
  afterEach(() => { host?.stop(); host = undefined })

  function startHost (): ProcessHost {
    host = new ProcessHost({ logger: quietLogger() }, { PATH: process.env.PATH ?? '/usr/bin:/bin', GRID_TEST_BASE: 'base' })
    host.start()
    return host
  }

  it('runs a task: its stdout, stderr and exit code come back, with the base environment and its own', async () => {
    const h = startHost()
    const w = start(h, { argv: ['sh', '-c', 'echo "out $GRID_TEST_BASE $OWN"; echo err >&2; exit 7'], env: { OWN: 'own' } })
    expect(await w.pid).toBeGreaterThan(0)
    expect(await w.ended).toEqual({ how: 'exit', code: 7, signal: null })
    expect(w.stdout()).toBe('out base own\n')
    expect(w.stderr()).toBe('err\n')
    expect(w.child.ended).toBe(true)
  })

  it('gives a task its input on stdin, then closes it', async () => {
    const h = startHost()
    const w = start(h, { argv: ['cat'], env: {}, input: '{"payload":1}\n' })
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
    expect(w.stdout()).toBe('{"payload":1}\n')
  })

  it('gives a task without input an empty stdin', async () => {
    const h = startHost()
    const w = start(h, { argv: ['cat'], env: {} })
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
    expect(w.stdout()).toBe('')
  })

  it('keeps an open stdin: cat echoes each write, and exits when stdin closes', async () => {
    const h = startHost()
    const w = start(h, { argv: ['cat'], env: {}, stdin: 'pipe', input: 'first\n' })
    await w.printed('first\n')
    expect(w.child.write('second\n')).toBe(true)
    await w.printed('first\nsecond\n')
    expect(w.child.write(Buffer.from('third\n'))).toBe(true)
    await w.printed('third\n')
    let exited = false
    void w.ended.then(() => { exited = true })
    expect(exited).toBe(false)
    w.child.end()
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
    expect(w.stdout()).toBe('first\nsecond\nthird\n')
  })

  it('carries any bytes through an open stdin', async () => {
    const h = startHost()
    const w = start(h, { argv: ['od', '-An', '-v', '-tu1'], env: {}, stdin: 'pipe' })
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    w.child.write(bytes)
    w.child.end()
    expect(await w.ended).toMatchObject({ how: 'exit', code: 0 })
    expect(w.stdout().trim().split(/\s+/).map(Number)).toEqual([...bytes])
  })

  it('says to wait when a write is more than the child has taken, and when to go on', async () => {
    const h = startHost()
    const w = start(h, { argv: ['wc', '-c'], env: {}, stdin: 'pipe' })
    const big = Buffer.alloc(STDIN_HIGH_WATER_BYTES * 4, 120)
    expect(w.child.write(big)).toBe(false)
    await until('the child to take the bytes (drain)', () => w.drains === 1)
    expect(w.child.write('x')).toBe(true)
    w.child.end()
    expect(await w.ended).toMatchObject({ how: 'exit', code: 0 })
    expect(Number(w.stdout().trim())).toBe(big.byteLength + 1)
  })

  it('lets a child that does not read its stdin hold up only itself', async () => {
    const h = startHost()
    const stuck = start(h, { argv: ['sleep', '30'], env: {}, stdin: 'pipe' })
    await stuck.pid
    expect(stuck.child.write(Buffer.alloc(STDIN_HIGH_WATER_BYTES * 8))).toBe(false)
    const other = start(h, { argv: ['sh', '-c', 'echo still here'], env: {} })
    expect(await other.ended).toMatchObject({ how: 'exit', code: 0 })
    expect(other.stdout()).toBe('still here\n')
    expect(stuck.drains).toBe(0)
    stuck.child.kill('SIGKILL')
    expect(await stuck.ended).toEqual({ how: 'exit', code: null, signal: 'SIGKILL' })
  })

  it('signals a child\'s whole process group', async () => {
    const h = startHost()
    const w = start(h, { argv: ['sh', '-c', 'sleep 30 & echo $!; wait'], env: {} })
    await w.printed('\n')
    const grandchild = Number(w.stdout().trim())
    w.child.kill('SIGTERM')
    expect(await w.ended).toEqual({ how: 'exit', code: null, signal: 'SIGTERM' })
    await until('the grandchild to be gone', () => gone(grandchild))
  })

  it('reports a command that cannot start', async () => {
    const h = startHost()
    const w = start(h, { argv: ['/nonexistent/grid-no-such-command'], env: {}, stdin: 'pipe' })
    expect(await w.ended).toEqual({ how: 'error', code: 'ENOENT' })
    expect(w.child.write('ignored')).toBe(false)
  })

  it('kills every child, open stdin or not, when its stdin closes (as when the daemon dies)', async () => {
    const h = startHost()
    const worker = start(h, { argv: ['sleep', '30'], env: {}, stdin: 'pipe' })
    const task = start(h, { argv: ['sleep', '30'], env: {} })
    const pids = [await worker.pid, await task.pid]
    expect(pids.some(gone)).toBe(false)
    h.stop()
    await until('both children to be gone', () => pids.every(gone))
    // the host was stopped: nothing is started again
    expect(h.running).toBe(false)
    host = undefined
  })

  it('tells each child it was lost when the spawner dies, and starts a new spawner', async () => {
    const h = startHost()
    const exits: Array<number | null> = []
    h.on('spawner:exit', code => { exits.push(code) })
    const w = start(h, { argv: ['sleep', '30'], env: {}, stdin: 'pipe' })
    const pid = await w.pid
    const spawner = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1])
    process.kill(spawner, 'SIGTERM')
    expect(await w.ended).toEqual({ how: 'lost' })
    expect(exits).toHaveLength(1)
    await until('the spawner to be back', () => h.running)
    const again = start(h, { argv: ['true'], env: {} })
    expect(await again.ended).toEqual({ how: 'exit', code: 0, signal: null })
  })
})
