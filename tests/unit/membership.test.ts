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
  suspicionTimeoutMs: 400
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
  const states = (id: string): string[] => seen.filter(t => t.id === id).map(t => t.to)

  beforeEach(async () => {
    vi.useFakeTimers()
    vi.setSystemTime(START_MS)
    mesh = new StubMesh(SELF)
    registry = new Registry()
    m = new Membership({ mesh, logger: memoryLogger().logger, registry, load: () => LOAD, eventLoopLag: new FixedLag() }, INIT)
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

  it('announces left when it stops', async () => {
    const stopping = m.stop()
    await vi.advanceTimersByTimeAsync(300)
    await stopping
    expect(mesh.heartbeats().at(-1)).toMatchObject({ id: SELF, state: 'left' })
  })
})
