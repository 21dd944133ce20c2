import type { Command } from '../command.ts'
import { UsageError } from '../command.ts'
import { printList } from '../output.ts'

export const joinCommand: Command = {
  name: 'join',
  summary: 'Connects this node to members at the given multiaddrs now (to join a cluster, or to merge two halves).',
  usage: 'join MULTIADDR...',
  async run (ctx, args) {
    if (args.positionals.length === 0) throw new UsageError('missing MULTIADDR')
    const r = await ctx.client.post<{ connected: string[], failed: Array<{ addr: string, error: string }> }>('/join', { addrs: args.positionals }, ctx.signal)
    const rows = [...r.connected.map(p => ({ target: p, result: 'connected' })), ...r.failed.map(f => ({ target: f.addr, result: `failed: ${f.error}` }))]
    printList(ctx.out, ctx.format, rows, [{ header: 'target', value: x => x.target }, { header: 'result', value: x => x.result }], r)
    return r.connected.length > 0 ? 0 : 1
  }
}
