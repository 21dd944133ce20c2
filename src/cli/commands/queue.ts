import type { QueueEntry, QueuePauseEntry } from '../../../proto/index.ts'
import { UsageError, requirePositionals, type Command, type CommandContext, type ParsedArgs } from '../command.ts'
import { ago, printList } from '../output.ts'

const listColumns = [
  { header: 'task', value: (q: QueueEntry) => q.task },
  { header: 'node', value: (q: QueueEntry) => q.nodeName },
  { header: 'priority', value: (q: QueueEntry) => q.priority, right: true },
  { header: 'waiting', value: (q: QueueEntry) => ago(q.waitingMs), right: true }
]

async function list (ctx: CommandContext, args: ParsedArgs): Promise<number> {
  requirePositionals(args, [])
  const node = args.values.node
  const rows = await ctx.client.get<QueueEntry[]>(typeof node === 'string' ? `/queue?node=${encodeURIComponent(node)}` : '/queue', ctx.signal)
  printList(ctx.out, ctx.format, rows, listColumns)
  return 0
}

function pauseCommand (paused: boolean): Command {
  const verb = paused ? 'pause' : 'resume'
  return {
    name: verb,
    summary: paused
      ? 'Pauses a node\'s queue (or every alive node\'s, --all): it takes no new tasks and starts none of its queued ones; running ones go on.'
      : 'Resumes a paused node\'s queue (or every alive node\'s, --all).',
    usage: `queue ${verb} NODE | queue ${verb} --all`,
    options: { all: { type: 'boolean' } },
    optionHelp: { all: `${verb} every alive node's queue` },
    async run (ctx, args) {
      const all = args.values.all === true
      if (all && args.positionals.length > 0) throw new UsageError('give NODE or --all, not both')
      if (!all && args.positionals.length !== 1) throw new UsageError(args.positionals.length === 0 ? 'missing NODE (or --all)' : `unexpected argument ${args.positionals[1] ?? ''}`)
      const rows = await ctx.client.post<QueuePauseEntry[]>(`/queue/${verb}`, all ? { all: true } : { node: args.positionals[0] }, ctx.signal)
      printList(ctx.out, ctx.format, rows, [
        { header: 'name', value: r => r.name },
        { header: 'id', value: r => r.id },
        { header: 'paused', value: r => r.error === undefined ? (r.paused ? 'yes' : 'no') : `? (${r.error})` },
        { header: 'running', value: r => r.running, right: true },
        { header: 'queued', value: r => r.queued, right: true }
      ])
      return rows.some(r => r.error !== undefined) ? 1 : 0
    }
  }
}

const lsCommand: Command = {
  name: 'ls',
  summary: 'The tasks waiting in every alive node\'s queue, by node, with priority and wait time.',
  usage: 'queue ls [--node NODE]',
  options: { node: { type: 'string' } },
  optionHelp: { node: 'only this node\'s queue' },
  run: list
}

export const queueCommand: Command = {
  name: 'queue',
  summary: 'Queued tasks by node (ls), and pausing or resuming a node\'s queue.',
  usage: 'queue [ls] [--node NODE] | queue pause NODE|--all | queue resume NODE|--all',
  options: { node: { type: 'string' } },
  optionHelp: { node: 'only this node\'s queue' },
  subcommands: [lsCommand, pauseCommand(true), pauseCommand(false)],
  run: list
}
