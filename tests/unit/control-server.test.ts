import { request } from 'node:http'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../../src/cli/client.ts'
import { ControlServer, type ControlDeps } from '../../src/control/index.ts'
import { taskRoutes } from '../../src/control/routes/tasks.ts'
import { tempDir } from '../helpers/cluster.ts'

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: unknown }

/** One raw request on the socket: the client would turn the answer into an error and hide the headers. */
async function send (socket: string, method: string, path: string): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    request({ socketPath: socket, method, path }, res => {
      let text = ''
      res.on('data', d => { text += String(d) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }) })
    }).on('error', reject).end()
  })
}

const RECORDS = [{ id: 't1' }, { id: 't2' }, { id: 't3' }]

describe('control server - routing, methods and query parameters', () => {
  const dir = tempDir('grid-control-')
  const socket = join(dir, 'gridd.sock')
  const logged: Array<Record<string, unknown>> = []
  const logs = new Writable({ write (chunk, _enc, done) { logged.push(JSON.parse(String(chunk)) as Record<string, unknown>); done() } })
  const server = new ControlServer({ logger: pino({ level: 'debug' }, logs), registry: new Registry() }, { socket })
  let filters: unknown[] = []

  beforeAll(async () => {
    const tasks = { list: (filter: unknown) => { filters.push(filter); return RECORDS } }
    for (const r of taskRoutes({ tasks } as unknown as ControlDeps)) server.add(r)
    server.add({ method: 'GET', path: '/things/:id', handler: req => ({ json: { id: req.params.id } }) })
    server.add({ method: 'DELETE', path: '/things/:id', handler: req => ({ json: { id: req.params.id, deleted: true } }) })
    await server.start()
  })
  afterAll(async () => {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('answers a method the path does not take with 405, the methods it takes in Allow, and a JSON error', async () => {
    const a = await send(socket, 'PUT', '/v1/things/x')
    expect(a.status).toBe(405)
    expect(a.headers.allow).toBe('DELETE, GET')
    expect(a.headers['content-type']).toBe('application/json')
    expect(a.body).toEqual({ error: { code: 'METHOD_NOT_ALLOWED', message: 'PUT is not allowed on /v1/things/x; it takes DELETE, GET' } })
    expect((await send(socket, 'DELETE', '/v1/tasks')).headers.allow).toBe('GET, POST')
    // the client turns it into the typed error, with the usage exit code
    await expect(new ApiClient({ socket }).put('/things/x', {})).rejects.toMatchObject({ code: 'METHOD_NOT_ALLOWED', status: 405, exitCode: 2 })
  })

  it('answers a path no route has with 404', async () => {
    const a = await send(socket, 'GET', '/v1/nothing/here')
    expect(a.status).toBe(404)
    expect(a.headers.allow).toBeUndefined()
    expect(a.body).toMatchObject({ error: { code: 'NO_SUCH_ENDPOINT', message: 'no such endpoint: GET /v1/nothing/here (the API lives under /v1)' } })
  })

  it('takes a limit that is a whole number in range', async () => {
    expect((await send(socket, 'GET', '/v1/tasks?limit=2')).body).toEqual([{ id: 't1' }, { id: 't2' }])
    expect((await send(socket, 'GET', '/v1/tasks?limit=1000000')).body).toEqual(RECORDS)
    expect((await send(socket, 'GET', '/v1/tasks')).body).toEqual(RECORDS)
  })

  it('answers 400 naming the parameter to a limit that is not a whole number in range, instead of ignoring it', async () => {
    for (const limit of ['abc', '-1', '0', '1.5', '1e3', '0x10', '1000001', '99999999999999999999', '', ' 2']) {
      const a = await send(socket, 'GET', `/v1/tasks?limit=${encodeURIComponent(limit)}`)
      expect(a.status, `limit=${limit}`).toBe(400)
      expect(a.body, `limit=${limit}`).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^query parameter limit /) } })
    }
    expect((await send(socket, 'GET', '/v1/tasks?limit=2&limit=3')).body).toMatchObject({ error: { message: 'query parameter limit is given 2 times; give it once' } })
  })

  it('checks every query parameter the task routes read', async () => {
    filters = []
    expect((await send(socket, 'GET', '/v1/tasks?status=done')).body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^query parameter status must be one of pending, /) } })
    expect((await send(socket, 'GET', '/v1/tasks?node=')).body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: 'query parameter node is empty; give a value or leave it out' } })
    expect((await send(socket, 'GET', '/v1/tasks/t1/logs?follow=maybe')).body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^query parameter follow must be one of 1, true, 0, false/) } })
    expect((await send(socket, 'GET', '/v1/tasks/t1/logs?encoding=hex')).body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: 'query parameter encoding must be one of utf8, base64, not "hex"' } })
    // none of them reached the service
    expect(filters).toEqual([])
    await send(socket, 'GET', '/v1/tasks?status=running&node=n2')
    expect(filters).toEqual([{ status: 'running', node: 'n2' }])
  })

  it('answers 400, not 500, to a path parameter that is not valid percent-encoding, and logs no failure', async () => {
    logged.length = 0
    const a = await send(socket, 'GET', '/v1/things/%E0%A4%A')
    expect(a.status).toBe(400)
    expect(a.body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: 'path parameter id "%E0%A4%A" is not valid percent-encoding (encode it with encodeURIComponent)' } })
    expect((await send(socket, 'GET', '/v1/things/a%20b')).body).toEqual({ id: 'a b' })
    expect(logged.filter(l => l.msg === 'control request failed')).toEqual([])
  })

  it('answers 400 to a request target that is not a URL path', async () => {
    logged.length = 0
    const a = await send(socket, 'GET', 'http://[')
    expect(a.status).toBe(400)
    expect(a.body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: 'the request target "http://[" is not a valid URL path' } })
    expect(logged.filter(l => l.level === 50)).toEqual([])
  })
})
