/**
 * gridd's program, imported by the bin (daemon/gridd.ts) once it has checked the Node version. Flags, configuration,
 * logging, signals and exit codes live here; the daemon's logic lives in src/.
 *
 * Exit codes: 0 stopped cleanly; 1 failed at start or at run time; 2 bad flags or configuration.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { Logger } from 'pino'
import { FIELDS, loadConfig, type GridConfig } from '../src/config/index.ts'
import { Daemon } from '../src/daemon.ts'
import { GridError, InvalidConfigError, formatHinted, hintFor } from '../src/interface/index.ts'
import { VERSION } from '../src/version.ts'
import { createLogger } from './logger.ts'

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
/** A stop that takes longer than this is cut short (systemd's stop timeout is longer). */
const STOP_DEADLINE_MS = 20_000

function usage (): string {
  const lines = [
    'Usage: gridd [flags]',
    '',
    'Runs the Grid daemon: joins the mesh, gossips health, runs tasks, serves the control socket.',
    'Every flag has a GRID_* variable and a key in the YAML config file; flags win over both.',
    '',
    'Flags:',
    '  --config FILE                  YAML config file (default /etc/grid/gridd.yaml when it exists; GRID_CONFIG)',
    ...FIELDS.filter(f => f.flag !== undefined).map(f => {
      const left = `  --${f.flag}${f.boolean === true ? '' : ' VALUE'}`
      return `${left.padEnd(33)}${f.help}${f.env === undefined ? '' : ` (${f.env})`}`
    }),
    '  -h, --help                     show this help',
    '  --version                      print the version'
  ]
  return lines.join('\n')
}

function parseFlags (argv: string[]): { configFile?: string, flags: Record<string, unknown>, help: boolean, version: boolean } {
  const options: NonNullable<ParseArgsConfig['options']> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' }
  }
  for (const f of FIELDS) {
    if (f.flag === undefined) continue
    options[f.flag] = f.boolean === true ? { type: 'boolean' } : { type: 'string', multiple: f.multiple === true }
  }
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
  const flags: Record<string, unknown> = {}
  for (const f of FIELDS) {
    if (f.flag === undefined) continue
    const v = values[f.flag]
    if (v !== undefined) flags[f.key] = v
  }
  const out: { configFile?: string, flags: Record<string, unknown>, help: boolean, version: boolean } = {
    flags,
    help: values.help === true,
    version: values.version === true
  }
  if (typeof values.config === 'string') out.configFile = values.config
  return out
}

export async function main (): Promise<number> {
  let parsed: ReturnType<typeof parseFlags>
  try {
    parsed = parseFlags(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`gridd: ${(err as Error).message}\n\n${usage()}\n`)
    return EXIT_USAGE
  }
  if (parsed.help) { process.stdout.write(usage() + '\n'); return EXIT_OK }
  if (parsed.version) { process.stdout.write(`gridd ${VERSION}\n`); return EXIT_OK }

  let config: GridConfig
  try {
    config = loadConfig(parsed.configFile === undefined ? { flags: parsed.flags } : { flags: parsed.flags, configFile: parsed.configFile })
  } catch (err) {
    if (err instanceof InvalidConfigError) {
      process.stderr.write(`gridd: ${err.message}\n`)
      return EXIT_USAGE
    }
    throw err
  }

  const logger = await createLogger(config)
  let daemon: Daemon
  try {
    daemon = await Daemon.create(config, { logger })
    await daemon.start()
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    // a typed error is one the user can act on (port in use, bad swarm key): its message and next step, not a stack
    // of library frames; one event with `code` and `hint`, and the same on stderr as `error [CODE]: cause — hint`
    const hint = err instanceof GridError ? err.hint ?? hintFor(err.code) : undefined
    logger.fatal({
      err: err instanceof GridError ? { code: err.code, message } : err,
      ...(err instanceof GridError ? { code: err.code } : {}),
      ...(hint === undefined ? {} : { hint })
    }, 'gridd could not start')
    process.stderr.write(`gridd: cannot start: ${err instanceof GridError && hint !== undefined ? formatHinted(err.code, message, hint) : message}\n`)
    logger.flush?.()
    return err instanceof GridError && err.exitCode === EXIT_USAGE ? EXIT_USAGE : EXIT_FAILURE
  }

  return await new Promise<number>(resolve => {
    let signals = 0
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now')
        resolve(EXIT_FAILURE)
        return
      }
      logger.info({ signal }, 'stopping: leaving the cluster gracefully')
      const deadline = setTimeout(() => {
        logger.error({ deadlineMs: STOP_DEADLINE_MS }, 'graceful stop took too long; exiting')
        resolve(EXIT_FAILURE)
      }, STOP_DEADLINE_MS)
      daemon.stop().then(() => { clearTimeout(deadline); resolve(EXIT_OK) }, (err: unknown) => {
        clearTimeout(deadline)
        logger.error({ err }, 'stop failed')
        resolve(EXIT_FAILURE)
      })
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    process.on('unhandledRejection', err => { logger.error({ err }, 'unhandled promise rejection (kept running)') })
    process.on('uncaughtException', err => {
      logger.fatal({ err }, 'uncaught exception; exiting so the service manager can restart a clean process')
      resolve(EXIT_FAILURE)
    })
  })
}
