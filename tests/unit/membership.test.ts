import { StreamResetError } from '@libp2p/interface'
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { MemberPing, heartbeatTopic, type Heartbeat, type Notice } from '../../proto/index.ts'
import { PeerUnreachableError } from '../../src/interface/index.ts'
import { Membership, type MemberStates, type Transition } from '../../src/membership/index.ts'
import { FixedLag, LOAD, StubMesh, advanceUntil, memoryLogger } from './membership-stubs.ts'

const SELF = 'peer-self'
const A = 'peer-a'
const B = 'peer-b'
const START_MS = 1_700_000_000_000
const INIT = {
  cluster: 'test',
  name: 'self',
  version: '1',
  heartbeatIntervalMs: 100,
  suspectAfterMissed: 3,
  probeTimeoutMs: 50,
  indirectProbes: 1,
  suspicionTimeoutMs: 400,
  deadMemberExpiryMs: 60_000
}

function hb (id: string, inc: number, seq: number, state: Heartbeat['state'] = 'alive'): Heartbeat {
  return { t: 'hb', id, name: id, inc, seq, state, load: LOAD, ver: '1', ts: Date.now() }
}

function notice (kind: Notice['kind'], id: string, inc: number, by = B): Notice {
  return { t: 'notice', kind, id, inc, by }
}

describe('membership - heartbeats and probes against a stub mesh', () => {
  let mesh: StubMesh
  let registry: Registry
  let m: Membership
  let seen: Transition[]
  let registered: Set<string>
  const states = (id: string): string[] => seen.filter(t => t.id === id).map(t => t.to)

  beforeEach(async () => {
    vi.useFakeTimers()
    vi.setSystemTime(START_MS)
    mesh = new StubMesh(SELF)
    registry = new Registry()
    registered = new Set([A, B])
    m = new Membership({ mesh, logger: memoryLogger().logger, registry, load: () => LOAD, isRegistered: id => registered.has(id), eventLoopLag: new FixedLag() }, INIT)
    seen = []
    // consumers depend on the narrow surface
    const surface: MemberStates = m
    surface.on('member:state', t => { seen.push(t) })
    await m.start()
  })
  afterEach(async () => {
    const stopping = m.stop()
    await vi.advanceTimersByTimeAsync(1000)
    await stopping
    vi.useRealTimers()
  })

  it('gossips its own heartbeat on the cluster topic as soon as it starts', async () => {
    await advanceUntil(() => mesh.heartbeats().length > 0)
    expect(mesh.topic).toBe(heartbeatTopic('test'))
    expect(mesh.heartbeats()[0]).toMatchObject({ t: 'hb', id: SELF, name: 'self', inc: Math.floor(START_MS / 1000), seq: 1, state: 'alive', ver: '1' })
  })

  it('slows its heartbeats to every other interval once settled (not in its first minute), and speeds up again when a member changes', async () => {
    const rate = async (ms: number): Promise<number> => {
      const before = mesh.heartbeats().length
      await vi.advanceTimersByTimeAsync(ms)
      return mesh.heartbeats().length - before
    }
    // just started: joining, so every interval (100 ms), for its first minute even when nothing happens
    expect(await rate(1000)).toBeGreaterThanOrEqual(9)
    await vi.advanceTimersByTimeAsync(50_000)
    expect(await rate(1000)).toBeGreaterThanOrEqual(9)
    await vi.advanceTimersByTimeAsync(10_000)
    // settled: every 200 ms (suspectAfterMissed 3 less one interval)
    const settled = await rate(2000)
    expect(settled).toBeGreaterThanOrEqual(9)
    expect(settled).toBeLessThanOrEqual(11)
    // a member joins: something is in the air, every interval again
    mesh.deliver(hb(A, 10, 1))
    expect(await rate(500)).toBeGreaterThanOrEqual(4)
  })

  it('sends a heartbeat at the next interval when its work changes, even while settled', async () => {
    let running = 0
    const mesh2 = new StubMesh(SELF)
    const m2 = new Membership({ mesh: mesh2, logger: memoryLogger().logger, registry: new Registry(), load: () => ({ ...LOAD, running }), isRegistered: () => false, eventLoopLag: new FixedLag() }, INIT)
    await m2.start()
    try {
      await vi.advanceTimersByTimeAsync(61_000)
      const before = mesh2.heartbeats().length
      await vi.advanceTimersByTimeAsync(210)
      const last = mesh2.heartbeats().length
      expect(last - before).toBeLessThanOrEqual(2)
      running = 1
      await advanceUntil(() => mesh2.heartbeats().at(-1)?.load.running === 1, 120)
    } finally {
      const stopping = m2.stop()
      await vi.advanceTimersByTimeAsync(1000)
      await stopping
    }
  })

  it('makes a peer alive on its first heartbeat and asks the mesh to dial it', () => {
    expect(mesh.deliver(hb(A, 10, 1))).toBe('accept')
    expect(seen).toMatchObject([{ id: A, from: null, to: 'alive', reason: 'first heartbeat' }])
    expect(m.state(A)).toBe('alive')
    expect(m.state(SELF)).toBeUndefined()
    expect(m.view().map(v => v.id)).toEqual([SELF, A])
    expect(mesh.learned).toEqual([{ peer: A, left: false }])
  })

  it('rejects a message that is not a membership message, and counts it', async () => {
    expect(mesh.deliver({ t: 'hb', id: A })).toBe('reject')
    expect(mesh.deliverBytes(new Uint8Array([0xc1]))).toBe('reject')
    expect(m.view()).toHaveLength(1)
    expect(await registry.getSingleMetricAsString('grid_membership_invalid_messages_total')).toMatch(/ 2$/m)
  })

  it('probes a silent peer, suspects it when nobody reaches it, and declares it dead after the suspicion timeout', async () => {
    mesh.connected.add(B)
    mesh.rpc.responders.set(B, method => method === MemberPing.name ? { inc: 20, state: 'alive' } : { ok: false, reason: 'timeout' })
    mesh.deliver(hb(A, 10, 1))
    mesh.deliver(hb(B, 20, 1))
    await advanceUntil(() => m.state(A) === 'dead')
    expect(states(A)).toEqual(['alive', 'suspect', 'dead'])
    const suspected = seen.find(t => t.id === A && t.to === 'suspect')
    expect(suspected?.reason).toMatch(/^no heartbeat for .*; direct probe: no answer in time$/)
    expect(mesh.rpc.sent(A, 'member.ping')).toBeGreaterThanOrEqual(1)
    expect(mesh.rpc.requests.find(r => r.peer === B && r.method === 'member.probe')?.data).toMatchObject({ target: A })
    expect(mesh.notices()).toEqual([notice('suspect', A, 10, SELF), notice('dead', A, 10, SELF)])
    await advanceUntil(() => mesh.hungUp.includes(A))
    // the helper kept answering its pings: still alive, however late its heartbeats
    expect(m.state(B)).toBe('alive')
    expect(await registry.getSingleMetricAsString('grid_membership_deaths_total')).toMatch(/source="local"} 1$/m)
  })

  it('declares a suspect dead sooner when a helper confirms it cannot reach it either, not when the helper is silent', async () => {
    mesh.connected.add(B)
    mesh.rpc.responders.set(B, method => method === MemberPing.name ? { inc: 20, state: 'alive' } : { ok: false, reason: 'timeout' })
    mesh.deliver(hb(A, 10, 1))
    mesh.deliver(hb(B, 20, 1))
    await advanceUntil(() => m.state(A) === 'dead')
    const at = (id: string, to: string): number => m.get(id)?.history.find(h => h.state === to)?.at ?? NaN
    // k = 1 helper at 3 nodes: the floor, a quarter of the 400 ms suspicion timeout
    expect(at(A, 'dead') - at(A, 'suspect')).toBeLessThan(INIT.suspicionTimeoutMs)
    expect(seen.find(t => t.id === A && t.to === 'dead')?.reason).toMatch(/confirmed by 1$/)
    // a helper that does not answer at all confirms nothing: the full suspicion timeout
    const C = 'peer-c'
    registered.add(C)
    mesh.rpc.responders.set(B, method => {
      if (method === MemberPing.name) return { inc: 20, state: 'alive' }
      throw new PeerUnreachableError('helper busy')
    })
    mesh.deliver(hb(C, 30, 1))
    await advanceUntil(() => m.state(C) === 'dead')
    expect(at(C, 'dead') - at(C, 'suspect')).toBeGreaterThanOrEqual(INIT.suspicionTimeoutMs)
    expect(seen.find(t => t.id === C && t.to === 'dead')?.reason).not.toMatch(/confirmed/)
  })

  it('probes a member once more before suspecting it when its routine probe failed but its heartbeats still arrive', async () => {
    mesh.connected.add(A)
    mesh.connected.add(B)
    mesh.rpc.responders.set(B, method => method === MemberPing.name ? { inc: 20, state: 'alive' } : { ok: true, rttMs: 1, inc: 10 })
    // A gossips every 30 ms but never answers a probe of its own (a stuck stream, a node starting up)
    let seq = 1
    mesh.deliver(hb(A, 10, seq))
    mesh.deliver(hb(B, 20, seq))
    const feed = setInterval(() => { seq++; mesh.deliver(hb(A, 10, seq)); mesh.deliver(hb(B, 20, seq)) }, 30)
    try {
      await advanceUntil(() => seen.some(t => t.id === A && t.to === 'suspect'))
    } finally {
      clearInterval(feed)
    }
    expect(seen.find(t => t.id === A && t.to === 'suspect')?.reason).toMatch(/^routine probe: .*; heartbeats still arriving; direct probe: /)
    // the helper reached it: alive again, never dead
    await advanceUntil(() => m.state(A) === 'alive')
    expect(states(A)).not.toContain('dead')
  })

  it('declares a peer dead at once when it and every helper get connection refused', async () => {
    mesh.connected.add(B)
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4001'), { code: 'ECONNREFUSED' })
    mesh.rpc.responders.set(A, () => { throw new PeerUnreachableError(`cannot reach ${A}`, { cause: refused }) })
    mesh.rpc.responders.set(B, method => method === MemberPing.name ? { inc: 20, state: 'alive' } : { ok: false, reason: 'refused' })
    mesh.deliver(hb(A, 10, 1))
    mesh.deliver(hb(B, 20, 1))
    mesh.emit('peer:disconnect', A)
    await advanceUntil(() => m.state(A) === 'dead', 200)
    expect(seen.filter(t => t.id === A).at(-1)?.reason).toBe('connection refused to this node and to 1 other')
  })

  it('tries once more when the stream closes under a probe, and keeps a peer that answers alive', async () => {
    let pings = 0
    mesh.rpc.responders.set(A, () => {
      if (++pings === 1) throw new PeerUnreachableError(`stream to ${A} closed (reset)`, { cause: new StreamResetError() })
      return { inc: 10, state: 'alive' }
    })
    mesh.deliver(hb(A, 10, 1))
    mesh.emit('peer:disconnect', A)
    await advanceUntil(() => pings >= 2)
    await vi.advanceTimersByTimeAsync(0)
    expect(m.state(A)).toBe('alive')
    expect(m.get(A)?.rttMs).toBeGreaterThanOrEqual(0)
    expect(states(A)).toEqual(['alive'])
  })

  it('refutes a suspicion about itself by raising its incarnation, and ignores a notice older than that', async () => {
    await advanceUntil(() => mesh.heartbeats().length > 0)
    // a refutation never takes the incarnation past this node's clock in seconds: let a second pass
    await vi.advanceTimersByTimeAsync(1000)
    const inc = m.get(SELF)?.incarnation ?? 0
    mesh.deliver(notice('suspect', SELF, inc))
    await advanceUntil(() => mesh.heartbeats().some(h => h.inc > inc))
    expect(m.get(SELF)?.incarnation).toBe(inc + 1)
    expect(await mesh.rpc.serve(MemberPing, {})).toEqual({ inc: inc + 1, state: 'alive' })
    // being suspected stretches its own deadlines (Lifeguard)
    expect(m.healthMultiplier).toBe(2)
    mesh.deliver(notice('dead', SELF, inc))
    expect(m.get(SELF)?.incarnation).toBe(inc + 1)
    expect(await registry.getSingleMetricAsString('grid_membership_refutations_total')).toMatch(/ 1$/m)
  })

  it('brings a suspected peer back when its heartbeat carries a higher incarnation', () => {
    mesh.deliver(hb(A, 10, 5))
    mesh.deliver(notice('suspect', A, 10))
    expect(m.state(A)).toBe('suspect')
    mesh.deliver(hb(A, 11, 1))
    expect(m.state(A)).toBe('alive')
    // the old suspicion no longer applies
    mesh.deliver(notice('suspect', A, 10))
    expect(states(A)).toEqual(['alive', 'suspect', 'alive'])
  })

  it('takes a peer that left at its word, and tells the mesh to dial it only slowly', () => {
    mesh.deliver(hb(A, 10, 1))
    mesh.deliver(hb(A, 10, 2, 'left'))
    expect(m.state(A)).toBe('left')
    expect(mesh.learned.at(-1)).toEqual({ peer: A, left: true })
  })

  it('takes a heartbeat only from the node it describes, and a notice only from the node that names itself its sender', async () => {
    mesh.deliver(hb(A, 10, 1))
    // B signs a heartbeat saying A left, at the highest incarnation there is
    expect(mesh.deliver(hb(A, Number.MAX_SAFE_INTEGER, 1, 'left'), { author: B })).toBe('reject')
    // B signs a death notice in A's name
    expect(mesh.deliver(notice('dead', A, 10, A), { author: B })).toBe('reject')
    expect(m.state(A)).toBe('alive')
    expect(m.get(A)?.incarnation).toBe(10)
    expect(await registry.getSingleMetricAsString('grid_membership_messages_refused_total')).toMatch(/reason="not-author"} 2$/m)
    // a notice B signs as itself is B's own word: it applies, and A may refute it
    expect(mesh.deliver(notice('suspect', A, 10, B))).toBe('accept')
    expect(m.state(A)).toBe('suspect')
  })

  it('ignores gossip from authors neither connected nor registered: a flood of made-up ids leaves no member', async () => {
    for (let i = 0; i < 1000; i++) expect(mesh.deliver(hb(`made-up-${i}`, 10, 1))).toBe('ignore')
    expect(mesh.deliver(notice('suspect', A, 10, 'made-up-0'))).toBe('ignore')
    expect(m.view().map(v => v.id)).toEqual([SELF])
    expect(mesh.learned).toEqual([])
    expect(await registry.getSingleMetricAsString('grid_membership_messages_refused_total')).toMatch(/reason="unknown-author"} 1001$/m)
    // a peer connected to this node is heard before the registry has its entry
    mesh.connected.add('newcomer')
    expect(mesh.deliver(hb('newcomer', 10, 1))).toBe('accept')
    expect(m.state('newcomer')).toBe('alive')
  })

  it('ignores a heartbeat whose incarnation is beyond its clock plus a day', async () => {
    expect(mesh.deliver(hb(A, Math.floor(START_MS / 1000) + 86_401, 1))).toBe('ignore')
    expect(m.state(A)).toBeUndefined()
    expect(await registry.getSingleMetricAsString('grid_membership_messages_refused_total')).toMatch(/reason="incarnation-ahead"} 1$/m)
  })

  it('refutes only a notice at its own incarnation, raising it by one from its own value and never past its clock', async () => {
    await advanceUntil(() => mesh.heartbeats().length > 0)
    const inc = m.get(SELF)?.incarnation ?? 0
    // forged notices at incarnations it never had change nothing: no refutation, no overflow
    mesh.deliver(notice('dead', SELF, Number.MAX_SAFE_INTEGER))
    mesh.deliver(notice('suspect', SELF, inc + 5))
    expect(m.get(SELF)?.incarnation).toBe(inc)
    expect(await registry.getSingleMetricAsString('grid_membership_refutations_total')).toMatch(/ 0$/m)
    // one at its incarnation within the second it started: refuted by a heartbeat, the incarnation stays at its clock
    const sent = mesh.heartbeats().length
    mesh.deliver(notice('suspect', SELF, inc))
    await advanceUntil(() => mesh.heartbeats().length > sent)
    expect(mesh.heartbeats().at(-1)?.inc).toBe(inc)
    await vi.advanceTimersByTimeAsync(3000)
    mesh.deliver(notice('dead', SELF, inc))
    mesh.deliver(notice('dead', SELF, inc))
    expect(m.get(SELF)?.incarnation).toBe(inc + 1)
    expect(await registry.getSingleMetricAsString('grid_membership_refutations_total')).toMatch(/ 2$/m)
  })

  it('drops a dead member after the expiry, logs it, and stops dialling it unless it is registered', async () => {
    mesh.deliver(hb(A, 10, 1))
    mesh.deliver(hb(B, 20, 1))
    mesh.deliver(notice('dead', A, 10, B))
    mesh.deliver(hb(B, 20, 2, 'left'))
    registered.delete(A)
    await vi.advanceTimersByTimeAsync(INIT.deadMemberExpiryMs + 500)
    expect(m.state(A)).toBeUndefined()
    expect(m.state(B)).toBeUndefined()
    expect(mesh.forgotten).toEqual([A])
    expect(await registry.getSingleMetricAsString('grid_membership_members_expired_total')).toMatch(/ 2$/m)
  })

  it('announces left when it stops', async () => {
    const stopping = m.stop()
    await vi.advanceTimersByTimeAsync(300)
    await stopping
    expect(mesh.heartbeats().at(-1)).toMatchObject({ id: SELF, state: 'left' })
  })
})
