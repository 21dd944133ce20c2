/** The shape of a gridctl command: one file each, returning an exit code. */
import type { ParseArgsConfig } from 'node:util'
import { parseArgs } from '../builtins.ts'
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
  /** The terminal's width in columns now, when stdout is one (it can change while watch runs). */
  columns?: () => number | undefined
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
  /** Its positionals are a command line to run (`run -- CMD ARGS...`): a usage error shows where `--` goes. */
  trailingCommand?: boolean
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
    throw new UsageError(cmd.trailingCommand === true ? (dashesHint(cmd, argv) ?? (err as Error).message) : (err as Error).message)
  }
}

/**
 * For `gridctl run ls -la`: parseArgs took the command's own flags for gridctl's. Says where `--` goes, with the
 * user's own line, instead of parseArgs' "Unknown option '-l'".
 */
function dashesHint (cmd: Command, argv: string[]): string | undefined {
  if (argv.includes('--')) return undefined
  const { tokens } = parseArgs({ args: argv, options: cmd.options ?? {}, strict: false, allowPositionals: true, tokens: true })
  const first = tokens.find(t => t.kind === 'positional')
  if (first === undefined) return undefined
  const quote = (a: string): string => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`
  const flags = argv.slice(0, first.index).map(quote)
  const line = argv.slice(first.index).map(quote)
  return `put -- before the command, so that its flags are not taken for gridctl's: gridctl ${cmd.name} ${[...flags, '--', ...line].join(' ')}`
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
