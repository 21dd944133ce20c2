import { describe, expect, it } from 'vitest'
import type { ControlDeps } from '../../src/control/deps.ts'
import { sessionRoutes } from '../../src/control/routes/sessions.ts'
import { taskRoutes } from '../../src/control/routes/tasks.ts'
import type { ApiRequest, Route } from '../../src/control/server.ts'

// Found by the chaos harness (issue 13): the whole cluster killed right after it accepted two tasks lost them (no
// node had them in its log). An accepted task and an acknowledged session write are flushed to the log first.
function req (body: unknown, params: Record<string, string> = {}): ApiRequest {
  return { method: 'POST', path: '/', params, query: new URLSearchParams(), body: async () => body, bytes: async () => Buffer.from(JSON.stringify(body)), contentType: 'application/json', signal: new AbortController().signal }
}

function deps (order: string[]): ControlDeps {
  return {
    tasks: { submit: () => { order.push('recorded'); return { id: 't1', opts: { encoding: 'utf8' } } } },
    sessions: { put: (id: string) => { order.push('recorded'); return { id, value: 1, owner: null, writer: 'self', createdAt: '', updatedAt: '', ttlMs: null, expiresAt: null } } },
    nodeRegistry: { get: () => undefined },
    state: { flush: async () => { await new Promise(resolve => setTimeout(resolve, 20)); order.push('flushed') } }
  } as unknown as ControlDeps
}

const route = (rs: Route[], method: string, path: string): Route => rs.find(r => r.method === method && r.path === path) as Route

describe('control - acknowledgements are durable', () => {
  it('answers an accepted detached task only once its record is flushed to the log', async () => {
    const order: string[] = []
    const res = await route(taskRoutes(deps(order)), 'POST', '/tasks').handler(req({ command: ['true'], detach: true }))
    order.push('answered')
    expect(res).toMatchObject({ json: { id: 't1' } })
    expect(order).toEqual(['recorded', 'flushed', 'answered'])
  })

  it('answers a session write only once it is flushed to the log', async () => {
    const order: string[] = []
    await route(sessionRoutes(deps(order)), 'PUT', '/sessions/:id').handler(req({ value: 1 }, { id: 's1' }))
    order.push('answered')
    expect(order).toEqual(['recorded', 'flushed', 'answered'])
  })
})
