import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Heartbeat } from '../../proto/index.ts'
import { FailureDetector } from '../../src/membership/detector.ts'

const LOAD = { cpu: 0, cpus: 2, memTotalMiB: 1000, memFreeMiB: 500, running: 0, queued: 0, slots: 2, freeSlots: 2, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }

function hb (id: string, inc: number, seq: number, state: Heartbeat['state'] = 'alive'): Heartbeat {
  return { t: 'hb', id, name: id, inc, seq, state, load: LOAD, ver: '1', ts: Date.now() }
}

describe('membership - failure detector', () => {
  let d: FailureDetector
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(1_000_000)
    d = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000 })
  })
  afterEach(() => { vi.useRealTimers() })

  it('adds a peer as alive on its first heartbeat', () => {
    const t = d.onHeartbeat(hb('a', 10, 1))
    expect(t).toMatchObject({ id: 'a', from: null, to: 'alive' })
    expect(d.state('a')).toBe('alive')
  })

  it('ignores heartbeats about itself', () => {
    expect(d.onHeartbeat(hb('self', 1, 1))).toBeUndefined()
    expect(d.list()).toHaveLength(0)
  })

  it('has a peer probed after the configured missed heartbeats, and not before; an answer keeps it alive', () => {
    d.onHeartbeat(hb('a', 10, 1))
    vi.advanceTimersByTime(2900)
    expect(d.tick().overdue).toHaveLength(0)
    vi.advanceTimersByTime(200)
    const { overdue } = d.tick()
    expect(overdue).toMatchObject([{ id: 'a' }])
    expect(overdue[0]?.reason).toMatch(/no heartbeat for 3\.1s/)
    // a late heartbeat alone does not make a suspect: the probe decides
    expect(d.state('a')).toBe('alive')
    expect(d.onProbeSuccess('a', 2)).toBeUndefined()
    vi.advanceTimersByTime(2900)
    expect(d.tick().overdue).toHaveLength(0)
    vi.advanceTimersByTime(200)
    expect(d.tick().overdue).toMatchObject([{ id: 'a' }])
    expect(d.suspect('a', 'direct probe: no answer in time')).toMatchObject({ from: 'alive', to: 'suspect' })
    expect(d.tick().overdue).toHaveLength(0)
  })

  it('declares a suspect dead when the suspicion timeout passes without a refutation', () => {
    d.onHeartbeat(hb('a', 10, 1))
    d.suspect('a', 'probe failed')
    vi.advanceTimersByTime(3900)
    expect(d.tick().dead).toHaveLength(0)
    vi.advanceTimersByTime(200)
    expect(d.tick().dead).toMatchObject([{ id: 'a', to: 'dead' }])
  })

  it('shortens a suspicion that others confirm (Lifeguard): 4 s unconfirmed, 2 s with k = 3 confirmations at 5 nodes', () => {
    for (const id of ['a', 'b', 'c', 'e']) d.onHeartbeat(hb(id, 10, 1))
    d.suspect('a', 'probe failed')
    expect(d.suspicionTimeoutFor('a')).toBe(4000)
    d.confirm('a', 'b')
    const one = d.suspicionTimeoutFor('a')
    expect(one).toBeLessThan(4000)
    expect(one).toBeGreaterThan(2000)
    // the same confirmer twice, the suspect itself and this node count once, not at all, not at all
    d.confirm('a', 'b'); d.confirm('a', 'a'); d.confirm('a', 'self')
    expect(d.suspicionTimeoutFor('a')).toBe(one)
    // a suspicion notice from another member at the same incarnation confirms too
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'a', inc: 10, by: 'c' })).toBeUndefined()
    d.confirm('a', 'e')
    expect(d.suspicionTimeoutFor('a')).toBe(2000)
    vi.advanceTimersByTime(1900)
    expect(d.tick().dead).toHaveLength(0)
    vi.advanceTimersByTime(200)
    expect(d.tick().dead).toMatchObject([{ id: 'a', to: 'dead', reason: expect.stringMatching(/confirmed by 3/) }])
  })

  it('starts each suspicion unconfirmed, stretches the confirmed one while slow, and lengthens its floor with the cluster', () => {
    for (const id of ['a', 'b', 'c', 'e']) d.onHeartbeat(hb(id, 10, 1))
    d.suspect('a', 'probe failed')
    for (const by of ['b', 'c', 'e']) d.confirm('a', by)
    expect(d.suspicionTimeoutFor('a')).toBe(2000)
    d.setHealthMultiplier(2)
    expect(d.suspicionTimeoutFor('a')).toBe(4000)
    d.setHealthMultiplier(1)
    // refuted, then suspected again: the old confirmations do not carry over
    d.onHeartbeat(hb('a', 11, 1))
    d.suspect('a', 'probe failed again')
    expect(d.suspicionTimeoutFor('a')).toBe(4000)
    // a confirmation about an alive member is not kept for a later suspicion
    d.onHeartbeat(hb('a', 12, 1))
    d.confirm('a', 'b')
    d.suspect('a', 'probe failed')
    expect(d.suspicionTimeoutFor('a')).toBe(4000)
    const big = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000 })
    // 30 nodes: the floor is 2 s times log10(30)
    for (let i = 0; i < 29; i++) big.onHeartbeat(hb(`p${i}`, 10, 1))
    big.suspect('p0', 'probe failed')
    for (const by of ['p1', 'p2', 'p3']) big.confirm('p0', by)
    expect(big.suspicionTimeoutFor('p0')).toBe(Math.round(2000 * Math.log10(30)))
    // 100 nodes and more: as long as an unconfirmed suspicion
    for (let i = 29; i < 99; i++) big.onHeartbeat(hb(`p${i}`, 10, 1))
    expect(big.suspicionTimeoutFor('p0')).toBe(4000)
  })

  it('ignores the notices of a member back from dead for a while: they are what it saw on its side of a partition', () => {
    d.onHeartbeat(hb('a', 10, 1))
    d.onHeartbeat(hb('b', 20, 1))
    d.suspect('b', 'probe failed')
    d.declareDead('b', 'cut off')
    // the partition heals: b's heartbeats arrive, then its stale notices about a, from its side of the cut
    d.onHeartbeat(hb('b', 20, 2))
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'a', inc: 10, by: 'b' })).toBeUndefined()
    expect(d.onNotice({ t: 'notice', kind: 'dead', id: 'a', inc: 10, by: 'b' })).toBeUndefined()
    expect(d.state('a')).toBe('alive')
    // once it has been back a while, its word counts again
    vi.advanceTimersByTime(10_000)
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'a', inc: 10, by: 'b' })).toMatchObject({ to: 'suspect' })
  })

  it('keeps a slow but heartbeating peer alive', () => {
    d.onHeartbeat(hb('a', 10, 1))
    for (let seq = 2; seq < 30; seq++) {
      vi.advanceTimersByTime(2500) // each heartbeat 2.5 s late: under the 3 s threshold
      d.onHeartbeat(hb('a', 10, seq))
      const r = d.tick()
      expect(r.overdue).toHaveLength(0)
      expect(r.dead).toHaveLength(0)
    }
    expect(d.state('a')).toBe('alive')
  })

  it('brings a suspect back on a fresh heartbeat, but not on a stale one', () => {
    d.onHeartbeat(hb('a', 10, 5))
    d.suspect('a', 'connection closed')
    expect(d.onHeartbeat(hb('a', 10, 5))).toBeUndefined()
    expect(d.onHeartbeat(hb('a', 9, 99))).toBeUndefined()
    expect(d.state('a')).toBe('suspect')
    expect(d.onHeartbeat(hb('a', 10, 6))).toMatchObject({ from: 'suspect', to: 'alive' })
  })

  it('applies a notice only at exactly the incarnation it knows for the subject', () => {
    d.onHeartbeat(hb('a', 10, 1))
    d.onHeartbeat(hb('b', 10, 1))
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'a', inc: 9, by: 'b' })).toBeUndefined()
    // one naming a later incarnation (up to 2^53) would otherwise outlive every refutation
    expect(d.onNotice({ t: 'notice', kind: 'dead', id: 'a', inc: Number.MAX_SAFE_INTEGER, by: 'b' })).toBeUndefined()
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'a', inc: 11, by: 'b' })).toBeUndefined()
    expect(d.state('a')).toBe('alive')
    expect(d.incarnation('a')).toBe(10)
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'a', inc: 10, by: 'b' })).toMatchObject({ to: 'suspect', reason: 'suspected by b' })
    expect(d.onNotice({ t: 'notice', kind: 'dead', id: 'a', inc: 10, by: 'b' })).toMatchObject({ from: 'suspect', to: 'dead' })
  })

  it('lets a refutation (higher incarnation) undo a death', () => {
    d.onHeartbeat(hb('a', 10, 1))
    d.onNotice({ t: 'notice', kind: 'dead', id: 'a', inc: 10, by: 'b' })
    expect(d.state('a')).toBe('dead')
    expect(d.onHeartbeat(hb('a', 11, 1))).toMatchObject({ from: 'dead', to: 'alive' })
    // the old notice no longer applies
    expect(d.onNotice({ t: 'notice', kind: 'dead', id: 'a', inc: 10, by: 'b' })).toBeUndefined()
    expect(d.state('a')).toBe('alive')
  })

  it('asks for a refutation when a notice is about this node', () => {
    expect(d.onNotice({ t: 'notice', kind: 'suspect', id: 'self', inc: 3, by: 'b' })).toBe('refute')
  })

  it('marks a peer left on its leave heartbeat and alive again when it restarts', () => {
    d.onHeartbeat(hb('a', 10, 1))
    expect(d.onHeartbeat(hb('a', 10, 2, 'left'))).toMatchObject({ to: 'left', reason: 'announced it is leaving' })
    vi.advanceTimersByTime(60_000)
    expect(d.tick()).toEqual({ overdue: [], dead: [], expired: [] })
    expect(d.onHeartbeat(hb('a', 70, 1))).toMatchObject({ from: 'left', to: 'alive' })
  })

  it('refuses an incarnation beyond its clock in seconds plus a day, from a heartbeat or a probe answer', () => {
    const nowS = Math.floor(Date.now() / 1000)
    expect(d.plausibleIncarnation(nowS + 86_400)).toBe(true)
    expect(d.plausibleIncarnation(nowS + 86_401)).toBe(false)
    expect(d.onHeartbeat(hb('a', Number.MAX_SAFE_INTEGER, 1, 'left'))).toBeUndefined()
    expect(d.list()).toHaveLength(0)
    d.onHeartbeat(hb('a', 10, 1))
    expect(d.onHeartbeat(hb('a', nowS + 86_401, 1, 'left'))).toBeUndefined()
    d.onProbeSuccess('a', 1, Number.MAX_SAFE_INTEGER)
    expect(d.incarnation('a')).toBe(10)
    // its own next heartbeat still counts
    expect(d.onHeartbeat(hb('a', 10, 2, 'left'))).toMatchObject({ to: 'left' })
  })

  it('drops dead and left members from the table after the expiry, and takes them back on a heartbeat', () => {
    const e = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000, memberExpiryMs: 60_000 })
    e.onHeartbeat(hb('a', 10, 1))
    e.onHeartbeat(hb('b', 10, 1))
    e.onHeartbeat(hb('c', 10, 1))
    e.declareDead('a', 'test')
    e.onHeartbeat(hb('b', 10, 2, 'left'))
    vi.advanceTimersByTime(59_000)
    e.onHeartbeat(hb('c', 10, 2))
    expect(e.tick().expired).toEqual([])
    vi.advanceTimersByTime(1_000)
    e.onHeartbeat(hb('c', 10, 3))
    expect(e.tick().expired.map(v => [v.id, v.state]).sort()).toEqual([['a', 'dead'], ['b', 'left']])
    expect(e.list().map(v => v.id)).toEqual(['c'])
    expect(e.onHeartbeat(hb('a', 70, 1))).toMatchObject({ from: null, to: 'alive' })
  })

  it('keeps dead members for 24 hours by default', () => {
    d.onHeartbeat(hb('a', 10, 1))
    d.declareDead('a', 'test')
    vi.advanceTimersByTime(24 * 3_600_000 - 1)
    expect(d.tick().expired).toEqual([])
    vi.advanceTimersByTime(1)
    expect(d.tick().expired.map(v => v.id)).toEqual(['a'])
  })

  it('clears a suspicion when the peer answers a probe', () => {
    d.onHeartbeat(hb('a', 10, 1))
    d.suspect('a', 'missed heartbeats')
    expect(d.onProbeSuccess('a', 0.4)).toMatchObject({ from: 'suspect', to: 'alive', reason: 'answered a probe' })
    expect(d.get('a')?.rttMs).toBe(0.4)
  })

  it('keeps a bounded history of state changes, newest last', () => {
    const small = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000, historyLength: 3 })
    small.onHeartbeat(hb('a', 1, 1))
    for (let i = 0; i < 5; i++) {
      small.suspect('a', `s${i}`)
      small.onProbeSuccess('a', 1)
    }
    const h = small.get('a')?.history ?? []
    expect(h).toHaveLength(3)
    expect(h[2]).toMatchObject({ state: 'alive', reason: 'answered a probe' })
    expect(h[1]).toMatchObject({ state: 'suspect', reason: 's4' })
  })
})
