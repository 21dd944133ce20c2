/**
 * The load report that heartbeats and placement read: the machine's figures (load average, memory) may be up to a
 * second old, but what the executor says is in use (running, queued, free slots) is current at every call, so a
 * burst of placements on this node sees each task it just took.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { LocalResources, type Usage } from '../../src/executor/resources.ts'

describe('the load report', () => {
  it('reports the executor usage as it is at each call, and the machine memory and load', () => {
    const r = new LocalResources({ logger: pino({ level: 'silent' }) }, { nvidiaSmi: '/nonexistent/nvidia-smi' })
    const u: Usage = { running: 0, queued: 0, slots: 4, freeSlots: 4, freeGpus: 0 }
    r.setUsageSource(() => ({ ...u }))
    const first = r.load()
    expect(first).toMatchObject({ running: 0, queued: 0, slots: 4, freeSlots: 4 })
    expect(first.memTotalMiB).toBeGreaterThan(0)
    expect(first.memFreeMiB).toBeGreaterThan(0)
    expect(first.memFreeMiB).toBeLessThanOrEqual(first.memTotalMiB)
    expect(first.cpu).toBeGreaterThanOrEqual(0)
    for (let i = 1; i <= 3; i++) {
      u.running = i
      u.freeSlots = 4 - i
      u.queued = i * 2
      expect(r.load()).toMatchObject({ running: i, freeSlots: 4 - i, queued: i * 2, memTotalMiB: first.memTotalMiB })
    }
  })
})
