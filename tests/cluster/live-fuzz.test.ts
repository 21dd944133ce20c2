import { describe, expect, it } from 'vitest'
import { runLiveFuzz } from '../helpers/live-fuzz-run.ts'

/**
 * Issue 13 (proof under fire), the live fuzzer: a key holder attacks n1 on every peer protocol (malformed, oversized,
 * truncated, replayed and out-of-order RPC frames, streams until refused, garbage on kad-dht, gossipsub, ping and
 * identify, malformed gossip) and floods its control socket with bad requests, taking a new identity each time it is
 * banned, while valid tasks keep going between n1 and n2. `npm run fuzz:live -- --duration 5m` is the long form.
 */
describe('live fuzz - a daemon under a key holder\'s attack', () => {
  it('stays up and within 1.5x its memory, keeps running valid tasks, and bans the attacker', async () => {
    const r = await runLiveFuzz({ durationMs: 25_000, seed: 13 })
    console.log(`live fuzz: ${JSON.stringify({ ...r, rssRatio: Number((r.peakRssBytes / r.baselineRssBytes).toFixed(2)) })}`)
    expect(r.up).toEqual(['n1', 'n2'])
    expect(r.taskFailures).toEqual([])
    expect(r.tasksCompleted).toBeGreaterThanOrEqual(3)
    expect(r.peakRssBytes).toBeLessThan(1.5 * r.baselineRssBytes)
    // every bad control request is answered as the client's fault (or left to its deadline), never as a crash
    expect(Object.keys(r.stats.httpStatus).filter(s => s.startsWith('5') && s !== '503')).toEqual([])
    expect(r.stats.http).toBeGreaterThan(20)
    expect(r.invalidFrames).toBeGreaterThan(0)
    // the misbehaving identity is disconnected and refused when it dials again; gossip scored it down first
    expect(r.bans).toBeGreaterThanOrEqual(1)
    expect(r.stats.banned).toBeGreaterThanOrEqual(1)
    expect(r.firstIdentityRefused).toBe(true)
  }, 180_000)
})
