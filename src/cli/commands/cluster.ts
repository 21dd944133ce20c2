import { parseDuration } from '../../interface/index.ts'
import { UsageError, type Command } from '../command.ts'
import { printList } from '../output.ts'
import { SSH_OPTIONS, SSH_OPTION_HELP, printReport, runOptions } from './deploy.ts'

const status: Command = {
  name: 'status',
  summary: 'Per host: installed version, whether gridd runs, its state and how many nodes it sees alive. Exits 1 unless every host runs.',
  usage: 'cluster status -i INVENTORY [--service-manager systemd|none]',
  local: true,
  options: SSH_OPTIONS,
  optionHelp: SSH_OPTION_HELP,
  async run (ctx, args) {
    const started = Date.now()
    const opts = await runOptions(ctx, args)
    const d = await import('../../deploy/index.ts')
    const rows = await d.clusterStatus(opts)
    printList(ctx.out, ctx.format, rows, d.STATUS_COLUMNS)
    ctx.err.write(`${d.summary(rows, Date.now() - started)}\n`)
    if (ctx.signal.aborted) return 130
    return rows.every(r => r.error === null && r.running) ? 0 : 1
  }
}

function action (name: 'start' | 'stop' | 'restart', summary: string): Command {
  const restart = name === 'restart'
  return {
    name,
    summary,
    usage: `cluster ${name} -i INVENTORY [--service-manager systemd|none]${restart ? ' [--rolling [--drain-timeout D]]' : ''}`,
    local: true,
    options: restart ? { ...SSH_OPTIONS, rolling: { type: 'boolean' }, 'drain-timeout': { type: 'string' } } : SSH_OPTIONS,
    optionHelp: restart
      ? { ...SSH_OPTION_HELP, rolling: 'one host at a time: gridctl drain --wait, restart, wait until alive, gridctl undrain; stops at the first failure', 'drain-timeout': 'how long one host\'s drain may wait for its tasks (default 30m)' }
      : SSH_OPTION_HELP,
    async run (ctx, args) {
      const started = Date.now()
      const rolling = args.values.rolling === true
      const rawDrain = args.values['drain-timeout']
      if (rawDrain !== undefined && !rolling) throw new UsageError('--drain-timeout goes with --rolling')
      const drainTimeoutMs = typeof rawDrain === 'string' ? parseDuration(rawDrain) : undefined
      if (rawDrain !== undefined && (drainTimeoutMs === undefined || drainTimeoutMs <= 0)) throw new UsageError('--drain-timeout must be a duration such as 10m or 2h')
      const opts = await runOptions(ctx, args)
      const d = await import('../../deploy/index.ts')
      const rows = await d.clusterAction(name, { ...opts, rolling, ...(drainTimeoutMs === undefined ? {} : { drainTimeoutMs }) })
      return await printReport(ctx, rows, started)
    }
  }
}

export const clusterCommand: Command = {
  name: 'cluster',
  summary: 'Status, start, stop or (rolling) restart of the gridd on every host of an inventory, over SSH.',
  usage: 'cluster status|start|stop|restart -i INVENTORY [flags]',
  local: true,
  subcommands: [
    status,
    action('start', 'Starts gridd where it does not run, and waits until the nodes are alive and see each other.'),
    action('stop', 'Stops gridd on every host (it leaves the cluster gracefully).'),
    action('restart', 'Restarts gridd on every host at once, or one at a time with --rolling (drained first).')
  ],
  async run (_ctx, args) {
    const sub = args.positionals[0]
    throw new UsageError(sub === undefined ? 'missing subcommand: status, start, stop or restart' : `unknown cluster subcommand ${sub}`)
  }
}
