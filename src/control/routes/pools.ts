import type { NodeEntry, PoolDetail, PoolEntry } from '../../../proto/index.ts'
import { NotFoundError } from '../../interface/index.ts'
import { DEFAULT_POOL, POOL_LABEL } from '../../routing/index.ts'
import { nodeEntries } from '../cluster-view.ts'
import type { ControlDeps } from '../deps.ts'
import type { Route } from '../server.ts'

/** Every pool with what its nodes hold (alive nodes' load: a dead node's last report is not capacity). */
export function pools (nodes: NodeEntry[]): Map<string, { entry: PoolEntry, nodes: NodeEntry[] }> {
  const out = new Map<string, { entry: PoolEntry, nodes: NodeEntry[] }>()
  for (const n of nodes) {
    const name = n.labels[POOL_LABEL] ?? DEFAULT_POOL
    let p = out.get(name)
    if (p === undefined) {
      p = { entry: { name, nodes: 0, alive: 0, slots: 0, freeSlots: 0, gpus: 0, freeGpus: 0, running: 0, queued: 0, healthy: 0, degraded: 0, unavailable: 0 }, nodes: [] }
      out.set(name, p)
    }
    const e = p.entry
    p.nodes.push(n)
    e.nodes++
    e[n.health]++
    if (n.state !== 'alive' || n.load === null) continue
    e.alive++
    e.slots += n.load.slots
    e.freeSlots += n.load.freeSlots
    e.gpus += n.load.gpus
    e.freeGpus += n.load.freeGpus
    e.running += n.load.running
    e.queued += n.load.queued
  }
  return out
}

/** GET /v1/pools: every pool, by name; GET /v1/pools/:name: one with its nodes. */
export function poolRoutes (deps: ControlDeps): Route[] {
  return [
    { method: 'GET', path: '/pools', handler: () => ({ json: [...pools(nodeEntries(deps)).values()].map(p => p.entry).sort((a, b) => a.name.localeCompare(b.name)) }) },
    {
      method: 'GET',
      path: '/pools/:name',
      handler: req => {
        const all = pools(nodeEntries(deps))
        const name = req.params.name as string
        const p = all.get(name)
        if (p === undefined) throw new NotFoundError(`no pool ${name} (pools: ${[...all.keys()].sort().join(', ') || 'none'})`)
        const body: PoolDetail = { ...p.entry, members: p.nodes.map(n => ({ id: n.id, name: n.name, state: n.state, health: n.health, role: n.role })) }
        return { json: body }
      }
    }
  ]
}
