import type { HealthDetail, HealthEntry } from '../../../proto/index.ts'
import { UsageError, type Command } from '../command.ts'
import { ago, printList, printObject } from '../output.ts'

/** "healthy", or "degraded: why" (the reason cut for a table). */
export function healthText (h: { health: string, healthReason: string, paused?: boolean }, width = 60): string {
  const base = h.health === 'healthy' ? 'healthy' : `${h.health}: ${h.healthReason.length > width ? `${h.healthReason.slice(0, width - 3)}...` : h.healthReason}`
  return h.paused === true ? `${base} (paused)` : base
}

export const healthCommand: Command = {
  name: 'health',
  summary: 'Per node: state, health (healthy, degraded, unavailable) with its reason, heartbeat age, probe round trip, connection and recent state changes; with NODE, its last 100 probes and every state change.',
  usage: 'health [NODE]',
  async run (ctx, args) {
    if (args.positionals.length > 1) throw new UsageError(`unexpected argument ${args.positionals[1] ?? ''}`)
    const node = args.positionals[0]
    if (node !== undefined) {
      const d = await ctx.client.get<HealthDetail>(`/health/${encodeURIComponent(node)}`, ctx.signal)
      const ok = d.probes.filter(p => p.ok)
      const rtts = ok.map(p => p.rttMs ?? 0)
      printObject(ctx.out, ctx.format, [
        ['id', d.id],
        ['name', d.name],
        ['state', d.state],
        ['health', d.health],
        ['reason', d.healthReason],
        ['since', d.healthSince],
        ['breaker', d.breaker],
        ['paused', d.paused],
        ['heartbeat', ago(d.heartbeatAgeMs)],
        ['connected', d.connected],
        ['probes', d.probes.length === 0 ? '-' : `${d.probes.length} (${d.probes.length - ok.length} failed), rtt min/avg/max ${(rtts.length === 0 ? 0 : Math.min(...rtts)).toFixed(2)}/${(rtts.reduce((a, b) => a + b, 0) / Math.max(1, rtts.length)).toFixed(2)}/${Math.max(0, ...rtts).toFixed(2)} ms`],
        ['health changes', d.healthHistory.map(h => `${h.at} ${h.health} (${h.reason})`)],
        ['state changes', d.history.map(h => `${h.at} ${h.state} (${h.reason})`)]
      ], d)
      return 0
    }
    const rows = await ctx.client.get<HealthEntry[]>('/health', ctx.signal)
    printList(ctx.out, ctx.format, rows, [
      { header: 'name', value: h => h.self ? `${h.name} *` : h.name },
      { header: 'state', value: h => h.state },
      { header: 'health', value: h => healthText(h) },
      { header: 'since', value: h => h.healthSince.slice(11, 19) },
      { header: 'heartbeat', value: h => ago(h.heartbeatAgeMs), right: true },
      { header: 'rtt', value: h => h.rttMs === null ? '-' : `${h.rttMs.toFixed(2)}ms`, right: true },
      { header: 'connected', value: h => h.connected ? 'yes' : 'no' },
      { header: 'incarnation', value: h => h.incarnation, right: true },
      { header: 'recent', value: h => h.history.slice(-3).map(x => `${x.at.slice(11, 19)} ${x.state} (${x.reason})`).join('; ') }
    ])
    return 0
  }
}
