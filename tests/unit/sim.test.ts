import { describe, expect, it } from 'vitest'
import { simulate } from '../../bench/sim/simulate.ts'

describe('simulator - the real membership on a virtual clock', () => {
  it('gives the same trace hash for the same seed, and another for another seed', async () => {
    const run = async (seed: number, simulatedMs = 120_000): Promise<string> => (await simulate({ nodes: 20, simulatedMs, seed, mode: 'safety', faultEveryMs: 8000 })).traceHash
    const a = await run(7)
    expect(await run(7)).toBe(a)
    expect(await run(8, 30_000)).not.toBe(await run(7, 30_000))
  })

  it('detects a powered-off node, on every clean node, without a false death', async () => {
    const r = await simulate({ nodes: 20, simulatedMs: 45_000, seed: 3, mode: 'safety', faultEveryMs: Infinity, script: [{ atMs: 15_000, kind: 'power', nodes: [4], forMs: 25_000 }] })
    expect(r.detection.samples).toBe(1)
    expect(r.detection.undetected).toBe(0)
    // declared dead by at least the other 19 (locally or by notice)
    expect(r.deaths).toBeGreaterThanOrEqual(19)
    expect(r.falseDeaths).toBe(0)
    expect(r.invariantViolations).toBe(0)
  })

  it('heals a partition: both sides find each other dead, then every view converges to everyone alive', async () => {
    const r = await simulate({ nodes: 20, simulatedMs: 90_000, seed: 5, mode: 'liveness', faultEveryMs: Infinity, script: [{ atMs: 12_000, kind: 'partition', nodes: [0, 1, 2, 3, 4], forMs: 60_000 }] })
    expect(r.deaths).toBeGreaterThanOrEqual(2 * 5 * 15)
    expect(r.convergeMs).not.toBeNull()
    expect(r.invariantViolations).toBe(0)
  })
})
