import type { DiscoverEntry } from '../../../proto/index.ts'
import { requirePositionals, type Command } from '../command.ts'
import { printList } from '../output.ts'

export const discoverCommand: Command = {
  name: 'discover',
  summary: 'Asks the DHT rendezvous now and lists who answered, with their addresses and whether each is a member and connected (to see why a node does not join).',
  usage: 'discover',
  async run (ctx, args) {
    requirePositionals(args, [])
    const rows = await ctx.client.get<DiscoverEntry[]>('/discover', ctx.signal)
    if (ctx.format === 'table' && rows.length === 0) { ctx.out.write('nobody answered: this node has no connection to ask through, or no other member provides the cluster\'s key yet\n'); return 0 }
    printList(ctx.out, ctx.format, rows, [
      { header: 'id', value: r => r.id },
      { header: 'member', value: r => r.member ? 'yes' : 'no' },
      { header: 'connected', value: r => r.connected ? 'yes' : 'no' },
      { header: 'source', value: r => r.source },
      { header: 'addrs', value: r => r.addrs }
    ])
    return 0
  }
}
