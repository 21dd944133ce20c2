import type { RebalanceEntry } from '../../../proto/index.ts'
import { requirePositionals, type Command } from '../command.ts'
import { printList } from '../output.ts'

export const rebalanceCommand: Command = {
  name: 'rebalance',
  summary: 'Moves queued tasks to nodes with room now (work stealing at once) and prints what moved where; --dry-run only says what would.',
  usage: 'rebalance [--dry-run]',
  options: { 'dry-run': { type: 'boolean' } },
  optionHelp: { 'dry-run': 'move nothing: print what would move' },
  async run (ctx, args) {
    requirePositionals(args, [])
    const rows = await ctx.client.post<RebalanceEntry[]>('/rebalance', { dryRun: args.values['dry-run'] === true }, ctx.signal)
    if (ctx.format === 'table' && rows.length === 0) { ctx.out.write('nothing to move: no queued task that a node with room could run\n'); return 0 }
    printList(ctx.out, ctx.format, rows, [
      { header: 'task', value: r => r.task },
      { header: 'from', value: r => r.fromName },
      { header: 'to', value: r => r.toName },
      { header: 'priority', value: r => r.priority, right: true }
    ])
    return 0
  }
}
