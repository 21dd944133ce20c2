import type { ParseArgsConfig } from 'node:util'
import type { RunOptions } from '../../deploy/index.ts'
import { parseDuration } from '../../interface/index.ts'
import { UsageError, requirePositionals, type CommandContext, type Command, type ParsedArgs } from '../command.ts'
import { printList } from '../output.ts'

// src/deploy (and ssh2 with it) loads only when a deploy or cluster command runs, so other commands start as fast as before

/** Flags that deploy and every cluster subcommand share. */
export const SSH_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  inventory: { type: 'string', short: 'i' },
  'service-manager': { type: 'string' },
  concurrency: { type: 'string' },
  retries: { type: 'string' },
  'connect-timeout': { type: 'string' },
  'wait-timeout': { type: 'string' },
  'known-hosts': { type: 'string' },
  'insecure-ignore-host-keys': { type: 'boolean' }
}

export const SSH_OPTION_HELP: Record<string, string> = {
  inventory: 'the inventory (YAML): hosts, how to reach them, their settings (see docs/deploy.md)',
  'service-manager': 'systemd (default: installs gridd.service) or none (gridd detached, pid and log under the prefix)',
  concurrency: 'hosts worked on at once, one SSH connection each (default 10)',
  retries: 'retries of a refused, timed-out or reset connection, with backoff (default 3)',
  'connect-timeout': 'deadline of the TCP connection and SSH handshake (default 15s)',
  'wait-timeout': 'how long a started node may take to be alive in the mesh (default 90s)',
  'known-hosts': 'known_hosts file to check host keys against (default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)',
  'insecure-ignore-host-keys': 'do not check host keys (lab only: anyone on the path can impersonate a host)'
}

function intFlag (args: ParsedArgs, name: string, min: number, max: number, dflt: number): number {
  const raw = args.values[name]
  if (raw === undefined) return dflt
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`)
  return n
}

function durationFlag (args: ParsedArgs, name: string, dflt: number): number {
  const raw = args.values[name]
  if (raw === undefined) return dflt
  const ms = typeof raw === 'string' ? parseDuration(raw) : undefined
  if (ms === undefined || ms <= 0) throw new UsageError(`--${name} must be a duration such as 30s or 5m`)
  return ms
}

/** Reads the shared flags and the inventory; every problem with the inventory is reported at once (exit 2). */
export async function runOptions (ctx: CommandContext, args: ParsedArgs): Promise<RunOptions> {
  requirePositionals(args, [])
  const d = await import('../../deploy/index.ts')
  const file = args.values.inventory
  if (typeof file !== 'string' || file === '') throw new UsageError('missing -i INVENTORY (a YAML file listing the hosts; see docs/deploy.md)')
  const smFlag = args.values['service-manager']
  if (smFlag !== undefined && !(d.SERVICE_MANAGERS as readonly unknown[]).includes(smFlag)) throw new UsageError(`--service-manager must be one of ${d.SERVICE_MANAGERS.join(', ')}`)
  const insecure = args.values['insecure-ignore-host-keys'] === true
  const knownFlag = args.values['known-hosts']
  if (insecure && knownFlag !== undefined) throw new UsageError('--known-hosts and --insecure-ignore-host-keys contradict each other; choose one')
  let knownHosts: string[] | null = d.defaultKnownHostsFiles(ctx.env)
  if (insecure) knownHosts = null
  else if (typeof knownFlag === 'string') {
    const { existsSync } = await import('node:fs')
    if (!existsSync(knownFlag)) throw new UsageError(`--known-hosts ${knownFlag}: no such file`)
    knownHosts = [knownFlag]
  }
  // flags first: a usage error is reported as one, before the inventory is read
  const concurrency = intFlag(args, 'concurrency', 1, d.MAX_CONCURRENCY, d.DEFAULT_CONCURRENCY)
  const retries = intFlag(args, 'retries', 0, d.MAX_RETRIES, d.DEFAULT_RETRIES)
  const connectTimeoutMs = durationFlag(args, 'connect-timeout', d.DEFAULT_CONNECT_TIMEOUT_MS)
  const waitTimeoutMs = durationFlag(args, 'wait-timeout', d.DEFAULT_WAIT_TIMEOUT_MS)
  const opts: RunOptions = {
    inventory: d.loadInventory(file, { env: ctx.env, ...(smFlag === undefined ? {} : { serviceManager: smFlag as 'systemd' | 'none' }) }),
    concurrency,
    retries,
    connectTimeoutMs,
    waitTimeoutMs,
    knownHosts,
    env: ctx.env,
    signal: ctx.signal,
    progress: (host, message) => { ctx.err.write(`[${host ?? 'deploy'}] ${message}\n`) }
  }
  if (insecure) ctx.err.write('warning: host keys are not checked (--insecure-ignore-host-keys): anyone on the network path can impersonate these hosts\n')
  return opts
}

/** Prints the per-host report (table, Markdown, or the rows as one JSON document) and returns the exit code. */
export async function printReport (ctx: CommandContext, rows: Array<import('../../deploy/index.ts').HostReport>, startedMs: number): Promise<number> {
  const d = await import('../../deploy/index.ts')
  printList(ctx.out, ctx.format, rows, d.HOST_COLUMNS)
  ctx.err.write(`${d.summary(rows, Date.now() - startedMs)}\n`)
  if (ctx.signal.aborted) return 130
  return rows.some(r => r.error !== null) ? 1 : 0
}

export const deployCommand: Command = {
  name: 'deploy',
  summary: 'Installs or upgrades Grid on every host of an inventory over SSH, starts it and waits until the nodes see each other.',
  usage: 'deploy -i INVENTORY [--service-manager systemd|none] [--concurrency N] [--known-hosts FILE | --insecure-ignore-host-keys] [--package DIR]',
  local: true,
  options: { ...SSH_OPTIONS, package: { type: 'string' } },
  optionHelp: { ...SSH_OPTION_HELP, package: 'folder with gridd.mjs, gridctl.mjs and chunks/ (default: beside this gridctl, or dist/bundle of its checkout)' },
  async run (ctx, args) {
    const started = Date.now()
    const opts = await runOptions(ctx, args)
    const d = await import('../../deploy/index.ts')
    const pkg = args.values.package
    const rows = await d.deploy({ ...opts, ...(typeof pkg === 'string' ? { packageDir: pkg } : {}) })
    return await printReport(ctx, rows, started)
  }
}
