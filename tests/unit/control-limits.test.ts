import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../src/cli/client.ts'
import { ControlServer } from '../../src/control/index.ts'
import { tempDir, waitFor } from '../helpers/cluster.ts'

const HEADERS_TIMEOUT_MS = 300
const REQUEST_TIMEOUT_MS = 600
const MAX_CONNECTIONS = 16

/** Opens a connection and sends the start of a request that never ends; resolves once connected. */
async function halfSent (socket: string, text: string): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    const s = connect(socket)
    s.on('error', () => {})
    s.once('connect', () => { s.write(text); resolve(s) })
    s.once('error', reject)
  })
}

/** Resolves with what came back on a connection until the server closed it. */
async function closedByServer (s: Socket): Promise<string> {
  return await new Promise(resolve => {
    let text = ''
    s.on('data', d => { text += String(d) })
    if (s.destroyed) { resolve(text); return }
    s.once('close', () => { resolve(text) })
  })
}

describe('control server - bounded against clients that hold connections', () => {
  const dir = tempDir('grid-control-limits-')
  const socket = join(dir, 'gridd.sock')
  const registry = new Registry()
  const server = new ControlServer({ logger: pino({ level: 'silent' }), registry }, {
    socket, maxConnections: MAX_CONNECTIONS, headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS
  })
  const held: Socket[] = []

  beforeAll(async () => {
    server.add({ method: 'GET', path: '/status', handler: () => ({ json: { ok: true } }) })
    server.add({ method: 'POST', path: '/echo', handler: async req => ({ json: await req.body() }) })
    // a stream that outlives the request deadline several times over
    server.add({
      method: 'GET',
      path: '/slow-stream',
      handler: () => ({
        stream: (async function * () {
          const until = Date.now() + 4 * REQUEST_TIMEOUT_MS
          for (let i = 0; Date.now() < until; i++) {
            yield { i }
            await new Promise(resolve => setTimeout(resolve, 50))
          }
          yield { done: true }
        })()
      })
    })
    await server.start()
  })
  afterAll(async () => {
    for (const s of held) s.destroy()
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('closes a request whose headers never finish', async () => {
    const s = await halfSent(socket, 'GET /v1/status HTTP/1.1\r\nHost: grid\r\n')
    expect(await closedByServer(s)).toMatch(/^HTTP\/1\.1 408|^$/)
  })

  it('closes a request whose body never finishes', async () => {
    const s = await halfSent(socket, 'POST /v1/echo HTTP/1.1\r\nHost: grid\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":')
    expect(await closedByServer(s)).toMatch(/^HTTP\/1\.1 408|^$/)
  })

  it('keeps streaming an NDJSON answer long after the request deadline', async () => {
    const lines = await new Promise<string[]>((resolve, reject) => {
      request({ socketPath: socket, path: '/v1/slow-stream' }, res => {
        let text = ''
        res.on('data', d => { text += String(d) })
        res.on('end', () => { resolve(text.trim().split('\n')) })
        res.on('error', reject)
      }).on('error', reject).end()
    })
    expect(lines.at(-1)).toBe('{"done":true}')
  })

  it('answers gridctl while a slowloris holds many times the connection cap in half-sent requests', async () => {
    for (let i = 0; i < MAX_CONNECTIONS * 4; i++) held.push(await halfSent(socket, 'GET /v1/status HTTP/1.1\r\nHost: gr'))
    expect(server.connections).toBeLessThanOrEqual(MAX_CONNECTIONS)
    // the oldest half-sent requests made room for the newer ones: only the cap's worth are still open
    await waitFor('the server to close the connections over its cap', () => held.filter(s => !s.destroyed).length <= MAX_CONNECTIONS)
    // more keep coming while gridctl asks
    for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await halfSent(socket, 'GET /v1/status HTTP/1.1\r\n'))
    expect(await new ApiClient({ socket }).get('/status')).toEqual({ ok: true })
    const shed = (await registry.getSingleMetric('grid_control_connections_shed_total')?.get())?.values.find(v => v.labels.reason === 'evicted')?.value
    expect(shed).toBeGreaterThanOrEqual(MAX_CONNECTIONS * 3)
  })
})
