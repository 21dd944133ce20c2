/** A node's health as every node shows it: its own gossiped verdict while it is alive, else unavailable. */
import type { HealthReport, MemberView } from '../interface/index.ts'

export function peerHealth (m: Pick<MemberView, 'state' | 'selfState' | 'since' | 'health'> | undefined, fallbackSince: number): HealthReport {
  if (m === undefined) return { health: 'unavailable', reason: 'not heard since this node started', since: fallbackSince, breaker: 'closed' }
  if (m.state !== 'alive' || m.selfState === 'leaving') {
    return { health: 'unavailable', reason: m.selfState === 'leaving' && m.state === 'alive' ? 'leaving' : `not alive (${m.state})`, since: m.since, breaker: m.health?.breaker ?? 'closed' }
  }
  // an older node sends no verdict: it is taken as healthy
  return m.health ?? { health: 'healthy', reason: 'no health reported (older version)', since: m.since, breaker: 'closed' }
}
