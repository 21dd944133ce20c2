import { createHash } from 'node:crypto'
import { COLLECTIONS } from '../../../proto/index.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** JSON with object keys sorted, so two replicas holding the same values hash the same whatever their insertion order. */
function canonical (v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  const o = v as Record<string, unknown>
  return `{${Object.keys(o).sort().map(k => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`
}

/**
 * GET /v1/state/hash: a sha256 over every writer's live entry of every collection this node holds (collection, key,
 * writer, stamp, value), so a fault harness can tell whether nodes' replicated states are identical without pulling
 * them. Two nodes with the same hash hold the same state; `entries` and `writers` say how much was hashed.
 */
export function stateHashRoute (deps: ControlDeps): Route {
  return {
    method: 'GET',
    path: '/state/hash',
    handler: () => {
      const h = createHash('sha256')
      const now = Date.now()
      let entries = 0
      for (const c of COLLECTIONS) {
        const groups = deps.state.groupAll(c, now)
        for (const key of [...groups.keys()].sort()) {
          const all = [...(groups.get(key) ?? [])].sort((a, b) => a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0)
          for (const e of all) {
            h.update(canonical([c, key, e.writer, e.stamp, e.value]))
            h.update('\n')
            entries++
          }
        }
      }
      return { json: { hash: h.digest('hex'), entries, writers: deps.state.writers().length } }
    }
  }
}
