import { describe, expect, it } from 'vitest'
import type { RegistryValue } from '../../proto/index.ts'
import { findNode, nodeEntries } from '../../src/control/cluster-view.ts'
import type { ControlDeps } from '../../src/control/index.ts'
import type { MemberState, MemberView, SelfState } from '../../src/interface/index.ts'
import type { StoredEntry } from '../../src/state/index.ts'
import { requireNode, resolveNode, type RegistryReader } from '../../src/tasks/index.ts'

const SELF = '12D3KooWself000000000000000000000000000000000000000'

function member (id: string, name: string, state: MemberState, selfState: SelfState = 'alive'): MemberView {
  return { id, name, state, selfState, incarnation: 1, lastSeen: Date.now(), since: 0, history: [] }
}

function registered (name: string, over: Partial<RegistryValue> = {}): RegistryValue {
  return { name, addrs: [], region: '', labels: {}, capabilities: [], gpus: [], version: '0.1.0', drain: false, joinedAt: 0, updatedAt: 0, ...over }
}

function registry (values: Record<string, RegistryValue>): RegistryReader {
  const entries = new Map<string, StoredEntry<RegistryValue>>(Object.entries(values).map(([id, value]) => [id, { key: id, value, writer: id, stamp: [0, 0] }]))
  return { get: id => entries.get(id), list: () => new Map(entries) }
}

/** The control API's view over the same members and registry (only what the node views read). */
function controlDeps (members: MemberView[], reg: RegistryReader): ControlDeps {
  return {
    membership: { view: () => members },
    nodeRegistry: reg,
    mesh: { peerId: SELF, addrs: () => [] },
    resources: { gpus: () => [] },
    config: { region: '', labels: {}, capabilities: [], membership: { heartbeatIntervalMs: 1000, suspectAfterMissed: 3 } },
    health: { report: () => ({ health: 'healthy', reason: 'ok', since: 0, breaker: 'closed' }), history: () => [] },
    startedAt: 0
  } as unknown as ControlDeps
}

// a reinstalled machine (gpu1: an old identity dead, a new one alive), two nodes named twin both alive, one named
// flaky suspect beside its dead twin, one known only from the registry, one whose registered name differs from
// the name its heartbeats carry, and this node
const members = [
  member(SELF, 'self', 'alive'),
  member('12D3KooWgpuOld', 'gpu1', 'dead'),
  member('12D3KooWgpuNew', 'gpu1', 'alive'),
  member('12D3KooWtwinA', 'twin', 'alive'),
  member('12D3KooWtwinB', 'twin', 'alive'),
  member('12D3KooWflakyA', 'flaky', 'suspect'),
  member('12D3KooWflakyB', 'flaky', 'dead'),
  member('12D3KooWrenamed', 'old-name', 'alive', 'draining')
]
const reg = registry({
  '12D3KooWgpuOld': registered('gpu1'),
  '12D3KooWrenamed': registered('new-name'),
  '12D3KooWgone': registered('gone', { leftAt: 1 })
})

describe('node names - one rule for tasks and the control API', () => {
  it('finds a node by peer id, name or unique id prefix', () => {
    expect(resolveNode(members, reg, SELF)).toBe(SELF)
    expect(resolveNode(members, reg, 'self')).toBe(SELF)
    expect(resolveNode(members, reg, '12D3KooWrena')).toBe('12D3KooWrenamed')
    // too short a prefix matches nothing
    expect(resolveNode(members, reg, '12D3K')).toBeUndefined()
  })

  it('prefers the alive one of several nodes with a name, then the alive or suspect one', () => {
    expect(resolveNode(members, reg, 'gpu1')).toBe('12D3KooWgpuNew')
    expect(resolveNode(members, reg, 'flaky')).toBe('12D3KooWflakyA')
  })

  it('names a node by its registered name, and finds one known only from the registry', () => {
    expect(resolveNode(members, reg, 'new-name')).toBe('12D3KooWrenamed')
    expect(resolveNode(members, reg, 'old-name')).toBeUndefined()
    expect(resolveNode(members, reg, 'gone')).toBe('12D3KooWgone')
  })

  it('says which nodes share an ambiguous name or prefix, and when none matches', () => {
    expect(() => requireNode(members, reg, 'twin')).toThrow('2 nodes are named twin; use a peer id: 12D3KooWtwinA, 12D3KooWtwinB')
    expect(() => requireNode(members, reg, '12D3KooWtwin')).toThrow('2 node ids start with 12D3KooWtwin; use a peer id: 12D3KooWtwinA, 12D3KooWtwinB')
    expect(() => requireNode(members, reg, 'nobody')).toThrow(expect.objectContaining({ code: 'NOT_FOUND', message: 'no node with id or name nobody' }))
    expect(resolveNode(members, reg, 'twin')).toBeUndefined()
  })

  it('resolves every name in the control API exactly as task placement does', () => {
    const deps = controlDeps(members, reg)
    const names = ['self', 'gpu1', 'flaky', 'twin', 'new-name', 'old-name', 'gone', 'nobody', '12D3KooWtwin', '12D3KooWgpuO', SELF]
    for (const name of names) {
      const id = resolveNode(members, reg, name)
      if (id === undefined) expect(() => findNode(deps, name), name).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }))
      else expect(findNode(deps, name).id, name).toBe(id)
    }
  })

  it('shows the same names and drain flags in the node list as placement uses', () => {
    const list = nodeEntries(controlDeps(members, reg))
    expect(list.find(n => n.id === '12D3KooWrenamed')).toMatchObject({ name: 'new-name', drain: true })
    expect(list.find(n => n.id === '12D3KooWgone')).toMatchObject({ name: 'gone', state: 'left', drain: false })
    expect(list[0]?.id).toBe(SELF)
  })
})
