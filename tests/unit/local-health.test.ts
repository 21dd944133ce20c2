import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FailureDetector } from '../../src/membership/index.ts'
import { LocalHealth } from '../../src/membership/local-health.ts'
import { FixedLag, memoryLogger } from './membership-stubs.ts'

const INTERVAL_MS = 1000

describe('membership - local health', () => {
  let detector: FailureDetector
  let lag: FixedLag
  let health: LocalHealth
  let lines: ReturnType<typeof memoryLogger>['lines']

  beforeEach(() => {
    vi.useFakeTimers()
    detector = new FailureDetector('self', { heartbeatIntervalMs: 1000, suspectAfterMissed: 3, suspicionTimeoutMs: 4000 })
    lag = new FixedLag()
    const log = memoryLogger()
    lines = log.lines
    health = new LocalHealth({ logger: log.logger, detector, eventLoopLag: lag }, { intervalMs: INTERVAL_MS })
  })
  afterEach(() => {
    health.stop()
    vi.useRealTimers()
  })

  it('keeps deadlines as configured while the event loop keeps up', () => {
    health.start()
    expect(lag.enabled).toBe(true)
    lag.ms = 150 // under the 200 ms threshold
    for (let i = 0; i < 5; i++) health.assess()
    expect(health.multiplier).toBe(1)
    expect(detector.suspectAfterMs).toBe(3000)
    expect(detector.suspicionTimeoutMs).toBe(4000)
  })

  it('stretches the detector deadlines while the event loop lags, and says so once', async () => {
    health.start()
    lag.ms = 350
    await vi.advanceTimersByTimeAsync(INTERVAL_MS * 1.1)
    expect(health.multiplier).toBe(2)
    expect(detector.suspectAfterMs).toBe(6000)
    expect(detector.suspicionTimeoutMs).toBe(8000)
    await vi.advanceTimersByTimeAsync(INTERVAL_MS * 1.1)
    expect(health.multiplier).toBe(3)
    const warnings = lines.filter(l => l.msg.startsWith('this node is slow'))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ multiplier: 2, why: 'event loop lag p99 350ms' })
  })

  it('stretches at most nine times however long the lag lasts', () => {
    lag.ms = 5000
    for (let i = 0; i < 20; i++) health.assess()
    expect(health.multiplier).toBe(9)
    expect(detector.suspectAfterMs).toBe(27_000)
  })

  it('recovers one step per interval that keeps up, back to the configured deadlines', () => {
    lag.ms = 400
    for (let i = 0; i < 3; i++) health.assess()
    expect(health.multiplier).toBe(4)
    lag.ms = 5
    health.assess()
    expect(health.multiplier).toBe(3)
    health.assess()
    health.assess()
    expect(health.multiplier).toBe(1)
    expect(detector.suspectAfterMs).toBe(3000)
    expect(lines.filter(l => l.msg.startsWith('this node keeps up again'))).toHaveLength(1)
    health.assess()
    expect(health.multiplier).toBe(1)
  })

  it('treats being suspected as a sign of slowness', () => {
    health.raise('suspected by peer-b')
    expect(health.multiplier).toBe(2)
    expect(detector.suspicionTimeoutMs).toBe(8000)
    expect(lines.find(l => l.msg.startsWith('this node is slow'))).toMatchObject({ why: 'suspected by peer-b' })
  })

  it('stops reading the event loop when stopped', async () => {
    health.start()
    health.stop()
    expect(lag.enabled).toBe(false)
    lag.ms = 1000
    await vi.advanceTimersByTimeAsync(INTERVAL_MS * 3)
    expect(health.multiplier).toBe(1)
  })

  it('keeps when the event loop last stalled (the start fence reads it: one sampler)', () => {
    const stalls = new LocalHealth({ logger: memoryLogger().logger, detector, eventLoopLag: Object.assign(lag, { max: 0, maxMs () { return this.max } }) }, { intervalMs: INTERVAL_MS })
    expect(stalls.lastStallAt).toBe(-Infinity)
    lag.ms = 150
    stalls.assess()
    expect(stalls.lastStallAt).toBe(-Infinity)
    // one delay of 1.5 s in the interval: a stall, though the p99 stays low
    ;(lag as FixedLag & { max: number }).max = 1_500
    const before = performance.now()
    stalls.assess()
    expect(stalls.lastStallAt).toBeGreaterThanOrEqual(before)
  })
})
