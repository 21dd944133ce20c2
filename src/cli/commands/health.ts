import type { HealthEntry } from '../../../proto/index.ts'
import { requirePositionals, type Command } from '../command.ts'
import { ago, printList } from '../output.ts'

export const healthCommand: Command = {
  name: 'health',
  summary: 'Per node: state, heartbeat age, probe round trip, connection and recent state changes.',
  usage: 'health',
  async run (ctx, args) {
    requirePositionals(args, [])
    const rows = await ctx.client.get<HealthEntry[]>('/health', ctx.signal)
    printList(ctx.out, ctx.format, rows, [
      { header: 'name', value: h => h.self ? `${h.name} *` : h.name },
      { header: 'state', value: h => h.state },
      { header: 'heartbeat', value: h => ago(h.heartbeatAgeMs), right: true },
      { header: 'rtt', value: h => h.rttMs === null ? '-' : `${h.rttMs.toFixed(2)}ms`, right: true },
      { header: 'connected', value: h => h.connected ? 'yes' : 'no' },
      { header: 'incarnation', value: h => h.incarnation, right: true },
      { header: 'recent', value: h => h.history.slice(-3).map(x => `${x.at.slice(11, 19)} ${x.state} (${x.reason})`).join('; ') }
    ])
    return 0
  }
}
