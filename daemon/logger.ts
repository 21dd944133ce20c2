/**
 * gridd's logger: one JSON object per line (for journald, log shippers and tests), or readable lines for a person at
 * a terminal (pino-pretty: time, level, node, component, message, then the event's other fields on the same line).
 * Both go through pino's redaction first, so a secret is censored before either format sees it.
 */
import { pino, type DestinationStream, type Logger } from 'pino'
import type { GridConfig, LogFormat } from '../src/config/index.ts'

/** Fields pino censors in every event: secrets and task environments never reach the logs. */
export const REDACT_PATHS = ['psk', 'swarmKeyBytes', '*.psk', 'env', '*.env', '*.*.env', 'token', '*.token', 'authorization', '*.authorization']

/** The format in force: the configured one, else pretty when stdout is a terminal and json when it is not. */
export function logFormat (config: Pick<GridConfig, 'logFormat'>, stdoutIsTTY: boolean): LogFormat {
  return config.logFormat ?? (stdoutIsTTY ? 'pretty' : 'json')
}

export async function createLogger (config: Pick<GridConfig, 'logLevel' | 'logFormat' | 'name'>, stdoutIsTTY = process.stdout.isTTY === true): Promise<Logger> {
  const options = {
    level: config.logLevel,
    base: { node: config.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
  if (logFormat(config, stdoutIsTTY) === 'json') return pino(options)
  // loaded only for people: JSON logging (services, tests) never pays for it
  const { default: pretty } = await import('pino-pretty')
  const stream: DestinationStream = pretty({
    // colours for a terminal, unless NO_COLOR is set (no-color.org)
    colorize: stdoutIsTTY && (process.env.NO_COLOR ?? '') === '',
    translateTime: 'SYS:HH:MM:ss.l',
    // the line is ours (readableLine): pino-pretty would take an event's own name and pid for the logger's
    ignore: 'pid,hostname,name,node,component,caller',
    hideObject: true,
    messageFormat: (log, messageKey, _level, { colors }) => readableLine(log, messageKey, colors),
    // synchronous writes: the last lines before an exit are not lost
    sync: true,
    destination: 1
  })
  return pino(options, stream)
}

/** Keys of every event that the line's head shows (or pino adds); the event's other fields follow, as JSON. */
const HEAD_KEYS = new Set(['level', 'time', 'node', 'component'])

/** After the time and level: "node component: message {fields}", one line whatever the fields hold (pino-pretty colours the message). */
export function readableLine (log: Record<string, unknown>, messageKey: string, colors: { gray: (s: string) => string }): string {
  const fields: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(log)) if (!HEAD_KEYS.has(k) && k !== messageKey) fields[k] = v
  const head = `${String(log.node ?? '')}${typeof log.component === 'string' ? ` ${log.component}` : ''}:`
  const rest = Object.keys(fields).length === 0 ? '' : ` ${colors.gray(JSON.stringify(fields))}`
  return `${head} ${String(log[messageKey] ?? '')}${rest}`
}
