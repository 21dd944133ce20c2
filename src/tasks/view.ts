/**
 * The cluster as tasks and the control API see it: every known node (those heard since this daemon started and those
 * known only from the replicated registry), its name, whether it drains, placement candidates, and the one rule that
 * turns a name or id given by a user into a node.
 */
import type { RegistryValue } from '../../proto/index.ts'
import { NotFoundError, type MemberState, type MemberView, type NodeId } from '../interface/index.ts'
import type { Candidate } from '../routing/index.ts'
import type { NodeRegistry } from '../state/index.ts'

/** What the view reads of the registry. */
export type RegistryReader = Pick<NodeRegistry, 'get' | 'list'>

/** A node's name: the one it registered, else the one its heartbeats carry, else its id. */
export function nodeName (id: NodeId, member: MemberView | undefined, registered: RegistryValue | undefined): string {
  return registered?.name ?? member?.name ?? id
}

/** Draining: its registry entry says so (replicated), or its heartbeats do (they arrive first). */
export function isDraining (member: MemberView | undefined, registered: RegistryValue | undefined): boolean {
  return registered?.drain === true || member?.selfState === 'draining'
}

export function candidates (members: MemberView[], registry: RegistryReader): Candidate[] {
  const out: Candidate[] = []
  for (const m of members) {
    const r = registry.get(m.id)?.value
    const load = m.load
    out.push({
      id: m.id,
      name: nodeName(m.id, m, r),
      alive: m.state === 'alive' && m.selfState !== 'leaving',
      state: m.state,
      draining: isDraining(m, r),
      region: r?.region ?? '',
      labels: r?.labels ?? {},
      capabilities: r?.capabilities ?? [],
      types: r?.taskTypes ?? [],
      slots: load?.slots ?? 0,
      gpus: load?.gpus ?? r?.gpus.length ?? 0,
      // what the executor offers to tasks (--task-memory), not the machine's RAM (older nodes report only that)
      memoryMiB: load?.taskMemoryMiB ?? load?.memTotalMiB ?? 0,
      freeSlots: load?.freeSlots ?? 0,
      freeGpus: load?.freeGpus ?? 0,
      memFreeMiB: load?.taskMemoryFreeMiB ?? load?.memFreeMiB ?? 0,
      running: load?.running ?? 0,
      queued: load?.queued ?? 0,
      // its own gossiped verdict (issue 12); a node that sends none is healthy
      ...(m.health === undefined ? {} : { health: m.health.health, healthReason: m.health.reason }),
      ...(m.paused === true ? { paused: true } : {})
    })
  }
  return out
}

/** A peer id prefix shorter than this never matches: too many ids would share it. */
export const NODE_ID_PREFIX_MIN = 6

export type NodeMatch =
  | { ok: true, id: NodeId }
  | { ok: false, reason: 'unknown' }
  | { ok: false, reason: 'ambiguous', by: 'name' | 'prefix', ids: NodeId[] }

/**
 * Finds a node by peer id, name or id prefix among every known node, in that order. Of several nodes with one name
 * (a machine reinstalled under a new identity, say), the one alive wins, else the one alive or suspect; a node known
 * only from the registry is never preferred. A prefix must be at least NODE_ID_PREFIX_MIN characters and match one id.
 */
export function matchNode (members: MemberView[], registry: RegistryReader, nameOrId: string): NodeMatch {
  const live = new Map(members.map(m => [m.id, m]))
  const registered = registry.list()
  const ids = new Set<NodeId>([...live.keys(), ...registered.keys()])
  if (ids.has(nameOrId)) return { ok: true, id: nameOrId }
  const state = (id: NodeId): MemberState | undefined => live.get(id)?.state
  const named = [...ids].filter(id => nodeName(id, live.get(id), registered.get(id)?.value) === nameOrId)
  if (named.length > 0) {
    const one = unique(named) ?? unique(named.filter(id => state(id) === 'alive')) ?? unique(named.filter(id => state(id) === 'alive' || state(id) === 'suspect'))
    return one === undefined ? { ok: false, reason: 'ambiguous', by: 'name', ids: named } : { ok: true, id: one }
  }
  const prefixed = nameOrId.length >= NODE_ID_PREFIX_MIN ? [...ids].filter(id => id.startsWith(nameOrId)) : []
  if (prefixed.length === 0) return { ok: false, reason: 'unknown' }
  const one = unique(prefixed)
  return one === undefined ? { ok: false, reason: 'ambiguous', by: 'prefix', ids: prefixed } : { ok: true, id: one }
}

/** The node a name or id means (see matchNode), or undefined when none or several do. */
export function resolveNode (members: MemberView[], registry: RegistryReader, nameOrId: string): NodeId | undefined {
  const m = matchNode(members, registry, nameOrId)
  return m.ok ? m.id : undefined
}

/** The node a name or id means (see matchNode); a NotFoundError that says why when none or several do. */
export function requireNode (members: MemberView[], registry: RegistryReader, nameOrId: string): NodeId {
  const m = matchNode(members, registry, nameOrId)
  if (m.ok) return m.id
  if (m.reason === 'unknown') throw new NotFoundError(`no node with id or name ${nameOrId}`)
  const which = m.by === 'name' ? `${m.ids.length} nodes are named ${nameOrId}` : `${m.ids.length} node ids start with ${nameOrId}`
  throw new NotFoundError(`${which}; use a peer id: ${m.ids.join(', ')}`)
}

function unique (ids: NodeId[]): NodeId | undefined {
  return ids.length === 1 ? ids[0] : undefined
}
