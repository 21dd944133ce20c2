/**
 * gridctl's program: global flags, command dispatch and exit codes (the bin, src/cli/gridctl.ts, checks the Node
 * version and then calls runGridctl with this process's streams).
 *
 * Exit codes: 0 success; 1 the operation failed (or the daemon is not running or unreachable); 2 usage error (bad
 * command, flag or argument, or a request no node can ever satisfy); a task's own exit code for `run`. An error a
 * user meets first prints as `gridctl: error [CODE]: cause — next step` (docs/troubleshooting.md has each CODE).
 */
import { existsSync } from '../builtins.ts'
import { join } from 'node:path'
import { VERSION } from '../version.ts'
import type { Command, CommandContext } from './command.ts'
import { loadCommand } from './commands/registry.ts'
import { devClusterSocket } from './dev/state.ts'
import type { Format, Out } from './output.ts'

// Everything else loads once the command is known (commands/registry.ts): `gridctl --version` loads none of it, and
// a command only its own modules (tests/unit/gridctl-startup.test.ts keeps these top-level imports this light).

export const DEFAULT_SYSTEM_SOCKET = '/run/grid/gridd.sock'

/**
 * --socket, else GRID_SOCKET, else the first running node of a dev cluster here (./.grid-dev, gridctl dev up), else
 * ./.grid/gridd.sock when it exists (npm start), else /run/grid/gridd.sock.
 */
export function defaultSocket (env: NodeJS.ProcessEnv, cwd = process.cwd()): string {
  if (env.GRID_SOCKET !== undefined && env.GRID_SOCKET !== '') return env.GRID_SOCKET
  const devNode = devClusterSocket(cwd)
  if (devNode !== undefined) return devNode
  const dev = join(cwd, '.grid', 'gridd.sock')
  return existsSync(dev) ? dev : DEFAULT_SYSTEM_SOCKET
}

/** gridctl's help, every command with its summary: the only path that loads every command. */
async function mainHelp (): Promise<string> {
  const { COMMANDS } = await import('./commands/index.ts')
  const w = Math.max(...COMMANDS.map(c => c.name.length))
  return [
    'Usage: gridctl [--socket PATH] [-o table|json|markdown] COMMAND [ARGS]',
    '',
    'Drives the local gridd over its control socket.',
    '',
    'Commands:',
    ...COMMANDS.map(c => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    'Global flags:',
    '  --socket PATH              control socket (env GRID_SOCKET; default: the first node of a dev cluster here (gridctl dev up), else ./.grid/gridd.sock if present, else /run/grid/gridd.sock)',
    '  -o, --output FORMAT        table (default), json (exactly one JSON document) or markdown',
    '  -h, --help                 help for gridctl or for a command',
    '  --version                  print the version',
    '',
    'Run "gridctl COMMAND --help" for a command\'s flags.'
  ].join('\n')
}

interface Globals { socket?: string, output?: string, help: boolean, version: boolean, rest: string[] }

/** Global flags may come before the command; -o/--output and --socket are also accepted after it. */
function splitGlobals (argv: string[]): Globals {
  const g: Globals = { help: false, version: false, rest: [] }
  const take = (i: number, name: string): string => {
    const v = argv[i + 1]
    if (v === undefined) throw new Error(`${name} needs a value`)
    return v
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--') { g.rest.push(...argv.slice(i)); break }
    if (a === '--socket') { g.socket = take(i, a); i++ } else if (a.startsWith('--socket=')) g.socket = a.slice(9)
    else if (a === '-o' || a === '--output') { g.output = take(i, a); i++ } else if (a.startsWith('--output=')) g.output = a.slice(9)
    else if (a.startsWith('-o') && a.length > 2 && !a.startsWith('--')) g.output = a.slice(2)
    else if ((a === '-h' || a === '--help')) g.help = true
    else if (a === '--version' && g.rest.length === 0) g.version = true
    else g.rest.push(a)
  }
  return g
}

export async function runGridctl (argv: string[], io: { out: Out, err: Out, env: NodeJS.ProcessEnv, tty: boolean, signal: AbortSignal, columns?: () => number | undefined }): Promise<number> {
  let globals: Globals
  try {
    globals = splitGlobals(argv)
  } catch (err) {
    io.err.write(`gridctl: ${(err as Error).message}\n\n${await mainHelp()}\n`)
    return 2
  }
  if (globals.version) { io.out.write(`gridctl ${VERSION}\n`); return 0 }
  const [name, ...rest] = globals.rest
  if (name === undefined) {
    if (globals.help) { io.out.write(await mainHelp() + '\n'); return 0 }
    io.err.write(`gridctl: missing command\n\n${await mainHelp()}\n`)
    return 2
  }
  const top = await loadCommand(name)
  if (top === undefined) {
    io.err.write(`gridctl: unknown command "${name}"\n\n${await mainHelp()}\n`)
    return 2
  }
  // the command's own module has loaded these already; the client too, for every command that talks to the daemon
  const [{ UsageError, helpText, parseCommandArgs }, { FORMATS }, { ApiClient }] = await Promise.all([import('./command.ts'), import('./output.ts'), import('./client.ts')])
  // a subcommand is the first positional when the parent declares it (nodes get, sessions put…)
  let cmd: Command = top
  const parents: string[] = []
  let args = rest
  const sub = top.subcommands?.find(s => s.name === rest[0])
  if (sub !== undefined) { parents.push(top.name); cmd = sub; args = rest.slice(1) }
  const help = (): string => helpText(cmd)
  if (globals.help) { io.out.write(help() + '\n'); return 0 }
  const format = (globals.output ?? 'table') as Format
  if (!FORMATS.includes(format)) {
    io.err.write(`gridctl: --output must be one of ${FORMATS.join(', ')}\n\n${help()}\n`)
    return 2
  }
  const ctx: CommandContext = {
    client: new ApiClient({ socket: globals.socket ?? defaultSocket(io.env), timeoutMs: 30_000 }),
    format,
    out: io.out,
    err: io.err,
    signal: io.signal,
    tty: io.tty,
    env: io.env,
    ...(io.columns === undefined ? {} : { columns: io.columns })
  }
  try {
    return await cmd.run(ctx, parseCommandArgs(cmd, args))
  } catch (err) {
    if (err instanceof UsageError) {
      io.err.write(`gridctl ${[...parents, cmd.name].join(' ')}: ${err.message}\n\n${help()}\n`)
      return 2
    }
    const { GridError, formatHinted, hintFor, toGridError } = await import('../interface/index.ts')
    const e = err instanceof GridError ? err : toGridError(err)
    const hint = e.hint ?? hintFor(e.code)
    io.err.write(`gridctl: ${hint === undefined ? e.message : formatHinted(e.code, e.message, hint)}\n`)
    return e.exitCode
  }
}
