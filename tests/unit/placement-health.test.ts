import { describe, expect, it } from 'vitest'
import pino from 'pino'
import { CircuitBreaker, NodeHealthMonitor, peerHealth } from '../../src/health/index.ts'
import { route, type Candidate, type Requirements, type RouteContext } from '../../src/routing/index.ts'
import { parseGpuCsv } from '../../src/executor/gpus.ts'

function clock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: ms => { t += ms } }
}

describe('health - circuit breaker', () => {
  it('opens after the consecutive failures, turns half-open after the cool-down, and a trial success closes it', () => {
    const c = clock()
    const b = new CircuitBreaker({ ejectAfterFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000 }, c.now)
    for (let i = 0; i < 4; i++) b.failure('fork failed')
    expect(b.state).toBe('closed')
    b.failure('fork failed')
    expect(b.state).toBe('open')
    expect(b.reopensAt - c.now()).toBe(30_000)
    c.advance(29_999)
    expect(b.state).toBe('open')
    c.advance(1)
    expect(b.state).toBe('half-open')
    expect(b.tryTrial()).toBe(true)
    expect(b.tryTrial()).toBe(false)
    b.success()
    expect(b.state).toBe('closed')
    expect(b.tryTrial()).toBe(true)
  })

  it('a success in between starts the count again: only consecutive failures open it', () => {
    const b = new CircuitBreaker({ ejectAfterFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 10_000 })
    b.failure('x'); b.failure('x'); b.success(); b.failure('x'); b.failure('x')
    expect(b.state).toBe('closed')
    b.failure('x')
    expect(b.state).toBe('open')
  })

  it('a failed trial opens it again for a longer cool-down, growing with each ejection up to the cap', () => {
    const c = clock()
    const b = new CircuitBreaker({ ejectAfterFailures: 1, baseEjectionMs: 30_000, maxEjectionMs: 80_000 }, c.now)
    b.failure('x')
    c.advance(30_000)
    expect(b.state).toBe('half-open')
    b.failure('x')
    expect(b.state).toBe('open')
    expect(b.reopensAt - c.now()).toBe(60_000)
    c.advance(60_000)
    b.failure('x')
    expect(b.reopensAt - c.now()).toBe(80_000)
  })

  it('stays closed when the cluster cannot spare another ejected node', () => {
    const b = new CircuitBreaker({ ejectAfterFailures: 2, baseEjectionMs: 1000, maxEjectionMs: 10_000 })
    for (let i = 0; i < 10; i++) b.failure('x', () => false)
    expect(b.state).toBe('closed')
    b.failure('x', () => true)
    expect(b.state).toBe('open')
  })
})

describe('health - a node\'s verdict on itself', () => {
  const logger = pino({ level: 'silent' })
  function monitor (over: Partial<ConstructorParameters<typeof NodeHealthMonitor>[0]> = {}, c = clock()): NodeHealthMonitor {
    return new NodeHealthMonitor({ logger, gpuProblem: () => null, cannotRun: () => null, slowSince: () => 0, peers: () => [], diskFree: () => 0.5, now: c.now, ...over }, { dataDir: '/', ejectAfterFailures: 2, baseEjectionMs: 1000, maxEjectedPercent: 50, diskFreeMinPercent: 5 })
  }

  it('is degraded with a reason that says why: lost GPUs, a nearly full disk, a long-lagging loop, an open breaker', () => {
    expect(monitor().report()).toMatchObject({ health: 'healthy', breaker: 'closed' })
    expect(monitor({ gpuProblem: () => 'nvidia-smi failed' }).report()).toMatchObject({ health: 'degraded', reason: expect.stringContaining('GPUs lost: nvidia-smi failed') })
    expect(monitor({ diskFree: () => 0.01 }).report()).toMatchObject({ health: 'degraded', reason: expect.stringContaining('disk nearly full (1.0 % free') })
    const c = clock()
    expect(monitor({ slowSince: () => c.now() - 60_000 }, c).report()).toMatchObject({ health: 'degraded', reason: expect.stringContaining('event loop lagging for 60 s') })
    const m = monitor()
    m.dispatchFailed('fork failed: EAGAIN'); m.dispatchFailed('fork failed: EAGAIN')
    expect(m.report()).toMatchObject({ health: 'degraded', breaker: 'open', reason: expect.stringContaining('last: fork failed: EAGAIN') })
    expect(monitor({ cannotRun: () => 'its task spawner is not running' }).report()).toMatchObject({ health: 'unavailable' })
  })

  it('recovers after the cool-down once a trial dispatch succeeds, and keeps the changes with since', () => {
    const c = clock()
    const m = monitor({}, c)
    m.report()
    m.dispatchFailed('x'); m.dispatchFailed('x')
    const opened = m.report()
    expect(opened.since).toBe(c.now())
    c.advance(1000)
    expect(m.report()).toMatchObject({ health: 'healthy', breaker: 'half-open' })
    expect(m.admitTrial()).toBe(true)
    expect(m.admitTrial()).toBe(false)
    m.dispatched()
    expect(m.report()).toMatchObject({ health: 'healthy', breaker: 'closed' })
    expect(m.history().map(h => h.health)).toEqual(['degraded', 'healthy'])
  })

  it('never ejects more than the bounded share of the alive nodes', () => {
    const m = monitor({ peers: () => [{ alive: true, health: 'degraded' }, { alive: true, health: 'healthy' }, { alive: true, health: 'healthy' }] })
    m.dispatchFailed('x'); m.dispatchFailed('x')
    // 4 nodes at 50 %: 2 may be ejected, 1 already is
    expect(m.report().breaker).toBe('open')
    const n = monitor({ peers: () => [{ alive: true, health: 'degraded' }, { alive: true, health: 'healthy' }] })
    n.dispatchFailed('x'); n.dispatchFailed('x'); n.dispatchFailed('x')
    // 3 nodes at 50 %: 1 may be, and it is taken
    expect(n.report()).toMatchObject({ health: 'healthy', breaker: 'closed' })
  })

  it('a peer is unavailable when not alive, else what its heartbeat says; one that says nothing is healthy', () => {
    expect(peerHealth({ state: 'dead', selfState: 'alive', since: 5 }, 0)).toMatchObject({ health: 'unavailable', reason: 'not alive (dead)' })
    expect(peerHealth({ state: 'alive', selfState: 'alive', since: 5, health: { health: 'degraded', reason: 'r', since: 3, breaker: 'open' } }, 0)).toMatchObject({ health: 'degraded', since: 3 })
    expect(peerHealth({ state: 'alive', selfState: 'alive', since: 5 }, 0)).toMatchObject({ health: 'healthy' })
  })
})

describe('health - GPUs nvidia-smi reports lost', () => {
  it('marks a GPU whose fields say it fell off the bus', () => {
    const gpus = parseGpuCsv('0, GPU-a, NVIDIA H100, [GPU is lost], [GPU is lost], [GPU is lost]\n1, GPU-b, NVIDIA H100, 81559, 0, 0\n')
    expect(gpus.map(g => [g.uuid, g.lost === true])).toEqual([['GPU-a', true], ['GPU-b', false]])
  })
})

function node (id: string, over: Partial<Candidate> = {}): Candidate {
  return {
    id, name: id, alive: true, draining: false, region: 'eu', labels: {}, capabilities: [], types: [],
    slots: 4, gpus: 0, memoryMiB: 16384, freeSlots: 4, freeGpus: 0, memFreeMiB: 16000, running: 0, queued: 0, ...over
  }
}
function req (over: Partial<Requirements> = {}): Requirements {
  return { cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, strategy: 'least-loaded', ...over }
}
function ctx (): RouteContext {
  return { origin: { id: 'a', region: 'eu' }, recentlySent: () => 0, random: () => 0.3, turn: 0 }
}

describe('routing - health and paused queues', () => {
  it('ranks a degraded node after every healthy one, even when it is the idlest', () => {
    const nodes = [node('sick', { health: 'degraded', healthReason: 'GPUs lost' }), node('busy', { freeSlots: 0, running: 4 }), node('ok', { freeSlots: 1, running: 3 })]
    for (const strategy of ['least-loaded', 'round-robin', 'random', 'capability', 'region'] as const) {
      const r = route(nodes, req({ strategy }), ctx())
      expect(r.ok && r.candidates.at(-1)).toBe('sick')
    }
  })

  it('uses a degraded node when it is the only one that fits', () => {
    const nodes = [node('sick', { health: 'degraded', capabilities: ['cuda'] }), node('ok')]
    expect(route(nodes, req({ require: ['cuda'] }), ctx())).toMatchObject({ ok: true, candidates: ['sick'] })
  })

  it('passes by paused and unavailable nodes, and waits for them (saying so) when only they fit', () => {
    const nodes = [node('p', { paused: true }), node('u', { health: 'unavailable', healthReason: 'its task spawner is not running' }), node('ok')]
    expect(route(nodes, req(), ctx())).toMatchObject({ ok: true, candidates: ['ok'], passed: [{ name: 'p', reason: 'paused' }, { name: 'u', reason: 'unavailable: its task spawner is not running' }] })
    expect(route([nodes[0] as Candidate], req(), ctx())).toEqual({ ok: false, wait: true, reason: 'the only node that can run it, p, is paused' })
    expect(route([nodes[1] as Candidate], req(), ctx())).toMatchObject({ ok: false, wait: true, reason: expect.stringContaining('unavailable (its task spawner is not running)') })
    expect(route(nodes, req({ node: 'p' }), ctx())).toEqual({ ok: false, wait: true, reason: 'node p is paused' })
  })

  it('moves a session away from a degraded owner while a healthy node fits', () => {
    const nodes = [node('owner', { health: 'degraded', healthReason: 'disk nearly full' }), node('ok')]
    expect(route(nodes, req({ strategy: 'affinity' }), { ...ctx(), sessionOwner: 'owner' })).toMatchObject({
      ok: true, candidates: ['ok', 'owner'], session: { ownerFirst: false, reason: 'unfit', message: 'its owner owner is degraded (disk nearly full)' }
    })
  })
})
