import { describe, expect, it } from 'vitest'
import { boundedLoadHash, route, type Candidate, type Requirements, type RouteContext } from '../../src/routing/index.ts'

function node (id: string, over: Partial<Candidate> = {}): Candidate {
  return {
    id, name: id, alive: true, draining: false, region: 'eu', labels: {}, capabilities: [], types: [],
    slots: 4, gpus: 0, memoryMiB: 16384, freeSlots: 4, freeGpus: 0, memFreeMiB: 16000, running: 0, queued: 0, ...over
  }
}

function req (over: Partial<Requirements> = {}): Requirements {
  return { cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, strategy: 'least-loaded', ...over }
}

function ctx (over: Partial<RouteContext> = {}): RouteContext {
  let seed = 1
  return { origin: { id: 'a', region: 'eu' }, recentlySent: () => 0, random: () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }, turn: 0, ...over }
}

function first (nodes: Candidate[], r: Requirements, c: RouteContext = ctx()): string | undefined {
  const res = route(nodes, r, c)
  if (!res.ok) throw new Error(res.reason)
  return res.candidates[0]
}

describe('routing - feasibility', () => {
  it('fails at once, naming the requirement nobody meets', () => {
    const nodes = [node('a', { gpus: 2, freeGpus: 2 }), node('b', { capabilities: ['cuda'] })]
    expect(route(nodes, req({ gpus: 3 }), ctx())).toEqual({ ok: false, reason: 'no node has 3 GPUs (the most any alive node has is 2)' })
    expect(route(nodes, req({ require: ['avx512'] }), ctx())).toEqual({ ok: false, reason: 'no node offers capability avx512 (capabilities offered: cuda)' })
    expect(route(nodes, req({ labels: { rack: 'r9' } }), ctx())).toEqual({ ok: false, reason: 'no node has label rack=r9 (no node has a rack label)' })
    expect(route(nodes, req({ labels: { pool: 'gpu' } }), ctx())).toEqual({ ok: false, reason: 'no node has label pool=gpu (pool on the nodes: default)' })
    expect(route(nodes, req({ cpus: 64 }), ctx())).toMatchObject({ ok: false, reason: 'no node has 64 CPU slots (the most any alive node has is 4)' })
    expect(route(nodes, req({ region: 'us' }), ctx())).toMatchObject({ ok: false, reason: 'no node is in region us (regions: eu)' })
  })

  it('says when requirements are met separately but never together', () => {
    const nodes = [node('a', { gpus: 1, freeGpus: 1 }), node('b', { capabilities: ['cuda'] })]
    const r = route(nodes, req({ gpus: 1, require: ['cuda'] }), ctx())
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/no single node meets every requirement/) })
  })

  it('never places on dead or draining nodes', () => {
    const nodes = [node('a', { alive: false }), node('b', { draining: true }), node('c', { freeSlots: 0 })]
    expect(route(nodes, req(), ctx())).toMatchObject({ ok: true, candidates: ['c'] })
    expect(route([node('b', { draining: true })], req(), ctx())).toEqual({ ok: false, wait: true, reason: 'the only node that can run it, b, is draining' })
  })

  it('waits, saying why, when only a draining, suspect or dead node could run the task', () => {
    const nodes = [node('a'), node('r7', { draining: true, labels: { rack: 'r7' } }), node('gpu', { alive: false, state: 'dead', capabilities: ['cuda'] })]
    expect(route(nodes, req({ labels: { rack: 'r7' } }), ctx())).toEqual({ ok: false, wait: true, reason: 'the only node that can run it, r7, is draining' })
    expect(route(nodes, req({ require: ['cuda'] }), ctx())).toEqual({ ok: false, wait: true, reason: 'the only node that can run it, gpu, is dead' })
    const two = [node('a'), node('s', { alive: false, state: 'suspect', capabilities: ['cuda'] }), node('d', { draining: true, capabilities: ['cuda'] })]
    expect(route(two, req({ require: ['cuda'] }), ctx())).toEqual({ ok: false, wait: true, reason: 'the 2 nodes that can run it are suspect (s), draining (d)' })
  })

  it('fails at once when no node known to the cluster could ever run the task, and never waits for nodes that left', () => {
    const nodes = [node('a'), node('gone', { alive: false, state: 'left', labels: { rack: 'r7' } }), node('d', { alive: false, state: 'dead' })]
    expect(route(nodes, req({ labels: { rack: 'r7' } }), ctx())).toEqual({ ok: false, reason: 'no node has label rack=r7 (no node has a rack label)' })
  })

  it('checks memory against what each node offers to tasks', () => {
    const nodes = [node('a', { memoryMiB: 1024 })]
    expect(route(nodes, req({ memory: 2 * 1024 ** 3 }), ctx())).toEqual({ ok: false, reason: 'no node offers 2048 MiB of memory to tasks (the most any node offers is 1024 MiB)' })
    expect(route(nodes, req({ memory: 1024 ** 3 }), ctx())).toMatchObject({ ok: true, candidates: ['a'] })
  })

  it('places typed tasks only on nodes that define the type', () => {
    const nodes = [node('a', { types: ['resize'] }), node('b')]
    expect(route(nodes, req({ type: 'resize' }), ctx())).toMatchObject({ ok: true, candidates: ['a'] })
    expect(route(nodes, req({ type: 'embed' }), ctx())).toEqual({ ok: false, reason: 'no node defines task type embed (types: resize)' })
  })

  it('places GPU tasks only on nodes with GPUs', () => {
    const nodes = [node('cpu1'), node('gpu1', { gpus: 2, freeGpus: 2 }), node('cpu2')]
    expect(route(nodes, req({ gpus: 1 }), ctx())).toMatchObject({ ok: true, candidates: ['gpu1'] })
  })
})

describe('routing - strategies', () => {
  const three = (): Candidate[] => [node('a', { freeSlots: 1, running: 3 }), node('b', { freeSlots: 4 }), node('c', { freeSlots: 2, running: 2 })]

  it('least-loaded prefers free capacity and keeps the rest as fallbacks', () => {
    const r = route(three(), req(), ctx({ random: () => 0.99 }))
    expect(r.ok && r.candidates).toHaveLength(3)
    // power of two choices over a (1 free slot), b (4) and c (2): whichever pair one generator draws, the more loaded
    // of the two never comes first, so a never does; c does only when drawn with a, one pair in three
    const c = ctx()
    const firsts = new Map<string, number>()
    for (let i = 0; i < 300; i++) {
      const id = first(three(), req(), c) as string
      firsts.set(id, (firsts.get(id) ?? 0) + 1)
    }
    expect(firsts.get('a')).toBeUndefined()
    expect(firsts.get('c')).toBeGreaterThan(70)
    expect(firsts.get('c')).toBeLessThan(130)
    expect(firsts.get('b')).toBe(300 - (firsts.get('c') ?? 0))
  })

  it('least-loaded counts what this node sent recently, so stale reports do not herd tasks', () => {
    const nodes = [node('a'), node('b')]
    const placed = new Map<string, number>()
    const c = ctx({ recentlySent: id => placed.get(id) ?? 0 })
    for (let i = 0; i < 8; i++) {
      const id = first(nodes, req(), c) as string
      placed.set(id, (placed.get(id) ?? 0) + 1)
    }
    expect(placed.get('a')).toBe(4)
    expect(placed.get('b')).toBe(4)
  })

  it('least-loaded puts a node that can start the task now before full ones, and breaks ties by fewer running', () => {
    const nodes = [node('full1', { freeSlots: 0, running: 4 }), node('full2', { freeSlots: 0, running: 4 }), node('room', { freeSlots: 1, running: 3 })]
    const c = ctx()
    for (let i = 0; i < 50; i++) expect(first(nodes, req(), c)).toBe('room')
    // none can start it now: the one running fewer tasks is offered it first
    const full = [node('busy', { freeSlots: 0, running: 4 }), node('small', { slots: 1, freeSlots: 0, running: 1 })]
    for (let i = 0; i < 20; i++) expect(first(full, req(), c)).toBe('small')
  })

  it('round-robin takes turns', () => {
    const nodes = three()
    expect([0, 1, 2, 3].map(turn => first(nodes, req({ strategy: 'round-robin' }), ctx({ turn })))).toEqual(['a', 'b', 'c', 'a'])
  })

  it('random spreads over every feasible node', () => {
    const seen = new Set<string>()
    const c = ctx()
    for (let i = 0; i < 60; i++) seen.add(first(three(), req({ strategy: 'random' }), c) as string)
    expect([...seen].sort()).toEqual(['a', 'b', 'c'])
  })

  it('capability puts the nodes with the most of the listed capabilities first', () => {
    const nodes = [node('a', { capabilities: ['cuda'] }), node('b', { capabilities: ['cuda', 'nvlink'] }), node('c')]
    const r = route(nodes, req({ strategy: 'capability', require: ['cuda', 'nvlink'] }), ctx())
    expect(r).toMatchObject({ ok: true, candidates: ['b', 'a', 'c'] })
  })

  it('region prefers the task\'s region, else the origin\'s, then the least loaded elsewhere', () => {
    const nodes = [node('eu1', { region: 'eu', freeSlots: 1 }), node('us1', { region: 'us' }), node('us2', { region: 'us', freeSlots: 2 })]
    expect(route(nodes, req({ strategy: 'region', region: 'us' }), ctx())).toMatchObject({ ok: true, candidates: ['us1', 'us2', 'eu1'] })
    expect(first(nodes, req({ strategy: 'region' }), ctx())).toBe('eu1')
  })

  it('affinity keeps the session on its owner while it is alive and fits, and lets the owner judge its room', () => {
    const nodes = three()
    expect(first(nodes, req({ strategy: 'affinity' }), ctx({ sessionOwner: 'c' }))).toBe('c')
    expect(route(nodes, req({ strategy: 'affinity' }), ctx({ sessionOwner: 'c' }))).toMatchObject({ ok: true, session: { owner: 'c', ownerFirst: true, startNow: true } })
    // a report that says the owner is full (it may be a second old) does not move the session: the owner is asked
    // to start it now and refuses if it cannot
    const staleFull = [node('a', { freeSlots: 0, running: 4 }), node('b')]
    expect(route(staleFull, req({ strategy: 'affinity' }), ctx({ sessionOwner: 'a' }))).toMatchObject({ ok: true, candidates: ['a', 'b'], session: { ownerFirst: true, startNow: true } })
    // when no other node could start it either, the owner may queue it
    const allFull = [node('a', { freeSlots: 0 }), node('b', { freeSlots: 0 })]
    expect(route(allFull, req({ strategy: 'affinity' }), ctx({ sessionOwner: 'a' }))).toMatchObject({ ok: true, candidates: ['a', 'b'], session: { ownerFirst: true, startNow: false } })
  })

  it('affinity passes the owner by when it is dead, draining or unfit, saying why', () => {
    const dead = [node('a', { alive: false }), node('b'), node('c', { freeSlots: 1, running: 3 })]
    expect(route(dead, req({ strategy: 'affinity' }), ctx({ sessionOwner: 'a', random: () => 0.5 }))).toMatchObject({ ok: true, candidates: ['b', 'c'], session: { owner: 'a', ownerFirst: false, reason: 'dead' } })
    const draining = [node('a', { draining: true }), node('b')]
    expect(route(draining, req({ strategy: 'affinity' }), ctx({ sessionOwner: 'a' }))).toMatchObject({ candidates: ['b'], session: { reason: 'draining', message: 'its owner a is draining' } })
    const unfit = [node('a'), node('b', { gpus: 1, freeGpus: 1 })]
    expect(route(unfit, req({ strategy: 'affinity', gpus: 1 }), ctx({ sessionOwner: 'a' }))).toMatchObject({ candidates: ['b'], session: { reason: 'unfit' } })
    expect(route(three(), req({ strategy: 'affinity' }), ctx({ sessionOwner: null }))).toMatchObject({ session: { owner: null, ownerFirst: false, reason: 'no-owner' } })
  })

  it('places on an explicit node, or says why it cannot', () => {
    const nodes = [node('a'), node('b', { alive: false }), node('c', { draining: true })]
    expect(route(nodes, req({ node: 'a', strategy: 'random' }), ctx())).toMatchObject({ ok: true, candidates: ['a'] })
    expect(route(nodes, req({ node: 'b' }), ctx())).toEqual({ ok: false, reason: 'node b is not alive' })
    expect(route(nodes, req({ node: 'c' }), ctx())).toEqual({ ok: false, reason: 'node c is draining' })
    expect(route(nodes, req({ node: 'a', gpus: 1 }), ctx())).toEqual({ ok: false, reason: 'node a cannot run it: it has 1 GPU (the most any alive node has is 0)' })
    expect(route(nodes, req({ node: 'zz' }), ctx())).toEqual({ ok: false, reason: 'no node zz in this cluster' })
  })
})

describe('routing - bounded-load consistent hashing', () => {
  it('spreads sessions evenly and never past 1.25 times the average', () => {
    const nodes = ['a', 'b', 'c', 'd']
    const load = new Map(nodes.map(n => [n, 0]))
    for (let i = 0; i < 400; i++) {
      const n = boundedLoadHash(`session-${i}`, nodes, id => load.get(id) ?? 0) as string
      load.set(n, (load.get(n) ?? 0) + 1)
    }
    for (const n of nodes) expect(load.get(n)).toBeLessThanOrEqual(Math.ceil(1.25 * 400 / 4))
    for (const n of nodes) expect(load.get(n)).toBeGreaterThan(50)
  })

  it('moves only the keys of a node that went away', () => {
    const four = ['a', 'b', 'c', 'd']
    const three = ['a', 'b', 'c']
    let moved = 0
    for (let i = 0; i < 200; i++) {
      const before = boundedLoadHash(`k${i}`, four, () => 0)
      const after = boundedLoadHash(`k${i}`, three, () => 0)
      if (before !== 'd' && before !== after) moved++
    }
    expect(moved).toBe(0)
  })

  it('answers undefined with no nodes', () => {
    expect(boundedLoadHash('k', [], () => 0)).toBeUndefined()
  })
})
