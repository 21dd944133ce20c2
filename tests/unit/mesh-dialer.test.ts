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
}

/** A network of stubs: `answer` decides each dial after `takesMs` (true: it connects). */
function stub (answer: (target: string) => boolean, takesMs = 50): Stub {
  const t0 = Date.now()
  const dials = new Map<string, number[]>()
  const connected = new Set<string>()
  const dial = async (target: string): Promise<void> => {
    dials.set(target, [...(dials.get(target) ?? []), Date.now() - t0])
    await new Promise(resolve => setTimeout(resolve, takesMs))
    if (!answer(target)) throw new Error('connect ECONNREFUSED')
    connected.add(target)
  }
  const c: DialerComponents = {
    log,
    dialPeer: async peer => { await dial(peer) },
    dialAddr: async addr => { await dial(addr.toString()); return 'boot' },
    connectionCount: () => connected.size,
    isConnected: peer => connected.has(peer),
    rememberAddrs: () => {},
    counted: () => {},
    explain: err => (err as Error).message
  }
  return { c, dials, connected }
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
})
