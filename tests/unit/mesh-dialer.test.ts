import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Dialer, type DialerComponents } from '../../src/mesh/dialer.ts'

const log = pino({ level: 'silent' })

interface Stub {
  c: DialerComponents
  /** when each peer (or address) was dialled, ms since the start */
  dials: Map<string, number[]>
  connected: Set<string>
  /** when each connection opened (epoch ms), and the peers hung up on */
  openedAt: Map<string, number>
  hungUp: string[]
  busy: Set<string>
}

/** A network of stubs: `answer` decides each dial after `takesMs` (true: it connects). */
function stub (answer: (target: string) => boolean, takesMs = 50): Stub {
  const t0 = Date.now()
  const dials = new Map<string, number[]>()
  const connected = new Set<string>()
  const openedAt = new Map<string, number>()
  const hungUp: string[] = []
  const busy = new Set<string>()
  const dial = async (target: string): Promise<void> => {
    dials.set(target, [...(dials.get(target) ?? []), Date.now() - t0])
    await new Promise(resolve => setTimeout(resolve, takesMs))
    if (!answer(target)) throw new Error('connect ECONNREFUSED')
    connected.add(target)
    openedAt.set(target, Date.now())
  }
  const c: DialerComponents = {
    log,
    dialPeer: async peer => { await dial(peer) },
    dialAddr: async addr => { await dial(addr.toString()); return 'boot' },
    connectionCount: () => connected.size,
    isConnected: peer => connected.has(peer),
    connections: async () => [...connected].map(peer => ({ peer, openedAt: openedAt.get(peer) ?? 0, keepAlive: peer.startsWith('keep') })),
    busy: peer => busy.has(peer),
    trim: async peer => { hungUp.push(peer); connected.delete(peer) },
    rememberAddrs: () => {},
    counted: () => {},
    explain: err => (err as Error).message
  }
  return { c, dials, connected, openedAt, hungUp, busy }
}

const init = { bootstrap: [], maxConnections: 200, dialConcurrency: 1, rendezvousIntervalMs: 10_000 }

describe('mesh - the dial loop', () => {
  let dialer: Dialer | undefined
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { dialer?.stop(); vi.useRealTimers() })

  it('dials the next known peer as soon as a dial slot frees, not at the loop\'s next pass', async () => {
    const s = stub(() => true)
    dialer = new Dialer(s.c, init)
    dialer.start()
    // a joining node learns every member from the registry at once; it dials one at a time here (concurrency 1)
    for (const p of ['a', 'b', 'c', 'd']) dialer.learn(p, [], {})
    await vi.advanceTimersByTimeAsync(900)
    // four dials of 50 ms each, after at most 0.4 s of jitter: all done before the loop's second pass (1 s)
    expect([...s.connected].sort()).toEqual(['a', 'b', 'c', 'd'])
  })

  it('redials a member that refuses at most 2 s apart while the node is in its first minute', async () => {
    let up = false
    const s = stub(() => up)
    dialer = new Dialer(s.c, init)
    dialer.start()
    dialer.learn('a', [], {})
    await vi.advanceTimersByTimeAsync(30_000)
    const at = s.dials.get('a') ?? []
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number))
    expect(at.length).toBeGreaterThan(12)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(2_000 + 50 + 10)
    // it comes up (a whole cluster restarting): connected within a redial
    up = true
    await vi.advanceTimersByTimeAsync(2_100)
    expect(s.connected.has('a')).toBe(true)
  })

  it('redials its bootstrap address at most 2 s apart while alone in its first minute', async () => {
    const boot = multiaddr('/ip4/127.0.0.1/tcp/4001')
    const s = stub(() => false, 5)
    dialer = new Dialer(s.c, { ...init, bootstrap: [boot] })
    dialer.start()
    await vi.advanceTimersByTimeAsync(40_000)
    const at = s.dials.get(boot.toString()) ?? []
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number))
    // before: 1, 2, 4, 8, 16 s apart (a backoff to 30 s), so a bootstrap peer that restarted late was found late
    expect(at.length).toBeGreaterThan(15)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(2_000 + 1_000 + 10)
  })

  it('backs off a member that keeps refusing once the node is past its first minute', async () => {
    const s = stub(() => false, 5)
    dialer = new Dialer(s.c, init)
    dialer.start()
    await vi.advanceTimersByTimeAsync(61_000)
    dialer.learn('a', [], {})
    await vi.advanceTimersByTimeAsync(120_000)
    const at = s.dials.get('a') ?? []
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number))
    expect(Math.max(...gaps)).toBeGreaterThan(8_000)
    expect(at.length).toBeLessThan(15)
  })

  it('keeps dialling a bootstrap peer that was forgotten', async () => {
    const s = stub(() => false, 5)
    dialer = new Dialer(s.c, init)
    dialer.start()
    dialer.learn('boot', [], { pinned: true })
    dialer.learn('other', [], {})
    dialer.forget('boot')
    dialer.forget('other')
    s.dials.clear()
    await vi.advanceTimersByTimeAsync(5_000)
    expect(s.dials.has('boot')).toBe(true)
    expect(s.dials.has('other')).toBe(false)
  })

  /** A node with a cap of 10 that learns `members` members, all answering, after 5 s. */
  async function learnMembers (members: number): Promise<{ s: Stub, d: Dialer }> {
    const s = stub(() => true, 5)
    const d = dialer = new Dialer(s.c, { ...init, maxConnections: 10, dialConcurrency: 4 })
    d.start()
    for (let i = 0; i < members; i++) d.learn(`p${i}`, [], {})
    await vi.advanceTimersByTimeAsync(5_000)
    return { s, d }
  }

  it('dials every member up to the cap (all connected to all)', async () => {
    const { s } = await learnMembers(10)
    expect(s.connected.size).toBe(10)
  })

  it('dials to the cap less its slack when it knows more members than the cap, so a trim does not start a dial', async () => {
    const { s, d } = await learnMembers(15)
    expect(s.connected.size).toBe(9)
    // a newcomer dials in (it is at the cap), then a peer trims its connection to this node: one short, no dial
    s.connected.add('newcomer'); d.connected('newcomer')
    s.dials.clear()
    s.connected.delete('p0')
    d.disconnected('p0')
    await vi.advanceTimersByTimeAsync(5_000)
    expect(s.dials.size).toBe(0)
  })

  it('neither takes a trimmed connection for a loss nor redials that peer for 5 minutes', async () => {
    const s = stub(() => true, 5)
    dialer = new Dialer(s.c, { ...init, maxConnections: 10 })
    dialer.start()
    dialer.learn('a', [], {})
    await vi.advanceTimersByTimeAsync(1_000)
    expect(s.connected.has('a')).toBe(true)
    // a at its cap says it trims our connection, then closes it
    dialer.trimmedBy('a')
    s.connected.delete('a'); dialer.disconnected('a')
    expect(dialer.closedOnPurpose('a')).toBe(true)
    s.dials.clear()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(dialer.closedOnPurpose('a')).toBe(false)
    expect(s.dials.has('a')).toBe(false)
    // a plain loss of another peer is redialled within the second, as before
    dialer.learn('b', [], {})
    await vi.advanceTimersByTimeAsync(1_000)
    s.connected.delete('b'); dialer.disconnected('b')
    await vi.advanceTimersByTimeAsync(2_000)
    expect(s.connected.has('b')).toBe(true)
    await vi.advanceTimersByTimeAsync(240_000)
    expect(s.connected.has('a')).toBe(true)
  })

  it('trims back to the cap: connections past the grace, with nothing in flight, never to a bootstrap peer', async () => {
    const s = stub(() => true, 5)
    dialer = new Dialer(s.c, { ...init, maxConnections: 4 })
    dialer.start()
    dialer.learn('boot', [], { pinned: true })
    // eight connections (newcomers dialled in past the cap): boot, two busy, one libp2p keeps alive, two new, two old
    const now = Date.now()
    for (const [peer, age] of [['boot', 60_000], ['busy1', 60_000], ['busy2', 60_000], ['keep1', 60_000], ['new1', 1_000], ['new2', 1_000], ['old1', 60_000], ['old2', 60_000]] as const) {
      s.connected.add(peer); s.openedAt.set(peer, now - age); dialer.connected(peer)
    }
    s.busy.add('busy1'); s.busy.add('busy2')
    await vi.advanceTimersByTimeAsync(1_100)
    expect([...s.hungUp].sort()).toEqual(['old1', 'old2'])
    // the two new ones go once they are past the grace (10 s), at the next trim pass (every 5 s), still over the cap
    await vi.advanceTimersByTimeAsync(15_000)
    expect(s.hungUp).toHaveLength(4)
    expect(s.connected.size).toBe(4)
    expect(s.connected.has('boot') && s.connected.has('keep1')).toBe(true)
    expect(s.connected.has('busy1') && s.connected.has('busy2')).toBe(true)
  })
})
