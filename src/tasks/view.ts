/** The routing view: every known node as a placement candidate, from the live membership view and the registry. */
import type { MemberView, NodeId } from '../interface/index.ts'
import type { Candidate } from '../routing/index.ts'
import type { NodeRegistry } from '../state/index.ts'

export function candidates (members: MemberView[], registry: NodeRegistry): Candidate[] {
  const out: Candidate[] = []
  for (const m of members) {
    const r = registry.get(m.id)?.value
    const load = m.load
    out.push({
      id: m.id,
      name: r?.name ?? m.name,
      alive: m.state === 'alive' && m.selfState !== 'leaving',
      draining: m.selfState === 'draining' || r?.drain === true,
      region: r?.region ?? '',
      labels: r?.labels ?? {},
      capabilities: r?.capabilities ?? [],
      types: r?.taskTypes ?? [],
      slots: load?.slots ?? 0,
      gpus: load?.gpus ?? r?.gpus.length ?? 0,
      memoryMiB: load?.memTotalMiB ?? 0,
      freeSlots: load?.freeSlots ?? 0,
      freeGpus: load?.freeGpus ?? 0,
      memFreeMiB: load?.memFreeMiB ?? 0,
      running: load?.running ?? 0,
      queued: load?.queued ?? 0
    })
  }
  return out
}

/** Finds a node by peer id, unique name or unique id prefix among the known ones. */
export function resolveNode (members: MemberView[], registry: NodeRegistry, nameOrId: string): NodeId | undefined {
  if (members.some(m => m.id === nameOrId)) return nameOrId
  const byName = members.filter(m => (registry.get(m.id)?.value.name ?? m.name) === nameOrId)
  const live = byName.filter(m => m.state === 'alive')
  if (live.length === 1) return (live[0] as MemberView).id
  if (byName.length === 1) return (byName[0] as MemberView).id
  const prefix = nameOrId.length >= 6 ? members.filter(m => m.id.startsWith(nameOrId)) : []
  return prefix.length === 1 ? (prefix[0] as MemberView).id : undefined
}
