/**
 * The control API's OpenAPI 3.1 document, generated from the route table (proto/api-routes.ts) and its TypeBox
 * schemas (proto/api-bodies.ts, api-schemas.ts, sync.ts): they are JSON Schema already, so they go in as they are;
 * a schema with a name there becomes a component and is referenced. Errors are `ApiError` under each status its codes
 * map to (src/interface/errors.ts); NDJSON streams are `application/x-ndjson` whose schema is one line's
 * (an event, or the ApiError that ends a stream that failed after it began).
 *
 * `npm run openapi` writes it to docs/openapi.json (deploy/openapi.mjs); the daemon builds it on the first
 * GET /v1/openapi.json (this module is imported then, not at start), and a unit test keeps the two equal.
 */
import type { TSchema } from 'typebox'
import { API_PREFIX } from '../../proto/api.ts'
import { API_ROUTES, COMMON_ERRORS, type ApiAnswer, type ApiRoute } from '../../proto/api-routes.ts'
import * as ApiBodies from '../../proto/api-bodies.ts'
import * as ApiSchemas from '../../proto/api-schemas.ts'
import { SyncManifestBodySchema, SyncMissingBodySchema, SyncReadBodySchema, SyncUploadBodySchema } from '../../proto/sync.ts'
import { ERRORS, type ErrorCode } from '../interface/index.ts'

/** The version of the document's contract (the paths are versioned by their /v1 prefix). */
export const OPENAPI_INFO_VERSION = '1.0.0'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type JsonObject = { [k: string]: Json }

/** Every named schema: `XSchema` exported from proto/api-bodies.ts, api-schemas.ts (and the sync bodies) is component `X`. */
function namedSchemas (): Map<object, string> {
  const named = new Map<object, string>()
  const all: Record<string, unknown> = { ...ApiBodies, ...ApiSchemas, SyncManifestBodySchema, SyncMissingBodySchema, SyncReadBodySchema, SyncUploadBodySchema }
  for (const [k, v] of Object.entries(all)) {
    if (k.endsWith('Schema') && v !== null && typeof v === 'object') named.set(v, k.slice(0, -'Schema'.length))
  }
  return named
}

/** A schema as plain JSON, named sub-schemas as `$ref`s (`self` is the component being written, kept inline). */
function toJson (schema: unknown, named: Map<object, string>, self?: object): Json {
  if (schema === null || typeof schema !== 'object') return schema as Json
  if (schema !== self) {
    const name = named.get(schema)
    if (name !== undefined) return { $ref: `#/components/schemas/${name}` }
  }
  if (Array.isArray(schema)) return schema.map(s => toJson(s, named))
  const out: JsonObject = {}
  for (const [k, v] of Object.entries(schema)) if (v !== undefined) out[k] = toJson(v, named)
  return out
}

/** `/nodes/:id` → `/v1/nodes/{id}` */
export function openApiPath (path: string): string {
  return API_PREFIX + path.replace(/:([A-Za-z]+)/g, '{$1}')
}

function answer (a: ApiAnswer, named: Map<object, string>): JsonObject {
  if ('schema' in a) return { description: a.description, content: { 'application/json': { schema: toJson(a.schema, named) } } }
  if ('stream' in a) {
    return {
      description: `${a.description} (NDJSON: one JSON value a line; a failure after the stream began is its last line, an ApiError)`,
      content: { 'application/x-ndjson': { schema: { anyOf: [toJson(a.stream, named), { $ref: '#/components/schemas/ApiError' }] } } }
    }
  }
  return { description: a.description, content: { [a.text]: { schema: { type: 'string' } } } }
}

function operation (r: ApiRoute, named: Map<object, string>): JsonObject {
  const params: Json[] = []
  for (const m of r.path.matchAll(/:([A-Za-z]+)/g)) params.push({ name: m[1] as string, in: 'path', required: true, schema: { type: 'string', minLength: 1 } })
  for (const [name, q] of Object.entries(r.query ?? {})) params.push({ name, in: 'query', required: false, description: q.description, schema: toJson(q.schema, named) })
  const responses: JsonObject = {}
  for (const [status, a] of Object.entries(r.answers)) responses[status] = answer(a, named)
  const byStatus = new Map<number, ErrorCode[]>()
  for (const code of [...r.errors, ...COMMON_ERRORS]) {
    const status = ERRORS[code].status
    const codes = byStatus.get(status) ?? []
    if (!codes.includes(code)) codes.push(code)
    byStatus.set(status, codes)
  }
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    responses[String(status)] = { description: `error: ${codes.join(', ')}`, content: { 'application/json': { schema: { $ref: '#/components/schemas/ApiError' } } } }
  }
  const op: JsonObject = { operationId: r.operationId, summary: r.summary, tags: r.tags }
  if (params.length > 0) op.parameters = params
  if (r.body !== undefined) {
    const content: JsonObject = { 'application/json': { schema: toJson(r.body.schema, named) } }
    if (r.body.binary !== undefined) content[r.body.binary.contentType] = { schema: { type: 'string', format: 'binary', description: r.body.binary.description } }
    op.requestBody = { required: r.body.required, content }
  }
  op.responses = responses
  return op
}

let cached: JsonObject | undefined

/** The document (built once per process). */
export function openApiDocument (): JsonObject {
  if (cached !== undefined) return cached
  const named = namedSchemas()
  const paths: JsonObject = {}
  for (const r of API_ROUTES) {
    const p = openApiPath(r.path)
    const item = (paths[p] ??= {}) as JsonObject
    item[r.method.toLowerCase()] = operation(r, named)
  }
  const schemas: JsonObject = {}
  for (const [schema, name] of [...named].sort((a, b) => a[1].localeCompare(b[1]))) schemas[name] = toJson(schema as TSchema, named, schema)
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'Grid control API',
      version: OPENAPI_INFO_VERSION,
      description: 'The local API of gridd: HTTP/1.1 and JSON on its Unix socket (curl --unix-socket .grid/gridd.sock http://grid/v1/status). ' +
        'Errors are {"error": {"code", "message"}} with the HTTP status of the code; streams are NDJSON. Generated from proto/api-routes.ts by `npm run openapi`.'
    },
    servers: [{ url: 'http://grid', description: 'the local daemon, reached through its Unix socket (gridd --socket)' }],
    paths,
    components: { schemas }
  }
  return cached
}

/** The document as docs/openapi.json holds it. */
export function openApiText (): string {
  return JSON.stringify(openApiDocument(), null, 2) + '\n'
}
