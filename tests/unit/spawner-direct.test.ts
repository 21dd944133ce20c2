import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ProcessHost, STDIN_HIGH_WATER_BYTES, type ProcessHostInit } from '../../src/executor/index.ts'
import { quietLogger } from './executor-fixtures.ts'
import { childrenOf, fds, gone, parentOf, spawnerPid, start, until, type Watched } from './spawner-fixtures.ts'

describe('spawner - direct stdio (a child\'s stdin and stdout connected straight to the daemon)', () => {
  let host: ProcessHost | undefined
  afterEach(() => { host?.stop(); host = undefined })

  function startHost (init: ProcessHostInit = {}): ProcessHost {
    host = new ProcessHost({ logger: quietLogger() }, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, init)
    host.start()
    return host
  }

  it('connects its stdin and stdout to one socket of the daemon\'s: they flow while the spawner is stopped', async () => {
    const h = startHost()
    const w = start(h, { argv: ['cat'], env: {}, stdio: 'direct' })
    const pid = await w.pid
    const spawner = parentOf(pid)
    expect(readFileSync(`/proc/${spawner}/cmdline`, 'utf8')).toMatch(/spawnerMain/)
    // a stopped spawner relays nothing: what cat echoes now cannot have passed through it
    process.kill(spawner, 'SIGSTOP')
    try {
      expect(w.child.write('hello\n')).toBe(true)
      await until('cat to echo with the spawner stopped', () => w.stdout() === 'hello\n')
    } finally {
      process.kill(spawner, 'SIGCONT')
    }
    const worker = fds(pid)
    expect(worker.get(0)).toMatch(/^socket:\[\d+\]$/)
    expect(worker.get(1)).toBe(worker.get(0))
    // the daemon's end: its socket, in a directory of its own that no one else may enter
    const path = h.stdioPath as string
    expect(statSync(path).isSocket()).toBe(true)
    expect(statSync(dirname(path)).mode & 0o777).toBe(0o700)
    expect(w.stderr()).toBe('')
  })

  it('gives it EOF when its stdin is ended, and its last stdout before its exit', async () => {
    const h = startHost()
    const w = start(h, { argv: ['sh', '-c', 'cat; echo "stdin closed"'], env: {}, stdio: 'direct', input: 'first\n' })
    await w.printed('first\n')
    w.child.write('second\n')
    w.child.end()
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
    expect(w.stdoutAtEnd()).toBe('first\nsecond\nstdin closed\n')
  })

  it('carries all of a large output', async () => {
    const h = startHost()
    const w = start(h, { argv: ['head', '-c', '4000000', '/dev/zero'], env: {}, stdio: 'direct' })
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
    expect(w.stdoutAtEnd().length).toBe(4_000_000)
  })

  it('reports its exit only once what it wrote before has been read, though the exit came first', async () => {
    const h = startHost()
    const w = start(h, { argv: ['head', '-c', '100000', '/dev/zero'], env: {}, stdio: 'direct' })
    w.child.pause()
    const pid = await w.pid
    await until('the child to be reaped', () => !existsSync(`/proc/${pid}`))
    // a later event of the spawner's: the first child's exit reached this process before it did
    const later = start(h, { argv: ['true'], env: {} })
    await later.ended
    expect(w.child.ended).toBe(false)
    w.child.resume()
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
    expect(w.stdoutAtEnd().length).toBe(100_000)
  })

  it('holds writes made before the child runs, and says when a child that does not read has taken too much', async () => {
    const h = startHost()
    const w = start(h, { argv: ['wc', '-c'], env: {}, stdio: 'direct' })
    const big = Buffer.alloc(STDIN_HIGH_WATER_BYTES * 4, 120)
    expect(w.child.write(big)).toBe(false)
    await until('the child to take the bytes (drain)', () => w.drains === 1)
    expect(w.child.write('x')).toBe(true)
    w.child.end()
    expect(await w.ended).toMatchObject({ how: 'exit', code: 0 })
    expect(Number(w.stdout().trim())).toBe(big.byteLength + 1)
  })

  it('fails a child that was signalled, as one with relayed stdio', async () => {
    const h = startHost()
    const w = start(h, { argv: ['sleep', '30'], env: {}, stdio: 'direct' })
    await w.pid
    w.child.kill('SIGKILL')
    expect(await w.ended).toEqual({ how: 'exit', code: null, signal: 'SIGKILL' })
  })

  it('drops a connection whose hello has the wrong token, and the child still gets its own', async () => {
    const h = startHost()
    // hold the spawner so that the child's connection waits, and speak for it first
    const spawner = await spawnerPid(h)
    process.kill(spawner, 'SIGSTOP')
    let w: Watched
    try {
      w = start(h, { argv: ['cat'], env: {}, stdio: 'direct' })
      const stranger = connect(h.stdioPath as string)
      let dropped = false
      stranger.on('error', () => {})
      stranger.on('data', () => {})
      stranger.once('close', () => { dropped = true })
      stranger.write(`${w.child.slot} ${'0'.repeat(32)}\n`)
      await until('the daemon to drop the stranger', () => dropped)
    } finally {
      process.kill(spawner, 'SIGCONT')
    }
    w.child.write('mine\n')
    await w.printed('mine\n')
    w.child.end()
    expect(await w.ended).toEqual({ how: 'exit', code: 0, signal: null })
  })

  it('fails a child whose stdio does not connect in time, and the spawner never forks it', async () => {
    const h = startHost({ stdioConnectTimeoutMs: 200 })
    const spawner = await spawnerPid(h)
    const dir = mkdtempSync(join(tmpdir(), 'grid-spawner-test-'))
    try {
      process.kill(spawner, 'SIGSTOP')
      try {
        const late = start(h, { argv: ['sh', '-c', `touch ${dir}/ran; sleep 30`], env: {}, stdio: 'direct' })
        expect(await late.ended).toEqual({ how: 'error', code: 'ETIMEDOUT' })
      } finally {
        process.kill(spawner, 'SIGCONT')
      }
      const next = start(h, { argv: ['sh', '-c', 'echo next'], env: {}, stdio: 'direct' })
      expect(await next.ended).toEqual({ how: 'exit', code: 0, signal: null })
      expect(next.stdoutAtEnd()).toBe('next\n')
      expect(childrenOf(spawner)).toEqual([])
      expect(existsSync(join(dir, 'ran'))).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('kills a child with direct stdio that ignores EOF and TERM when the host stops (as when the daemon dies), and removes the socket', async () => {
    const h = startHost()
    const w = start(h, { argv: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'], env: {}, stdio: 'direct' })
    await w.printed('ready\n')
    const pid = await w.pid
    const dir = dirname(h.stdioPath as string)
    w.child.end()
    h.stop()
    await until('the child to be gone', () => gone(pid))
    expect(existsSync(dir)).toBe(false)
    host = undefined
  })

  it('removes the socket directories of earlier runs that were killed, and leaves a live one\'s', async () => {
    const base = mkdtempSync(join(tmpdir(), 'grid-sweep-test-'))
    const saved = process.env.TMPDIR
    process.env.TMPDIR = base
    const live = createServer()
    try {
      // a run killed with its socket open: the file stays, and nobody listens on it
      const stale = join(base, 'grid-stdio-killed')
      mkdirSync(stale, { mode: 0o700 })
      const socket = join(stale, 'stdio.sock')
      spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`])
      expect(statSync(socket).isSocket()).toBe(true)
      const alive = join(base, 'grid-stdio-alive')
      mkdirSync(alive, { mode: 0o700 })
      let probed = false
      live.on('connection', c => { probed = true; c.destroy() })
      await new Promise<void>(resolve => { live.listen(join(alive, 'stdio.sock'), resolve) })
      const h = startHost()
      const w = start(h, { argv: ['true'], env: {}, stdio: 'direct' })
      expect(await w.ended).toMatchObject({ how: 'exit', code: 0 })
      expect(dirname(dirname(h.stdioPath as string))).toBe(base)
      await until('the killed run\'s directory to be gone', () => !existsSync(stale))
      await until('the live one to be asked', () => probed)
      expect(existsSync(alive)).toBe(true)
    } finally {
      live.close()
      if (saved === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = saved
      host?.stop()
      host = undefined
      rmSync(base, { recursive: true, force: true })
    }
  })

  it('tells a child with direct stdio it was lost when the spawner dies', async () => {
    const h = startHost()
    const w = start(h, { argv: ['sleep', '30'], env: {}, stdio: 'direct' })
    const pid = await w.pid
    process.kill(parentOf(pid), 'SIGTERM')
    expect(await w.ended).toEqual({ how: 'lost' })
    await until('the child to be gone', () => gone(pid))
  })
})
