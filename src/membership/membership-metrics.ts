/**
 * Membership's metrics, registered on the injected registry. Series that count events exist from the start (at 0), so
 * rates and dashboards work before the first event.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { MEMBER_STATES, type MemberView, type NodeId } from '../interface/index.ts'

export interface MembershipMetrics {
  heartbeatsSent: Counter
  heartbeatsReceived: Counter
  invalid: Counter
  refused: Counter<'reason'>
  expired: Counter
  suspicions: Counter<'source'>
  deaths: Counter<'source'>
  refutations: Counter
  probes: Counter<'kind' | 'outcome'>
  probeRtt: Histogram
  transitions: Counter<'to'>
  localHealth: Gauge
}

/** What the gauges read when scraped. */
export interface MembershipMetricsSources {
  self: { id: NodeId, name: string }
  peers: () => MemberView[]
  localHealth: () => number
}

export function createMembershipMetrics (registry: Registry, sources: MembershipMetricsSources): MembershipMetrics {
  const r = registry
  new Gauge({
    name: 'grid_membership_peers',
    help: 'Known peers by state (this node not included)',
    labelNames: ['state'],
    registers: [r],
    collect () {
      const counts = Object.fromEntries(MEMBER_STATES.map(s => [s, 0])) as Record<string, number>
      for (const v of sources.peers()) counts[v.state] = (counts[v.state] ?? 0) + 1
      for (const s of MEMBER_STATES) this.set({ state: s }, counts[s] ?? 0)
    }
  })
  new Gauge({
    name: 'grid_node_health_score',
    help: 'Health of each known node as this node sees it: 1 alive, 0.5 suspect, 0 dead or left (this node included)',
    labelNames: ['peer', 'peer_id'],
    registers: [r],
    collect () {
      this.reset()
      this.set({ peer: sources.self.name, peer_id: sources.self.id }, 1)
      for (const v of sources.peers()) this.set({ peer: v.name, peer_id: v.id }, v.state === 'alive' ? 1 : v.state === 'suspect' ? 0.5 : 0)
    }
  })
  const m: MembershipMetrics = {
    heartbeatsSent: new Counter({ name: 'grid_membership_heartbeats_sent_total', help: 'Heartbeats published', registers: [r] }),
    heartbeatsReceived: new Counter({ name: 'grid_membership_heartbeats_received_total', help: 'Heartbeats received from peers', registers: [r] }),
    invalid: new Counter({ name: 'grid_membership_invalid_messages_total', help: 'Membership messages dropped as invalid', registers: [r] }),
    refused: new Counter({ name: 'grid_membership_messages_refused_total', help: 'Well-formed membership messages not used, by reason (not-author: speaks for another node than its signer; unknown-author: signer neither connected nor registered; incarnation-ahead: beyond this node\'s clock plus a day)', labelNames: ['reason'], registers: [r] }),
    expired: new Counter({ name: 'grid_membership_members_expired_total', help: 'Dead or left members dropped from the member table after membership.deadMemberExpiry', registers: [r] }),
    suspicions: new Counter({ name: 'grid_membership_suspicions_total', help: 'Peers this node began to suspect, by source (local: its own evidence; notice: another member)', labelNames: ['source'], registers: [r] }),
    deaths: new Counter({ name: 'grid_membership_deaths_total', help: 'Peers this node marked dead, by source', labelNames: ['source'], registers: [r] }),
    refutations: new Counter({ name: 'grid_membership_refutations_total', help: 'Suspicions or death notices about this node that it refuted', registers: [r] }),
    probes: new Counter({ name: 'grid_membership_probes_total', help: 'Probes sent, by kind (direct, indirect) and outcome', labelNames: ['kind', 'outcome'], registers: [r] }),
    probeRtt: new Histogram({ name: 'grid_membership_probe_rtt_seconds', help: 'Round trip of successful direct probes', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: [r] }),
    localHealth: new Gauge({ name: 'grid_membership_local_health', help: 'How much this node stretches its failure-detection deadlines because it is itself slow (1 = keeps up; Lifeguard local health)', registers: [r], collect () { this.set(sources.localHealth()) } }),
    transitions: new Counter({ name: 'grid_membership_transitions_total', help: 'Membership state changes seen by this node, by new state', labelNames: ['to'], registers: [r] })
  }
  for (const source of ['local', 'notice']) { m.suspicions.inc({ source }, 0); m.deaths.inc({ source }, 0) }
  for (const to of MEMBER_STATES) m.transitions.inc({ to }, 0)
  for (const reason of ['not-author', 'unknown-author', 'incarnation-ahead']) m.refused.inc({ reason }, 0)
  return m
}
