/**
 * Builds the node list the API shows: each node's static facts from the replicated registry joined with the live
 * membership view (state, load, last heartbeat). A node known only from the registry (not heard since this daemon
 * started) is `left` if it left gracefully, `suspect` during the first heartbeats, and `dead` after that. Names,
 * draining and the resolution of a name to a node follow tasks' view, so the API and placement agree.
 */
import type { HealthDetail, HealthEntry, HealthFields, NodeEntry } from '../../proto/index.ts'
import { peerHealth } from '../health/index.ts'
import type { MemberState, MemberView, NodeId } from '../interface/index.ts'
import { isDraining, nodeName, requireNode } from '../tasks/index.ts'
import type { ControlDeps } from './deps.ts'

export function nodeEntries (deps: ControlDeps): NodeEntry[] {
  const now = Date.now()
  const live = new Map(deps.membership.view().map(v => [v.id, v]))
  const registered = deps.nodeRegistry.list()
  const ids = new Set<NodeId>([...live.keys(), ...registered.keys()])
  const self = deps.mesh.peerId
  const out: NodeEntry[] = []
  for (const id of ids) out.push(toEntry(deps, id, live.get(id), id === self, now))
  // this node first, then by name
  return out.sort((a, b) => (a.self === b.self ? a.name.localeCompare(b.name) : a.self ? -1 : 1))
}

/** One node by peer id, name or id prefix, by the rule task placement uses too (tasks' requireNode). */
export function findNode (deps: ControlDeps, idOrName: string): NodeEntry {
  const members = deps.membership.view()
  const id = requireNode(members, deps.nodeRegistry, idOrName)
  return toEntry(deps, id, members.find(m => m.id === id), id === deps.mesh.peerId, Date.now())
}

export function healthEntries (deps: ControlDeps): HealthEntry[] {
  const now = Date.now()
  const self = deps.mesh.peerId
  return deps.membership.view().map(v => ({
    id: v.id,
    name: nodeName(v.id, v, deps.nodeRegistry.get(v.id)?.value),
    state: v.state,
    self: v.id === self,
    heartbeatAgeMs: v.lastSeen > 0 ? now - v.lastSeen : null,
    rttMs: v.rttMs === undefined ? null : Math.round(v.rttMs * 1000) / 1000,
    incarnation: v.incarnation,
    connected: v.id === self || deps.mesh.isConnected(v.id),
    history: v.history.map(h => ({ state: h.state, at: new Date(h.at).toISOString(), reason: h.reason })),
    ...healthFields(deps, v.id, v, v.id === self)
  }))
}

/** One node's health (GET /v1/health/:id): its entry, its last 100 probes, its state and health changes. */
export function healthDetail (deps: ControlDeps, idOrName: string): HealthDetail {
  const members = deps.membership.view()
  const id = requireNode(members, deps.nodeRegistry, idOrName)
  const self = id === deps.mesh.peerId
  const entry = healthEntries(deps).find(h => h.id === id)
  const iso = (at: number): string => new Date(at).toISOString()
  const m = members.find(v => v.id === id)
  const changes = self ? deps.health.history() : (m?.healthHistory ?? [])
  return {
    id,
    name: entry?.name ?? nodeName(id, m, deps.nodeRegistry.get(id)?.value),
    state: entry?.state ?? 'dead',
    self,
    heartbeatAgeMs: entry?.heartbeatAgeMs ?? null,
    rttMs: entry?.rttMs ?? null,
    connected: entry?.connected ?? false,
    ...healthFields(deps, id, m, self),
    probes: deps.membership.probes(id).map(p => ({ at: iso(p.at), rttMs: p.rttMs, ok: p.ok })),
    history: entry?.history ?? [],
    healthHistory: changes.map(h => ({ health: h.health, at: iso(h.at), reason: h.reason }))
  }
}

/** health, healthReason, healthSince, breaker, paused: this node's own verdict for itself, the gossiped one for others. */
function healthFields (deps: ControlDeps, id: NodeId, m: MemberView | undefined, self: boolean): HealthFields {
  const h = self ? deps.health.report() : peerHealth(m, deps.startedAt)
  return { health: h.health, healthReason: h.reason, healthSince: new Date(h.since).toISOString(), breaker: h.breaker, paused: m?.paused === true }
}

function toEntry (deps: ControlDeps, id: NodeId, m: MemberView | undefined, self: boolean, now: number): NodeEntry {
  const r = deps.nodeRegistry.get(id)?.value
  const c = deps.config
  let state: MemberState
  if (m !== undefined) state = m.state
  else if (r?.leftAt !== undefined) state = 'left'
  else state = now - deps.startedAt < c.membership.heartbeatIntervalMs * c.membership.suspectAfterMissed * 2 ? 'suspect' : 'dead'
  return {
    id,
    name: nodeName(id, m, r),
    state,
    self,
    addrs: self ? deps.mesh.addrs() : (r?.addrs ?? []),
    region: self ? c.region : (r?.region ?? ''),
    labels: self ? { ...c.labels } : (r?.labels ?? {}),
    capabilities: self ? [...c.capabilities] : (r?.capabilities ?? []),
    gpus: self ? deps.resources.gpus() : (r?.gpus ?? []),
    drain: isDraining(m, r),
    version: m?.version ?? r?.version ?? null,
    incarnation: m?.incarnation ?? 0,
    load: m?.load ?? null,
    lastSeen: m !== undefined && m.lastSeen > 0 ? new Date(m.lastSeen).toISOString() : null,
    heartbeatAgeMs: m !== undefined && m.lastSeen > 0 ? now - m.lastSeen : null,
    ...healthFields(deps, id, m, self),
    // a router (--slots 0, no GPUs) never runs a task
    role: m?.load !== undefined && m.load.slots === 0 && m.load.gpus === 0 ? 'router' : 'worker'
  }
}
