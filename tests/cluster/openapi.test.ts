import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, type Gridd } from '../helpers/cluster.ts'

interface Operation { requestBody?: { required: boolean }, responses: Record<string, { content?: Record<string, { schema: unknown }> }> }
interface Doc { paths: Record<string, Record<string, Operation>> }

const DOC = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as Doc

interface Answer { status: number, type: string, text: string }

/** One raw request on the socket (the client would turn an error answer into an exception). */
async function send (socket: string, method: string, path: string, body?: unknown): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(30_000) }, res => {
      let text = ''
      res.on('data', d => { text += String(d) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text }) })
    })
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

/** A JSON pointer into the document, as a $ref. */
const pointer = (...parts: string[]): string => 'openapi#/' + parts.map(p => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/')

describe('control API - every route in the OpenAPI document answers as the document says', () => {
  let c: Cluster
  let n1: Gridd
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  ajv.addSchema({ $id: 'openapi', ...DOC })

  beforeAll(async () => {
    c = await Cluster.start(1)
    n1 = c.node('n1')
  })
  afterAll(async () => { await c.destroy() })

  it('serves the committed docs/openapi.json at GET /v1/openapi.json', async () => {
    const a = await send(n1.socket, 'GET', '/v1/openapi.json')
    expect(a.status).toBe(200)
    expect(a.type).toBe('application/json')
    expect(JSON.parse(a.text)).toEqual(DOC)
  })

  const operations = Object.entries(DOC.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method: method.toUpperCase(), op })))

  /** Sends it, then checks the answer is routed, has a status the operation lists, and a body its schema takes. */
  async function answersAsDocumented (method: string, path: string, url: string, body: unknown): Promise<Answer> {
    const op = DOC.paths[path]?.[method.toLowerCase()]
    expect(op, `${method} ${path} is in the document`).toBeDefined()
    const a = await send(n1.socket, method, url, body)
    const what = `${method} ${url} answered ${a.status} ${a.text.slice(0, 300)}`
    if (a.status === 404) expect(JSON.parse(a.text).error.code, what).not.toBe('NO_SUCH_ENDPOINT')
    const documented = op?.responses[String(a.status)]
    expect(documented, `${what}; documented: ${Object.keys(op?.responses ?? {}).join(', ')}`).toBeDefined()
    const mediaType = a.type.split(';')[0] as string
    expect(documented?.content?.[mediaType], `${what} as ${a.type}; documented: ${Object.keys(documented?.content ?? {}).join(', ')}`).toBeDefined()
    const validate = ajv.compile({ $ref: pointer('paths', path, method.toLowerCase(), 'responses', String(a.status), 'content', mediaType, 'schema') })
    const values = mediaType === 'application/x-ndjson' ? a.text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as unknown) : mediaType === 'application/json' ? [JSON.parse(a.text) as unknown] : []
    for (const value of values) expect(validate(value), `${what}: ${JSON.stringify(validate.errors)}`).toBe(true)
    return a
  }

  it.each(operations.map(o => [`${o.method} ${o.path}`, o] as const))('%s is routed and answers with a status and body it documents', async (_, { path, method, op }) => {
    // path parameters get a made-up id; a body is the least one could send ({}), valid or not
    const url = path.replace(/\{[A-Za-z]+\}/g, 'made-up-id-7f3a')
    await answersAsDocumented(method, path, url, op.requestBody === undefined ? undefined : {})
  })

  it('answers real requests with bodies its schemas take: a task, a job, a workflow and a session, their streams and records', async () => {
    const task = await answersAsDocumented('POST', '/v1/tasks', '/v1/tasks', { command: ['echo', 'hi'] })
    expect(task.status).toBe(200)
    const id = (JSON.parse(task.text.split('\n')[0] as string) as { id: string }).id
    await answersAsDocumented('GET', '/v1/tasks/{id}', `/v1/tasks/${id}`, undefined)
    await answersAsDocumented('GET', '/v1/tasks/{id}/logs', `/v1/tasks/${id}/logs`, undefined)
    expect((await answersAsDocumented('POST', '/v1/tasks', '/v1/tasks', { command: ['true'], detach: true })).status).toBe(201)
    const job = await answersAsDocumented('POST', '/v1/jobs', '/v1/jobs', { command: ['echo'], items: ['a', 'b'] })
    expect(job.text).toContain('"type":"done"')
    const jobId = (JSON.parse(job.text.split('\n')[0] as string) as { id: string }).id
    await answersAsDocumented('GET', '/v1/jobs/{id}', `/v1/jobs/${jobId}`, undefined)
    const wf = await answersAsDocumented('POST', '/v1/workflows', '/v1/workflows', { name: 'w', jobs: { a: { command: ['echo', 'a'] }, b: { command: ['true'], needs: ['a'] } } })
    expect(wf.text).toContain('"type":"done"')
    const wfId = (JSON.parse(wf.text.split('\n')[0] as string) as { id: string }).id
    await answersAsDocumented('GET', '/v1/workflows/{id}', `/v1/workflows/${wfId}`, undefined)
    await answersAsDocumented('GET', '/v1/workflows/{id}/jobs/{job}/stdout', `/v1/workflows/${wfId}/jobs/a/stdout`, undefined)
    expect((await answersAsDocumented('PUT', '/v1/sessions/{id}', '/v1/sessions/s1', { value: { a: 1 }, ttl: '5m' })).status).toBe(200)
    for (const path of ['/v1/tasks', '/v1/jobs', '/v1/workflows', '/v1/sessions', '/v1/nodes', '/v1/health', '/v1/pools', '/v1/queue', '/v1/stats']) {
      const a = await answersAsDocumented('GET', path, path, undefined)
      expect(a.status, path).toBe(200)
    }
    await answersAsDocumented('GET', '/v1/nodes/{id}', '/v1/nodes/n1', undefined)
    await answersAsDocumented('GET', '/v1/health/{id}', '/v1/health/n1', undefined)
    await answersAsDocumented('GET', '/v1/pools/{name}', '/v1/pools/default', undefined)
    // and what acts on them (each answer, success or typed refusal, as documented)
    await answersAsDocumented('POST', '/v1/tasks/{id}/cancel', `/v1/tasks/${id}/cancel`, undefined)
    await answersAsDocumented('POST', '/v1/jobs/{id}/retry', `/v1/jobs/${jobId}/retry`, undefined)
    await answersAsDocumented('POST', '/v1/jobs/{id}/cancel', `/v1/jobs/${jobId}/cancel`, undefined)
    await answersAsDocumented('POST', '/v1/workflows/{id}/retry', `/v1/workflows/${wfId}/retry`, undefined)
    await answersAsDocumented('POST', '/v1/workflows/{id}/pause', `/v1/workflows/${wfId}/pause`, undefined)
    expect((await answersAsDocumented('POST', '/v1/nodes/{id}/drain', '/v1/nodes/n1/drain', undefined)).status).toBe(200)
    expect((await answersAsDocumented('POST', '/v1/nodes/{id}/undrain', '/v1/nodes/n1/undrain', undefined)).status).toBe(200)
    expect((await answersAsDocumented('POST', '/v1/queue/pause', '/v1/queue/pause', { all: true })).status).toBe(200)
    expect((await answersAsDocumented('POST', '/v1/queue/resume', '/v1/queue/resume', { node: 'n1' })).status).toBe(200)
    expect((await answersAsDocumented('POST', '/v1/rebalance', '/v1/rebalance', { dryRun: true })).status).toBe(200)
    await answersAsDocumented('POST', '/v1/sessions/{id}/close', '/v1/sessions/s1/close', undefined)
    expect((await answersAsDocumented('DELETE', '/v1/sessions/{id}', '/v1/sessions/s1', undefined)).status).toBe(200)
    await answersAsDocumented('POST', '/v1/call', '/v1/call', { type: 'nosuchtype', payload: 1 })
    expect((await answersAsDocumented('POST', '/v1/sync/missing', '/v1/sync/missing', { hashes: ['0'.repeat(64)] })).status).toBe(200)
  })
})
