/**
 * The table of configuration keys: for each, its YAML key, its GRID_* variable, its gridd flag and the converter that
 * checks a raw value and turns it into the typed one. Adding a key means adding one row here and one field in
 * GridConfig (config.ts).
 */
import { multiaddr } from '@multiformats/multiaddr'
import { parseDuration, parseSize } from '../interface/index.ts'

export type Converted<T> = { ok: true, value: T } | { ok: false, error: string }
export type Converter<T = unknown> = (raw: unknown) => Converted<T>

export interface FieldDef {
  /** Dotted key in the YAML file and in GridConfig, e.g. `membership.heartbeatInterval`. */
  key: string
  /** Environment variable, e.g. GRID_DATA_DIR. */
  env?: string
  /** gridd flag without dashes, e.g. `data-dir`. */
  flag?: string
  /** Repeatable flag; its environment variable is comma-separated. */
  multiple?: boolean
  /** Flag takes no value. */
  boolean?: boolean
  convert: Converter
  /** One line for --help. */
  help: string
}

const ok = <T>(value: T): Converted<T> => ({ ok: true, value })
const fail = (error: string): Converted<never> => ({ ok: false, error })
const show = (v: unknown): string => {
  const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v)
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}

export const str = (opts: { min?: number, max?: number, pattern?: RegExp, patternHelp?: string } = {}): Converter<string> => raw => {
  if (typeof raw !== 'string') return fail(`expected a string, got ${show(raw)}`)
  if (raw.length < (opts.min ?? 0)) return fail(opts.min === 1 ? 'must not be empty' : `must have at least ${opts.min} characters`)
  if (opts.max !== undefined && raw.length > opts.max) return fail(`must have at most ${opts.max} characters`)
  if (opts.pattern !== undefined && !opts.pattern.test(raw)) return fail(`${show(raw)} ${opts.patternHelp ?? `does not match ${opts.pattern}`}`)
  return ok(raw)
}

export const oneOf = <T extends string>(values: readonly T[]): Converter<T> => raw =>
  typeof raw === 'string' && (values as readonly string[]).includes(raw)
    ? ok(raw as T)
    : fail(`${show(raw)} is not one of ${values.join(', ')}`)

export const bool: Converter<boolean> = raw => {
  if (typeof raw === 'boolean') return ok(raw)
  if (raw === 'true' || raw === '1' || raw === 'yes') return ok(true)
  if (raw === 'false' || raw === '0' || raw === 'no') return ok(false)
  return fail(`expected true or false, got ${show(raw)}`)
}

export const int = (min: number, max: number): Converter<number> => raw => {
  const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw
  if (typeof n !== 'number' || !Number.isInteger(n)) return fail(`expected an integer, got ${show(raw)}`)
  if (n < min || n > max) return fail(`${n} is out of range ${min}..${max}`)
  return ok(n)
}

export const duration = (minMs: number, maxMs: number): Converter<number> => raw => {
  if (typeof raw !== 'string') return fail(`expected a duration such as "500ms", "2s" or "1m", got ${show(raw)}`)
  const ms = parseDuration(raw)
  if (ms === undefined) return fail(`${show(raw)} is not a duration (use a unit: ms, s, m, h, d, as in "500ms" or "2s")`)
  if (ms < minMs || ms > maxMs) return fail(`${raw} is out of range ${minMs}ms..${maxMs}ms`)
  return ok(ms)
}

export const size = (min: number, max: number): Converter<number> => raw => {
  const bytes = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseSize(raw) : undefined
  if (bytes === undefined) return fail(`${show(raw)} is not a size (as in "512MiB" or "4G")`)
  if (bytes < min || bytes > max) return fail(`${show(raw)} is out of range ${min}..${max} bytes`)
  return ok(bytes)
}

export const list = <T>(item: Converter<T>, opts: { max?: number } = {}): Converter<T[]> => raw => {
  const arr = typeof raw === 'string' ? raw.split(',').map(s => s.trim()).filter(s => s !== '') : raw
  if (!Array.isArray(arr)) return fail(`expected a list, got ${show(raw)}`)
  if (opts.max !== undefined && arr.length > opts.max) return fail(`at most ${opts.max} entries allowed, got ${arr.length}`)
  const out: T[] = []
  const errors: string[] = []
  arr.forEach((v, i) => {
    const c = item(v)
    if (c.ok) out.push(c.value)
    else errors.push(`[${i}] ${c.error}`)
  })
  return errors.length > 0 ? fail(errors.join('; ')) : ok(out)
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/
const LABEL_VALUE = /^[A-Za-z0-9._/:@+-]{0,128}$/

/** Labels: a YAML map, or "k=v" strings (repeatable flag, comma-separated variable). */
export const labels: Converter<Record<string, string>> = raw => {
  const out: Record<string, string> = {}
  const errors: string[] = []
  const add = (k: string, v: string): void => {
    if (!LABEL_KEY.test(k)) errors.push(`label key ${show(k)} must be 1-63 letters, digits, '.', '_', '/' or '-'`)
    else if (!LABEL_VALUE.test(v)) errors.push(`label value ${show(v)} for ${k} has characters other than letters, digits and ._/:@+-`)
    else out[k] = v
  }
  if (typeof raw === 'string' || Array.isArray(raw)) {
    const items = typeof raw === 'string' ? raw.split(',').map(s => s.trim()).filter(s => s !== '') : raw
    for (const item of items) {
      if (typeof item !== 'string' || !item.includes('=')) { errors.push(`${show(item)} is not K=V`); continue }
      const i = item.indexOf('=')
      add(item.slice(0, i), item.slice(i + 1))
    }
  } else if (raw !== null && typeof raw === 'object') {
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') add(k, String(v))
      else errors.push(`label ${show(k)} must have a string value`)
    }
  } else {
    return fail(`expected a map of labels or K=V strings, got ${show(raw)}`)
  }
  return errors.length > 0 ? fail(errors.join('; ')) : ok(out)
}

export const multiaddrString: Converter<string> = raw => {
  if (typeof raw !== 'string') return fail(`expected a multiaddr string, got ${show(raw)}`)
  try {
    const ma = multiaddr(raw)
    return ok(ma.toString())
  } catch (err) {
    return fail(`${show(raw)} is not a multiaddr (${(err as Error).message}); example: /ip4/10.0.0.5/tcp/7470/p2p/12D3KooW...`)
  }
}

/** "host:port", or "off" (null). Port 0 picks a free port. */
export const listenAddress: Converter<string | null> = raw => {
  if (raw === 'off' || raw === false) return ok(null)
  if (typeof raw !== 'string') return fail(`expected HOST:PORT or "off", got ${show(raw)}`)
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw)
  if (m === null || Number(m[2]) > 65535) return fail(`${show(raw)} is not HOST:PORT (as in 127.0.0.1:9464) or "off"`)
  return ok(raw)
}

export const capability = str({ min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, patternHelp: 'must be letters, digits and ._:/- (as in cuda, avx512, model:llama)' })

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
export const nodeName = str({ min: 1, max: 63, pattern: NAME_PATTERN, patternHelp: 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit' })

/** A warm worker of a task type (README, "Warm workers"). */
export interface WorkerDef {
  /** the worker program; the type's command when absent */
  command: string[]
  cpus: number
  gpus: number
  /** bytes */
  memory: number
  /** recycle after this many requests; 0 never */
  maxTasks: number
  idleTimeoutMs: number
  /** requests a worker takes at once */
  concurrency: number
  /** most session-less workers of the type per node; 0: as many as the node's slots allow */
  maxWorkers: number
}

export interface TaskTypeDef {
  command: string[]
  env?: Record<string, string>
  cwd?: string
  worker?: WorkerDef
}

const WORKER_KEYS = ['command', 'cpus', 'gpus', 'memory', 'maxTasks', 'idleTimeout', 'concurrency', 'maxWorkers']

function workerDef (name: string, raw: Record<string, unknown>, command: string[], errors: string[]): WorkerDef {
  for (const k of Object.keys(raw)) if (!WORKER_KEYS.includes(k)) errors.push(`${name}.worker.${k}: unknown key (known: ${WORKER_KEYS.join(', ')})`)
  const get = <T>(k: string, conv: Converter<T>, dflt: T): T => {
    if (raw[k] === undefined) return dflt
    const c = conv(raw[k])
    if (c.ok) return c.value
    errors.push(`${name}.worker.${k}: ${c.error}`)
    return dflt
  }
  let cmd = command
  if (raw.command !== undefined) {
    const c = raw.command
    if (!Array.isArray(c) || c.length === 0 || !c.every(x => typeof x === 'string' || typeof x === 'number')) errors.push(`${name}.worker.command: expected a non-empty list of strings (argv)`)
    else cmd = c.map(String)
  }
  const cpusConv: Converter<number> = v => (typeof v === 'number' && v >= 0 && v <= 4096 ? ok(v) : fail(`expected a number of CPU slots 0..4096, got ${show(v)}`))
  return {
    command: cmd,
    cpus: get('cpus', cpusConv, 1),
    gpus: get('gpus', int(0, 64), 0),
    memory: get('memory', size(0, 2 ** 53), 0),
    maxTasks: get('maxTasks', int(0, 1e12), 0),
    idleTimeoutMs: get('idleTimeout', duration(1000, 30 * 86_400_000), 600_000),
    concurrency: get('concurrency', int(1, 100_000), 1),
    maxWorkers: get('maxWorkers', int(0, 10_000), 0)
  }
}

/** `tasks: {NAME: {command: [...], env: {...}, cwd: DIR}}`: task types this node can run, by name. */
export const taskTypes: Converter<Record<string, TaskTypeDef>> = raw => {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return fail('expected a map of task types, as in {resize: {command: [python3, resize.py]}}')
  const out: Record<string, TaskTypeDef> = {}
  const errors: string[] = []
  for (const [name, def] of Object.entries(raw as Record<string, unknown>)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) { errors.push(`${show(name)} is not a task type name (letters, digits, ._-)`); continue }
    if (def === null || typeof def !== 'object' || Array.isArray(def)) { errors.push(`${name}: expected {command: [...]}`); continue }
    const d = def as Record<string, unknown>
    for (const k of Object.keys(d)) if (!['command', 'env', 'cwd', 'worker'].includes(k)) errors.push(`${name}.${k}: unknown key (known: command, env, cwd, worker)`)
    const cmd = d.command
    if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every(x => typeof x === 'string' || typeof x === 'number')) { errors.push(`${name}.command: expected a non-empty list of strings (argv)`); continue }
    const t: TaskTypeDef = { command: cmd.map(String) }
    if (d.env !== undefined) {
      if (d.env === null || typeof d.env !== 'object' || Array.isArray(d.env)) errors.push(`${name}.env: expected a map of variables`)
      else t.env = Object.fromEntries(Object.entries(d.env as Record<string, unknown>).map(([k, v]) => [k, String(v)]))
    }
    if (d.cwd !== undefined) {
      if (typeof d.cwd !== 'string' || d.cwd === '') errors.push(`${name}.cwd: expected a directory path`)
      else t.cwd = d.cwd
    }
    if (d.worker !== undefined) {
      if (d.worker === null || typeof d.worker !== 'object' || Array.isArray(d.worker)) errors.push(`${name}.worker: expected a map such as {concurrency: 4, idleTimeout: 10m}`)
      else t.worker = workerDef(name, d.worker as Record<string, unknown>, t.command, errors)
    }
    out[name] = t
  }
  return errors.length > 0 ? fail(errors.join('; ')) : ok(out)
}
