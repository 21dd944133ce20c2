import { CallRequestSchema } from '../../../proto/api-bodies.ts'
import { validator } from '../../../proto/index.ts'
import { InvalidArgumentError, parseDuration } from '../../interface/index.ts'
import { WORKER_DEFAULT_TIMEOUT_MS } from '../../tasks/index.ts'
import { findNode } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

const CallRequest = validator(CallRequestSchema)

/**
 * POST /v1/call: requests to warm workers, answered in one JSON reply. `payload` gives one request (the reply has
 * `result` or `error`); `payloads` gives up to 1024 (the reply has `results`, each `{ok, result}` or `{ok, code, error}`).
 */
export function callRoute (deps: ControlDeps): Route {
  return {
    method: 'POST',
    path: '/call',
    handler: async req => {
      const b = CallRequest.parseUser(await req.body(), 'call')
      if ((b.payload === undefined) === (b.payloads === undefined)) throw new InvalidArgumentError('invalid call: give exactly one of payload or payloads')
      let timeoutMs = WORKER_DEFAULT_TIMEOUT_MS
      if (b.timeout !== undefined) {
        const t = typeof b.timeout === 'number' ? b.timeout : parseDuration(b.timeout)
        if (t === undefined || t <= 0) throw new InvalidArgumentError(`invalid call: timeout ${JSON.stringify(b.timeout)} is not a positive duration`)
        timeoutMs = t
      }
      const res = await deps.workers.call({
        type: b.type,
        payloads: b.payloads ?? [b.payload],
        timeoutMs,
        priority: b.priority ?? 50,
        retries: b.retries ?? 0,
        ...(b.session === undefined ? {} : { session: b.session }),
        ...(b.node === undefined ? {} : { node: findNode(deps, b.node).id })
      })
      if (b.payloads !== undefined) return { json: res }
      const o = res.results[0]
      return { json: o?.ok === true ? { node: res.node, nodeName: res.nodeName, result: o.result } : { node: res.node, nodeName: res.nodeName, error: { code: o?.code ?? 'INTERNAL', message: o?.error ?? 'no answer' } } }
    }
  }
}

/** POST /v1/sessions/:id/close: ends the session's warm worker (the session itself stays). */
export function closeSessionRoute (deps: ControlDeps): Route {
  return {
    method: 'POST',
    path: '/sessions/:id/close',
    handler: async req => ({ json: { id: req.params.id, ...(await deps.workers.close(req.params.id as string)) } })
  }
}
