import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ApiClient } from '../../src/cli/client.ts'

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

  it('names the socket when nothing listens there', async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-client-'))
    const c = new ApiClient({ socket: join(dir, 'none.sock'), timeoutMs: 5_000 })
    await expect(c.get('/status')).rejects.toMatchObject({ code: 'DAEMON_UNREACHABLE', message: expect.stringMatching(/none\.sock: no socket there/) })
  })
})
