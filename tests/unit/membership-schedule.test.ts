import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { MemberPing, type Heartbeat } from '../../proto/index.ts'
import { FailureDetector, Membership } from '../../src/membership/index.ts'
import { CLUSTER_HEARTBEATS, HEARTBEAT_INTERVAL_MAX_MS } from '../../src/membership/constants.ts'
import { MemberRing, heartbeatIntervals, nextProbeAt, probePhase, probeTarget } from '../../src/membership/schedule.ts'
import { FixedLag, LOAD, StubMesh, memoryLogger } from './membership-stubs.ts'

const START_MS = 1_700_000_000_000

function hb (id: string, seq: number, iv?: number): Heartbeat {
  return { t: 'hb', id, name: id, inc: 10, seq, state: 'alive', load: LOAD, ver: '1', ts: Date.now(), ...(iv === undefined ? {} : { iv }) }
}

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `peer-${String(i).padStart(4, '0')}`)

describe('membership schedule - heartbeat intervals for the cluster size', () => {
  it('keeps the base and settled intervals up to 12 members, as before', () => {
    for (const n of [1, 2, 5, 10, 12]) expect(heartbeatIntervals(1000, n, 2)).toEqual({ busyMs: 1000, settledMs: 2000 })
  })

  it('grows with the cluster past that, so the cluster-wide heartbeat rate stays bounded', () => {
    expect(heartbeatIntervals(1000, 1000, 2)).toEqual({ busyMs: 83_334, settledMs: 166_667 })
    for (const n of [13, 32, 100, 1000, 1800]) {
      const { busyMs, settledMs } = heartbeatIntervals(1000, n, 2)
      // heartbeats a second, whole cluster: at most CLUSTER_HEARTBEATS settled and twice that busy (rounding aside)
      expect(n / (settledMs / 1000)).toBeLessThanOrEqual(CLUSTER_HEARTBEATS * 1.01)
      expect(n / (busyMs / 1000)).toBeLessThanOrEqual(2 * CLUSTER_HEARTBEATS * 1.01)
      // a settled gap stays within what a receiver holding the busy interval waits for (3 intervals)
      expect(settledMs).toBeLessThanOrEqual(2 * busyMs + 1)
    }
    expect(heartbeatIntervals(1000, 100_000, 2).settledMs).toBe(HEARTBEAT_INTERVAL_MAX_MS)
  })
})

describe('membership schedule - the probe rotation', () => {
  it('keeps a ring sorted as members come and go', () => {
    const ring = new MemberRing()
    for (const id of ['c', 'a', 'd', 'b', 'a']) ring.add(id)
    expect([0, 1, 2, 3].map(i => ring.at(i))).toEqual(['a', 'b', 'c', 'd'])
    ring.remove('b')
    ring.remove('x')
    expect(ring.size).toBe(3)
    expect(ring.indexOf('c')).toBe(1)
    expect(ring.indexOf('b')).toBe(-1)
  })

  it('has every member probed by exactly one other each period, and each node visit every other in turn', () => {
    for (const n of [2, 3, 7, 50]) {
      const ring = new MemberRing()
      const all = ids(n)
      for (const id of all) ring.add(id)
      const visited = new Map(all.map(id => [id, new Set<string>()]))
      for (let period = 1_700_000_000; period < 1_700_000_000 + n - 1; period++) {
        const targets = all.map(self => probeTarget(ring, self, period) as string)
        expect(targets.every((t, i) => t !== undefined && t !== all[i])).toBe(true)
        expect(new Set(targets).size).toBe(n)
        targets.forEach((t, i) => visited.get(all[i] as string)?.add(t))
      }
      for (const v of visited.values()) expect(v.size).toBe(n - 1)
    }
    const alone = new MemberRing()
    alone.add('a')
    expect(probeTarget(alone, 'a', 5)).toBeUndefined()
  })

  it('places each node at its own phase of the period, on the wall clock', () => {
    const phase = probePhase('peer-0001')
    expect(phase).toBeGreaterThanOrEqual(0.1)
    expect(phase).toBeLessThan(0.9)
    expect(probePhase('peer-0002')).not.toBe(phase)
    const { at, period } = nextProbeAt(10_000_050, 1000, 0.25)
    expect(at).toBe(10_000_250)
    expect(period).toBe(10_000)
    // too close to the instant: the next period
    expect(nextProbeAt(10_000_240, 1000, 0.25)).toEqual({ at: 10_001_250, period: 10_001 })
  })
})

describe('membership schedule - the detector follows each sender\'s interval', () => {
  it('probes a member only after it misses the heartbeats its announced interval promised', () => {
    let now = START_MS
    const d = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000, now: () => now })
    d.onHeartbeat(hb('slow', 1, 20_000))
    d.onHeartbeat(hb('old', 1))
    expect(d.hasLegacyMembers).toBe(true)
    expect(d.memberCount).toBe(3)
    now += 5000
    // the older node announces nothing: the configured interval's 3 s
    expect(d.tick().overdue.map(o => o.id)).toEqual(['old'])
    expect(d.suspectAfterMsFor('slow')).toBe(60_000)
    now += 54_000
    expect(d.tick().overdue.map(o => o.id)).toEqual(['old'])
    now += 2000
    expect(d.tick().overdue.map(o => o.id).sort()).toEqual(['old', 'slow'])
  })

  it('holds every member at least to its own interval for the cluster it sees (a member that announced a short one early)', () => {
    let now = START_MS
    const d = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000, now: () => now })
    d.onHeartbeat(hb('early', 1, 1000))
    d.setIntervalFloor(10_000)
    now += 20_000
    expect(d.tick().overdue).toEqual([])
    now += 11_000
    expect(d.tick().overdue.map(o => o.id)).toEqual(['early'])
  })
})

describe('membership schedule - a node among many', () => {
  const INIT = { cluster: 'test', name: 'self', version: '1', heartbeatIntervalMs: 100, suspectAfterMissed: 3, probeTimeoutMs: 50, indirectProbes: 1, suspicionTimeoutMs: 400, deadMemberExpiryMs: 60_000 }
  let mesh: StubMesh
  let m: Membership
  beforeEach(async () => {
    vi.useFakeTimers()
    vi.setSystemTime(START_MS)
    mesh = new StubMesh('peer-self')
    m = new Membership({ mesh, logger: memoryLogger().logger, registry: new Registry(), load: () => LOAD, isRegistered: () => true, eventLoopLag: new FixedLag() }, INIT)
    await m.start()
  })
  afterEach(async () => {
    const stopping = m.stop()
    await vi.advanceTimersByTimeAsync(1000)
    await stopping
    vi.useRealTimers()
  })

  it('heartbeats at the interval for the cluster size, announces it, and goes back to the base pace while an older member is live', async () => {
    const peers = ids(239)
    for (const id of peers) { mesh.connected.add(id); mesh.rpc.responders.set(id, () => ({ inc: 10, state: 'alive' })) }
    let seq = 1
    const feed = (legacy?: string): void => { seq++; for (const id of peers) mesh.deliver(hb(id, seq, id === legacy ? undefined : 2000)) }
    feed()
    await vi.advanceTimersByTimeAsync(300)
    // 240 members, base 100 ms: busy 240 / 12 = 20 intervals (2 s), not every 100 ms
    const before = mesh.heartbeats().length
    await vi.advanceTimersByTimeAsync(4000)
    feed()
    const sent = mesh.heartbeats().slice(before)
    expect(sent.length).toBeGreaterThanOrEqual(1)
    expect(sent.length).toBeLessThanOrEqual(3)
    expect(sent.at(-1)?.iv).toBe(2000)
    // one older member (no interval in its heartbeats): every base interval again
    feed(peers[7])
    const legacyBefore = mesh.heartbeats().length
    await vi.advanceTimersByTimeAsync(1000)
    expect(mesh.heartbeats().length - legacyBefore).toBeGreaterThanOrEqual(8)
    expect(mesh.heartbeats().at(-1)?.iv).toBe(100)
  })

  it('sends one routine probe a period, to the member the rotation names', async () => {
    const peers = ids(9)
    for (const id of peers) { mesh.connected.add(id); mesh.rpc.responders.set(id, () => ({ inc: 10, state: 'alive' })) }
    // a long announced interval: no member falls overdue, so every ping is a routine one
    for (const id of peers) mesh.deliver(hb(id, 1, 100_000))
    const pings = (): string[] => mesh.rpc.requests.filter(r => r.method === MemberPing.name).map(r => r.peer)
    await vi.advanceTimersByTimeAsync(150)
    const start = pings().length
    const from = Math.floor(Date.now() / 100)
    await vi.advanceTimersByTimeAsync(900)
    const to = Math.floor(Date.now() / 100)
    const sent = pings().slice(start)
    expect(sent.length).toBeGreaterThanOrEqual(to - from - 1)
    expect(sent.length).toBeLessThanOrEqual(to - from + 1)
    // over 9 periods of a 10-member ring: 9 different members, each once (a shuffled round would repeat or skip)
    const ring = new MemberRing()
    for (const id of [...peers, 'peer-self']) ring.add(id)
    const expected = new Set(Array.from({ length: to - from + 2 }, (_, k) => probeTarget(ring, 'peer-self', from + k)))
    for (const p of sent) expect(expected.has(p)).toBe(true)
    expect(new Set(sent).size).toBe(sent.length)
  })
})
