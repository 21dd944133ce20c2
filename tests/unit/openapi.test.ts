import { readFileSync } from 'node:fs'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { Static } from 'typebox'
import { describe, expect, it } from 'vitest'
import type {
  JobRecord, JobResult, JobStreamEvent, TaskRecord, TaskStreamEvent, WorkflowJobRecord, WorkflowRecord, WorkflowStreamEvent
} from '../../proto/index.ts'
import { API_ROUTES } from '../../proto/api-routes.ts'
import type * as S from '../../proto/api-schemas.ts'
import { routes, type ControlDeps, type StatsSampler } from '../../src/control/index.ts'
import { openApiDocument, openApiPath, openApiText } from '../../src/control/openapi.ts'
import type { WireError } from '../../src/interface/index.ts'

const COMMITTED = new URL('../../docs/openapi.json', import.meta.url)

/** true when A and B are each assignable to the other: the schema's type and the interface have the same fields. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
function same<A, B> (ok: Same<A, B>): boolean { return ok }

describe('control - the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const v = new Validator()
    const res = await v.validate(openApiDocument())
    expect(res.errors).toBeUndefined()
    expect(res.valid).toBe(true)
    expect(v.version).toBe('3.1')
  })

  it('has component schemas that compile as JSON Schema 2020-12 (what OpenAPI 3.1 schemas are)', () => {
    const doc = openApiDocument() as { components: { schemas: Record<string, object> } }
    const ajv = new Ajv2020({ strict: false })
    ajv.addSchema({ $id: 'openapi', components: doc.components } as object)
    for (const name of Object.keys(doc.components.schemas)) {
      expect(() => ajv.getSchema(`openapi#/components/schemas/${name}`), name).not.toThrow()
    }
  })

  it('is the committed docs/openapi.json (run npm run openapi after changing a route or a schema)', () => {
    expect(readFileSync(COMMITTED, 'utf8')).toBe(openApiText())
  })

  it('lists every route the server has, and no other', () => {
    // the server's own routes, from its code: the handlers are not called, so they need no deps
    const served = routes({} as ControlDeps, {} as StatsSampler).map(r => `${r.method} ${openApiPath(r.path)}`).sort()
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> }
    const documented = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map(m => `${m.toUpperCase()} ${p}`)).sort()
    expect(documented).toEqual(served)
    expect(new Set(served).size).toBe(served.length)
    expect(new Set(API_ROUTES.map(r => r.operationId)).size).toBe(API_ROUTES.length)
  })

  it('says NDJSON for the streaming answers', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, unknown> }> }>> }
    const streams = Object.entries(doc.paths).flatMap(([p, item]) => Object.entries(item)
      .filter(([, op]) => op.responses['200']?.content['application/x-ndjson'] !== undefined).map(([m]) => `${m.toUpperCase()} ${p}`))
    expect(streams.sort()).toEqual(['GET /v1/tasks/{id}/logs', 'POST /v1/jobs', 'POST /v1/tasks', 'POST /v1/workflows'])
  })

  it('describes the same shapes as the TypeScript types gridctl reads (checked by the compiler)', () => {
    // each line fails `npm run typecheck` when a field is added to, removed from or changed in only one of the two
    expect([
      same<Static<typeof S.TaskRecordSchema>, TaskRecord>(true),
      same<Static<typeof S.TaskStreamEventSchema>, TaskStreamEvent>(true),
      same<Static<typeof S.JobResultSchema>, JobResult>(true),
      same<Static<typeof S.JobRecordSchema>, JobRecord>(true),
      same<Static<typeof S.JobStreamEventSchema>, JobStreamEvent>(true),
      same<Static<typeof S.WorkflowJobRecordSchema>, WorkflowJobRecord>(true),
      same<Static<typeof S.WorkflowRecordSchema>, WorkflowRecord>(true),
      same<Static<typeof S.WorkflowStreamEventSchema>, WorkflowStreamEvent>(true),
      same<Static<typeof S.ApiErrorSchema>['error'], WireError & { code: keyof typeof import('../../src/interface/index.ts').ERRORS }>(true)
    ].every(Boolean)).toBe(true)
  })
})
