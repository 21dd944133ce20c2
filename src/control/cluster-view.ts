/** Builds the node list the API shows: the live membership view joined with each node's static facts. */
import type { HealthEntry, NodeEntry } from '../../proto/index.ts'
import { NotFoundError, type MemberView } from '../interface/index.ts'
import type { ControlDeps } from './deps.ts'

export function nodeEntries (deps: ControlDeps): NodeEntry[] {
  const now = Date.now()
  const self = deps.mesh.peerId
  return deps.membership.view().map(v => toEntry(deps, v, v.id === self, now))
}

export function findNode (deps: ControlDeps, idOrName: string): NodeEntry {
  const all = nodeEntries(deps)
  const byId = all.find(n => n.id === idOrName)
  if (byId !== undefined) return byId
  const byName = all.filter(n => n.name === idOrName)
  if (byName.length === 1) return byName[0] as NodeEntry
  if (byName.length > 1) {
    const live = byName.filter(n => n.state === 'alive' || n.state === 'suspect')
    if (live.length === 1) return live[0] as NodeEntry
    throw new NotFoundError(`${byName.length} nodes are named ${idOrName}; use a peer id: ${byName.map(n => n.id).join(', ')}`)
  }
  const prefix = all.filter(n => n.id.startsWith(idOrName) && idOrName.length >= 6)
  if (prefix.length === 1) return prefix[0] as NodeEntry
  throw new NotFoundError(`no node with id or name ${idOrName}`)
}

export function healthEntries (deps: ControlDeps): HealthEntry[] {
  const now = Date.now()
  const self = deps.mesh.peerId
  return deps.membership.view().map(v => ({
    id: v.id,
    name: v.name,
    state: v.state,
    self: v.id === self,
    heartbeatAgeMs: v.lastSeen > 0 ? now - v.lastSeen : null,
    rttMs: v.rttMs === undefined ? null : Math.round(v.rttMs * 1000) / 1000,
    incarnation: v.incarnation,
    connected: v.id === self || deps.mesh.isConnected(v.id),
    history: v.history.map(h => ({ state: h.state, at: new Date(h.at).toISOString(), reason: h.reason }))
  }))
}

function toEntry (deps: ControlDeps, v: MemberView, self: boolean, now: number): NodeEntry {
  const c = deps.config
  return {
    id: v.id,
    name: v.name,
    state: v.state,
    self,
    addrs: self ? deps.mesh.addrs() : [],
    region: self ? c.region : '',
    labels: self ? { ...c.labels } : {},
    capabilities: self ? [...c.capabilities] : [],
    gpus: self ? deps.resources.gpus() : [],
    drain: v.selfState === 'draining',
    version: v.version ?? null,
    incarnation: v.incarnation,
    load: v.load ?? null,
    lastSeen: v.lastSeen > 0 ? new Date(v.lastSeen).toISOString() : null,
    heartbeatAgeMs: v.lastSeen > 0 ? now - v.lastSeen : null
  }
}
