/** The shape of a gridctl command: one file each, returning an exit code. */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { InvalidArgumentError } from '../interface/index.ts'
import type { ApiClient } from './client.ts'
import type { Format, Out } from './output.ts'

export interface CommandContext {
  client: ApiClient
  format: Format
  out: Out
  err: Out
  /** Aborts on Ctrl-C. */
  signal: AbortSignal
  /** true when stdout is a terminal */
  tty: boolean
  env: NodeJS.ProcessEnv
}

export interface Command {
  name: string
  summary: string
  /** Usage lines, without the leading "gridctl". */
  usage: string
  options?: NonNullable<ParseArgsConfig['options']>
  /** One line of help per option name. */
  optionHelp?: Record<string, string>
  /** Nested commands (`nodes get`, `sessions put`); the parent's run handles the bare form. */
  subcommands?: Command[]
  /** Whether this command needs the daemon (keygen does not). */
  local?: boolean
  run(ctx: CommandContext, args: ParsedArgs): Promise<number>
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>
  positionals: string[]
}

/** A usage error: gridctl prints it with the command's help and exits 2. */
export class UsageError extends InvalidArgumentError {}

export function parseCommandArgs (cmd: Command, argv: string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: cmd.options ?? {}, strict: true, allowPositionals: true })
    return { values: values as ParsedArgs['values'], positionals }
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

export function helpText (cmd: Command): string {
  const lines = [`Usage: gridctl ${cmd.usage}`, "", cmd.summary]
  if (cmd.subcommands !== undefined && cmd.subcommands.length > 0) {
    lines.push('', 'Subcommands:')
    const w = Math.max(...cmd.subcommands.map(s => s.name.length))
    for (const s of cmd.subcommands) lines.push(`  ${s.name.padEnd(w)}  ${s.summary}`)
  }
  const opts = Object.entries(cmd.options ?? {})
  if (opts.length > 0) {
    lines.push('', 'Options:')
    for (const [name, o] of opts) {
      const flag = `${o.short !== undefined ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ' VALUE' : ''}`
      const help = cmd.optionHelp?.[name]
      lines.push(help === undefined ? `  ${flag}` : `  ${flag.padEnd(26)}  ${help}`)
    }
  }
  return lines.join('\n')
}

export function requirePositionals (args: ParsedArgs, names: string[]): string[] {
  if (args.positionals.length < names.length) throw new UsageError(`missing ${names.slice(args.positionals.length).join(' ')}`)
  if (args.positionals.length > names.length) throw new UsageError(`unexpected argument ${args.positionals[names.length] ?? ''}`)
  return args.positionals
}
