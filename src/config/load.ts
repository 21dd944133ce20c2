import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { parseDocument } from 'yaml'
import { InvalidConfigError } from '../interface/index.ts'
import { DEFAULT_CONFIG_FILE, FIELDS, FIELD_BY_KEY, defaultDataDir, defaultSocket, defaults, type GridConfig } from './config.ts'
import type { FieldDef } from './fields.ts'

export interface ConfigSources {
  /** Raw values from gridd's flags, keyed by config key (see FIELDS). */
  flags?: Record<string, unknown>
  /** The config file named by --config; when absent, GRID_CONFIG, then /etc/grid/gridd.yaml if it exists. */
  configFile?: string
  env?: NodeJS.ProcessEnv
  /** Where /etc/grid/gridd.yaml is looked for (tests point it elsewhere). */
  defaultConfigFile?: string
}

interface RawValue { value: unknown, source: string }

/** Sections of the YAML file whose keys are listed in FIELDS as `section.key`. */
const SECTIONS = new Set(FIELDS.filter(f => f.key.includes('.')).map(f => f.key.split('.')[0] as string))

/**
 * Builds the configuration from defaults < YAML file < GRID_* environment < flags, checks every value, and either
 * returns it frozen or throws one InvalidConfigError listing every violation, each naming its key and source.
 */
export function loadConfig (sources: ConfigSources = {}): GridConfig {
  const env = sources.env ?? process.env
  const violations: string[] = []
  const raw = new Map<string, RawValue>()
  for (const [k, v] of Object.entries(defaults())) raw.set(k, { value: v, source: 'default' })

  const explicitFile = sources.configFile ?? env.GRID_CONFIG
  const file = explicitFile ?? (existsSync(sources.defaultConfigFile ?? DEFAULT_CONFIG_FILE) ? (sources.defaultConfigFile ?? DEFAULT_CONFIG_FILE) : undefined)
  if (file !== undefined) {
    for (const [k, v] of readConfigFile(file, violations)) raw.set(k, { value: v, source: file })
  }

  for (const f of FIELDS) {
    const v = f.env === undefined ? undefined : env[f.env]
    if (v !== undefined && v !== '') raw.set(f.key, { value: v, source: f.env as string })
  }
  for (const [k, v] of Object.entries(sources.flags ?? {})) {
    const f = FIELD_BY_KEY.get(k)
    if (f === undefined) { violations.push(`${k}: not a configuration key`); continue }
    raw.set(k, { value: v, source: `flag --${f.flag ?? k}` })
  }

  const out = new Map<string, unknown>()
  for (const f of FIELDS) {
    const r = raw.get(f.key)
    if (r === undefined) continue
    const c = f.convert(r.value)
    if (c.ok) out.set(f.key, c.value)
    else violations.push(`${f.key} (${r.source}): ${c.error}`)
  }

  const dataDir = resolve(String(out.get('dataDir') ?? defaultDataDir(env)))
  const insecure = out.get('insecureNoSwarmKey') === true
  if (insecure && raw.get('swarmKey') !== undefined) {
    violations.push(`swarmKey (${raw.get('swarmKey')?.source}): contradicts insecureNoSwarmKey (${raw.get('insecureNoSwarmKey')?.source}); choose one`)
  }
  if (out.get('executor.syncLayout') === 'link' && (out.get('executor.taskUser') ?? '') === '') {
    violations.push(`executor.syncLayout (${raw.get('executor.syncLayout')?.source}): link needs executor.taskUser (a task running as gridd's own user could write through a hard link into the sync cache); set a task user, or use copy or auto`)
  }
  if (violations.length > 0) throw new InvalidConfigError(violations)

  const get = <T>(k: string): T => out.get(k) as T
  const absolute = (p: string): string => isAbsolute(p) ? p : resolve(p)
  const config: GridConfig = {
    cluster: get('cluster'),
    name: get('name'),
    dataDir,
    socket: absolute(get<string | undefined>('socket') ?? defaultSocket(env, dataDir)),
    listen: get('listen'),
    announce: get('announce'),
    bootstrap: get('bootstrap'),
    swarmKey: insecure ? null : absolute(get<string | undefined>('swarmKey') ?? join(dataDir, 'swarm.key')),
    swarmKeyGenerate: !insecure && raw.get('swarmKey') === undefined,
    insecureNoSwarmKey: insecure,
    region: get('region'),
    // --pool NAME is the label pool=NAME (placement, issue 12)
    labels: get<string | undefined>('pool') === undefined ? get('labels') : { ...get<Record<string, string>>('labels'), pool: get<string>('pool') },
    capabilities: [...new Set(get<string[]>('capabilities'))],
    logLevel: get('logLevel'),
    logFormat: get<GridConfig['logFormat'] | undefined>('logFormat') ?? null,
    nvidiaSmi: get('nvidiaSmi'),
    metricsListen: get('metricsListen'),
    membership: {
      heartbeatIntervalMs: get('membership.heartbeatInterval'),
      suspectAfterMissed: get('membership.suspectAfterMissed'),
      probeTimeoutMs: get('membership.probeTimeout'),
      indirectProbes: get('membership.indirectProbes'),
      suspicionTimeoutMs: get('membership.suspicionTimeout'),
      deadMemberExpiryMs: get('membership.deadMemberExpiry')
    },
    mesh: {
      maxConnections: get('mesh.maxConnections'),
      dialConcurrency: get('mesh.dialConcurrency'),
      rendezvousIntervalMs: get('mesh.rendezvousInterval')
    },
    executor: {
      slots: get('executor.slots'),
      router: raw.get('executor.slots')?.source !== 'default' && get<number>('executor.slots') === 0,
      memory: get('executor.memory'),
      queueLimit: get('executor.queueLimit'),
      killGraceMs: get('executor.killGrace'),
      maxLogBytes: get('executor.maxLogBytes'),
      retainedLogBytes: get('executor.retainedLogBytes'),
      syncCacheSize: get('executor.syncCacheSize'),
      syncLayout: get('executor.syncLayout'),
      cgroupRoot: get('executor.cgroupRoot'),
      taskUser: get('executor.taskUser')
    },
    health: {
      ejectAfterFailures: get('health.ejectAfterFailures'),
      baseEjectionMs: get('health.baseEjection'),
      maxEjectedPercent: get('health.maxEjectedPercent'),
      diskFreeMinPercent: get('health.diskFreeMinPercent')
    },
    placement: { steal: get('placement.steal'), stealAfterMs: get('placement.stealAfter') },
    taskRetentionMs: get('taskRetention'),
    control: { maxConnections: get('control.maxConnections') },
    sessions: { maxPerWriter: get('sessions.maxPerWriter'), maxBytesPerWriter: get('sessions.maxBytesPerWriter') },
    tasks: get('tasks'),
    configFile: file === undefined ? null : resolve(file)
  }
  return deepFreeze(config)
}

/** Reads the YAML file into dotted keys; problems (unreadable, not YAML, unknown keys) become violations. */
function readConfigFile (file: string, violations: string[]): Map<string, unknown> {
  const out = new Map<string, unknown>()
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    violations.push(`config file ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    return out
  }
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    for (const e of doc.errors) violations.push(`config file ${file}: not valid YAML: ${e.message.split('\n')[0]}`)
    return out
  }
  let obj: unknown
  try {
    obj = doc.toJS()
  } catch (err) {
    // parsed but not convertible: an alias to no anchor, or one that expands past the library's alias limit
    violations.push(`config file ${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`)
    return out
  }
  if (obj === null || obj === undefined) return out
  if (typeof obj !== 'object' || Array.isArray(obj)) {
    violations.push(`config file ${file}: must be a YAML map of keys such as listen, bootstrap, name`)
    return out
  }
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    if (SECTIONS.has(k)) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) { violations.push(`${k} (${file}): must be a map`); continue }
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) addKey(`${k}.${k2}`, v2)
    } else {
      addKey(k, v)
    }
  }
  return out

  function addKey (key: string, value: unknown): void {
    const f: FieldDef | undefined = FIELD_BY_KEY.get(key)
    if (f === undefined) violations.push(`${key} (${file}): unknown key${suggest(key)}`)
    else out.set(key, value)
  }
}

function suggest (key: string): string {
  const lower = key.toLowerCase().replace(/[-_]/g, '')
  const match = FIELDS.find(f => f.key.toLowerCase().replace(/[-_.]/g, '') === lower.replace(/\./g, '') || f.flag === key)
  return match === undefined ? '' : `; did you mean ${match.key}?`
}

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
