import { UsageError, requirePositionals, type Command } from '../command.ts'

/** How long the script waits for the daemon's node names or task ids: a shell's Tab must not hang. */
const VALUES_TIMEOUT_MS = 2_000
/** Task ids offered: the newest ones. */
const TASK_IDS_MAX = 50

export const completionCommand: Command = {
  name: 'completion',
  summary: 'Prints a shell completion script (bash, zsh or fish) for gridctl\'s commands, flags, node names and task, job and workflow ids.',
  usage: 'completion bash|zsh|fish',
  local: true,
  options: { values: { type: 'string' } },
  optionHelp: { values: 'print the live values of a kind (node, task, session, job, workflow), one per line, for the scripts' },
  async run (ctx, args) {
    // loaded here, not at start-up: only this command needs the generator (and the table it reads)
    const { LIVE_KINDS, SHELLS, commandSpecs } = await import('../completion.ts')
    if (typeof args.values.values === 'string') {
      requirePositionals(args, [])
      const kind = args.values.values
      if (!(LIVE_KINDS as readonly string[]).includes(kind)) throw new UsageError(`--values must be one of ${LIVE_KINDS.join(', ')}`)
      const { ApiClient } = await import('../client.ts')
      const client = new ApiClient({ socket: ctx.client.opts.socket, timeoutMs: VALUES_TIMEOUT_MS })
      const words = kind === 'node'
        ? (await client.get<Array<{ name: string }>>('/nodes', ctx.signal)).map(n => n.name)
        : kind === 'task'
          ? (await client.get<Array<{ id: string }>>(`/tasks?limit=${TASK_IDS_MAX}`, ctx.signal)).map(t => t.id)
          : kind === 'job' || kind === 'workflow'
            ? (await client.get<Array<{ id: string }>>(`/${kind}s?limit=${TASK_IDS_MAX}`, ctx.signal)).map(j => j.id)
            : (await client.get<Array<{ id: string }>>('/sessions', ctx.signal)).map(s => s.id)
      ctx.out.write(words.map(w => `${w}\n`).join(''))
      return 0
    }
    const [shell] = requirePositionals(args, ['SHELL']) as [string]
    if (!Object.hasOwn(SHELLS, shell)) throw new UsageError(`unknown shell "${shell}": bash, zsh or fish`)
    const { COMMANDS } = await import('./index.ts')
    const { VERSION } = await import('../../version.ts')
    ctx.out.write(SHELLS[shell as keyof typeof SHELLS](commandSpecs(COMMANDS), VERSION))
    return 0
  }
}
