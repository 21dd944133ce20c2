import { mkdtempSync, rmSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ApiClient, staleConnection } from '../../src/cli/client.ts'
import { DaemonUnreachableError } from '../../src/interface/index.ts'
import { waitFor } from '../helpers/cluster.ts'

/**
 * A daemon stand-in on a real Unix socket that answers the first request of each connection and keeps it alive, then
 * drops the connection when a second request arrives on it: what happens when a kept-alive connection is reused just
 * as the daemon closes it for being idle.
 */
function flakyKeepAlive (socket: string, opts: { dropEveryReuse: boolean }): Promise<{ server: Server, connections: () => number }> {
  let connections = 0
  const server = createServer((s: Socket) => {
    connections++
    let served = 0
    let buf = ''
    s.on('data', d => {
      buf += d.toString()
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4)
        if (served++ > 0 && opts.dropEveryReuse) { s.destroy(); return }
        s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\n{"ok":true}')
      }
    })
    s.on('error', () => {})
  })
  return new Promise(resolve => { server.listen(socket, () => { resolve({ server, connections: () => connections }) }) })
}

describe('control API client', () => {
  it('sends a request again when its reused connection was closed under it: reset, or a broken pipe on a Unix socket', () => {
    const errno = (code: string): Error => Object.assign(new Error(`write ${code}`), { code })
    const reused = { reusedSocket: true } as never
    expect(staleConnection(reused, errno('ECONNRESET'))).toBe(true)
    // seen from gridctl's own client in a cluster test (a daemon busy with a gossip flood closed an idle connection)
    expect(staleConnection(reused, errno('EPIPE'))).toBe(true)
    expect(staleConnection({ reusedSocket: false } as never, errno('EPIPE'))).toBe(false)
    expect(staleConnection(reused, errno('ENOENT'))).toBe(false)
  })

  let dir = ''
  let server: Server | undefined
  afterEach(() => {
    server?.close()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('sends a request again, once, when the kept-alive connection it reused was closed by the daemon', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const socket = join(dir, 'd.sock')
    const f = await flakyKeepAlive(socket, { dropEveryReuse: true })
    server = f.server
    const c = new ApiClient({ socket, timeoutMs: 5_000 })
    for (let i = 0; i < 3; i++) expect(await c.get<{ ok: boolean }>('/status')).toEqual({ ok: true })
    // each request after the first met a dropped connection and went again on a new one
    expect(f.connections()).toBe(3)
  })

  it('sends it again on a new connection, not on another kept-alive one the daemon closed at the same moment', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const socket = join(dir, 'd.sock')
    const f = await flakyKeepAlive(socket, { dropEveryReuse: true })
    server = f.server
    const c = new ApiClient({ socket, timeoutMs: 5_000 })
    // three requests at once leave three idle connections in the pool (as --sync's parallel uploads do); the daemon
    // closes idle connections together, so a retry on the next pooled one would meet a dropped connection again
    expect(await Promise.all([0, 1, 2].map(async () => await c.get<{ ok: boolean }>('/status')))).toEqual([{ ok: true }, { ok: true }, { ok: true }])
    expect(await c.post<{ ok: boolean }>('/tasks/t1/stdin', { end: true })).toEqual({ ok: true })
    expect(f.connections()).toBe(4)
  })

  it('yields each object of an NDJSON stream however the chunks cut its lines and characters, and ends on an error line', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const socket = join(dir, 'd.sock')
    const text = Buffer.from('{"n":1,"s":"é"}\n\n{"n":2,"s":"日本"}\r\n{"error":{"code":"NOT_FOUND","message":"no task x"}}\n{"n":3}\n')
    const http = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      // one byte at a time: every line and every multi-byte character is cut
      let i = 0
      const next = (): void => { if (i < text.length) { res.write(text.subarray(i, ++i)); setImmediate(next) } else res.end() }
      next()
    })
    server = await new Promise<Server>(resolve => { http.listen(socket, () => { resolve(http) }) })
    const got: unknown[] = []
    const read = (async () => { for await (const ev of new ApiClient({ socket }).stream('GET', '/tasks/x/logs')) got.push(ev) })()
    await expect(read).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'no task x' })
    expect(got).toEqual([{ n: 1, s: 'é' }, { n: 2, s: '日本' }])
  })

  it('ends the request when its reader stops early', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const socket = join(dir, 'd.sock')
    let closed = false
    const http = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      const t = setInterval(() => { res.write('{"tick":true}\n') }, 5)
      res.on('close', () => { clearInterval(t); closed = true })
    })
    server = await new Promise<Server>(resolve => { http.listen(socket, () => { resolve(http) }) })
    for await (const ev of new ApiClient({ socket }).stream('GET', '/tasks/x/logs?follow=1')) {
      expect(ev).toEqual({ tick: true })
      break
    }
    await waitFor('the daemon to see the request end', () => closed, { timeoutMs: 5_000 })
  })

  it('says a stream line that is not JSON is one, naming the endpoint', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const socket = join(dir, 'd.sock')
    const http = createHttpServer((_req, res) => { res.writeHead(200).end('{"n":1}\n{"n":') })
    server = await new Promise<Server>(resolve => { http.listen(socket, () => { resolve(http) }) })
    const got: unknown[] = []
    const read = (async () => { for await (const ev of new ApiClient({ socket }).stream('GET', '/tasks')) got.push(ev) })()
    await expect(read).rejects.toMatchObject({ code: 'INTERNAL', message: 'the daemon\'s GET /tasks stream sent a line that is not JSON: {"n":' })
    expect(got).toEqual([{ n: 1 }])
  })

  it('says no daemon runs, naming the socket and how to start one, when there is no socket', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const c = new ApiClient({ socket: join(dir, 'none.sock'), timeoutMs: 5_000 })
    const err = await c.get('/status').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DaemonUnreachableError)
    expect(err).toMatchObject({ code: 'DAEMON_NOT_RUNNING', message: `no gridd answers at ${join(dir, 'none.sock')}`, hint: expect.stringMatching(/npm start.*systemctl start gridd.*--socket/) })
  })

  it('says the same of a socket left behind that nobody listens on', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const socket = join(dir, 'stale.sock')
    // a server that closes removes its socket file; a process killed leaves it behind, as a crashed gridd does
    const { spawnSync } = await import('node:child_process')
    spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`])
    const err = await new ApiClient({ socket, timeoutMs: 5_000 }).get('/status').catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'DAEMON_NOT_RUNNING', message: expect.stringMatching(/stale\.sock \(the socket is there, but nobody listens on it/), hint: expect.stringMatching(/npm start/) })
  })
})
