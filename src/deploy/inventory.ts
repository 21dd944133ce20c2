/**
 * The inventory: a YAML file naming the hosts to deploy to and how to reach them, with defaults for every host and
 * per-host overrides. Loading checks every key at once and throws one InventoryError listing each violation with its
 * key (`hosts[2].port: ...`), so a fleet's file is fixed in one pass.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { homedir, userInfo } from 'node:os'
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path'
import { parseDocument } from 'yaml'
import { FIELDS, type FieldDef } from '../config/index.ts'
import { DEFAULT_PREFIX } from './constants.ts'
import { InventoryError } from './errors.ts'

export const SERVICE_MANAGERS = ['systemd', 'none'] as const
export type ServiceManager = typeof SERVICE_MANAGERS[number]

export interface HostSpec {
  /** Position in the inventory's hosts list. */
  index: number
  /** What SSH connects to: a name or an IP address. */
  host: string
  port: number
  user: string
  /** Private key file (absolute); null: ssh-agent and ~/.ssh's default keys. */
  key: string | null
  /** Run installs and service commands through `sudo -n` (for a user other than root). */
  sudo: boolean
  /** Node executable on the host: a name looked up on PATH, or an absolute path. */
  node: string
  prefix: string
  /** Name to look the host key up by in known_hosts instead of host[:port] (OpenSSH's HostKeyAlias). */
  hostKeyAlias: string | null
  /** gridd's name for the node; null: the host's own hostname (gridd's default). */
  name: string | null
  /** gridd configuration keys this host sets (listen, region, labels, ...), already validated. */
  gridd: Record<string, unknown>
  /** How progress lines and the report call this host: its name, else host[:port]. */
  label: string
}

export interface Inventory {
  file: string
  cluster: string | null
  /** Absolute path of the swarm key file (it may not exist yet: deploy generates it). */
  swarmKey: string
  /** The inventory named the key file (else the default beside the inventory). */
  swarmKeyNamed: boolean
  bootstrap: string[]
  serviceManager: ServiceManager
  hosts: HostSpec[]
}

const TOP_KEYS = ['cluster', 'swarmKey', 'bootstrap', 'serviceManager', 'defaults', 'hosts'] as const
/** Keys that `defaults` and each host may set. */
const HOST_KEYS = ['port', 'user', 'key', 'sudo', 'node', 'prefix', 'hostKeyAlias', 'listen', 'metricsListen', 'region', 'labels', 'capabilities', 'logLevel', 'config'] as const
/** Keys only a host may set. */
const HOST_ONLY_KEYS = ['host', 'name'] as const
/** Inventory keys that are gridd configuration keys of the same name. */
const GRIDD_KEYS = ['name', 'listen', 'metricsListen', 'region', 'labels', 'capabilities', 'logLevel'] as const
/** gridd keys deploy sets itself; `config:` may not. */
const MANAGED_KEYS = new Set(['cluster', 'name', 'dataDir', 'socket', 'swarmKey', 'insecureNoSwarmKey', 'bootstrap', ...GRIDD_KEYS])

const FIELD = new Map<string, FieldDef>(FIELDS.map(f => [f.key, f]))
const PATH_RE = /^\/[A-Za-z0-9._+@/-]*$/
const NODE_RE = /^[A-Za-z0-9._+@/-]+$/
const HOST_RE = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$/
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]*\$?$/

export interface LoadInventoryOptions {
  /** --service-manager: wins over the inventory's serviceManager. */
  serviceManager?: ServiceManager
  env?: NodeJS.ProcessEnv
}

/** The swarm key used when the inventory names none: `<inventory name>.swarm.key` beside it. */
export function defaultSwarmKeyPath (inventoryFile: string): string {
  const abs = resolve(inventoryFile)
  return join(dirname(abs), `${basename(abs, extname(abs))}.swarm.key`)
}

export function loadInventory (file: string, opts: LoadInventoryOptions = {}): Inventory {
  const env = opts.env ?? process.env
  const abs = resolve(file)
  const dir = dirname(abs)
  const v: string[] = []
  let text: string
  try {
    text = readFileSync(abs, 'utf8')
  } catch (err) {
    throw new InventoryError(file, [`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`])
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw new InventoryError(file, doc.errors.map(e => `not valid YAML: ${e.message.split('\n')[0] ?? ''}`))
  }
  const top: unknown = doc.toJS()
  if (!isMap(top)) throw new InventoryError(file, ['must be a YAML map with a hosts list (see docs/deploy.md)'])

  for (const k of Object.keys(top)) if (!(TOP_KEYS as readonly string[]).includes(k)) v.push(`${k}: unknown key${suggest(k, [...TOP_KEYS, ...HOST_KEYS])}`)

  let cluster: string | null = null
  if (top.cluster !== undefined) cluster = gridd('cluster', top.cluster, 'cluster', v) as string | null
  let bootstrap: string[] = []
  if (top.bootstrap !== undefined) bootstrap = (gridd('bootstrap', top.bootstrap, 'bootstrap', v) as string[] | null) ?? []
  let serviceManager: ServiceManager = 'systemd'
  if (top.serviceManager !== undefined) {
    if (typeof top.serviceManager === 'string' && (SERVICE_MANAGERS as readonly string[]).includes(top.serviceManager)) serviceManager = top.serviceManager as ServiceManager
    else v.push(`serviceManager: ${show(top.serviceManager)} is not one of ${SERVICE_MANAGERS.join(', ')}`)
  }
  if (opts.serviceManager !== undefined) serviceManager = opts.serviceManager
  let swarmKey = defaultSwarmKeyPath(abs)
  const swarmKeyNamed = top.swarmKey !== undefined
  if (swarmKeyNamed) {
    if (typeof top.swarmKey !== 'string' || top.swarmKey === '') v.push(`swarmKey: expected a file path, got ${show(top.swarmKey)}`)
    else swarmKey = localPath(top.swarmKey, dir, env)
  }

  let defaults: Record<string, unknown> = {}
  if (top.defaults !== undefined) {
    if (!isMap(top.defaults)) v.push('defaults: must be a map of host settings (user, port, key, ...)')
    else {
      defaults = top.defaults
      for (const k of Object.keys(defaults)) {
        if ((HOST_ONLY_KEYS as readonly string[]).includes(k)) v.push(`defaults.${k}: only a host may set ${k}`)
        else if (!(HOST_KEYS as readonly string[]).includes(k)) v.push(`defaults.${k}: unknown key${suggest(k, HOST_KEYS)}`)
      }
    }
  }

  const hosts: HostSpec[] = []
  if (top.hosts === undefined) v.push('hosts: missing; list the hosts to deploy to (e.g. hosts: [{ host: gpu-1.example.com }])')
  else if (!Array.isArray(top.hosts)) v.push('hosts: must be a list')
  else if (top.hosts.length === 0) v.push('hosts: the list is empty')
  else {
    top.hosts.forEach((raw, i) => {
      const h = hostSpec(raw, i, defaults, dir, env, v)
      if (h !== null) hosts.push(h)
    })
  }

  // the same place twice, or two hosts the report could not tell apart
  const seenPlace = new Map<string, number>()
  const seenLabel = new Map<string, number>()
  const seenMachine = new Map<string, number>()
  for (const h of hosts) {
    const place = `${h.host}:${h.port}:${h.prefix}`
    const p = seenPlace.get(place)
    if (p !== undefined) v.push(`hosts[${h.index}]: same host, port and prefix as hosts[${p}]`)
    seenPlace.set(place, h.index)
    const l = seenLabel.get(h.label)
    if (l !== undefined && p === undefined) v.push(`hosts[${h.index}]${h.name !== null ? '.name' : ''}: ${h.label} is also hosts[${l}]; give each host a distinct name`)
    seenLabel.set(h.label, h.index)
    const m = seenMachine.get(`${h.host}:${h.port}`)
    if (m !== undefined && serviceManager === 'systemd' && p === undefined) {
      v.push(`hosts[${h.index}]: shares ${h.host}:${h.port} with hosts[${m}]; one machine runs one gridd.service, so several nodes on one machine need --service-manager none (or serviceManager: none)`)
    }
    seenMachine.set(`${h.host}:${h.port}`, h.index)
  }

  if (v.length > 0) throw new InventoryError(file, v)
  return { file: abs, cluster, swarmKey, swarmKeyNamed, bootstrap, serviceManager, hosts }
}

function hostSpec (raw: unknown, i: number, defaults: Record<string, unknown>, dir: string, env: NodeJS.ProcessEnv, v: string[]): HostSpec | null {
  const at = `hosts[${i}]`
  let entry: Record<string, unknown>
  if (typeof raw === 'string') {
    const parsed = parseHostString(raw)
    if (parsed === null) { v.push(`${at}: ${show(raw)} is not [user@]host[:port]`); return null }
    entry = parsed
  } else if (isMap(raw)) {
    entry = raw
  } else {
    v.push(`${at}: expected a map (host, port, user, ...) or a "[user@]host[:port]" string, got ${show(raw)}`)
    return null
  }
  for (const k of Object.keys(entry)) {
    if (!(HOST_KEYS as readonly string[]).includes(k) && !(HOST_ONLY_KEYS as readonly string[]).includes(k)) v.push(`${at}.${k}: unknown key${suggest(k, [...HOST_KEYS, ...HOST_ONLY_KEYS])}`)
  }
  const get = (k: string): { value: unknown, key: string } | undefined => {
    if (entry[k] !== undefined) return { value: entry[k], key: `${at}.${k}` }
    if (defaults[k] !== undefined) return { value: defaults[k], key: `defaults.${k}` }
    return undefined
  }
  const before = v.length

  const host = entry.host
  if (host === undefined) v.push(`${at}.host: missing; the name or address to connect to`)
  else if (typeof host !== 'string' || !HOST_RE.test(host)) v.push(`${at}.host: ${show(host)} is not a host name or IP address`)

  let port = 22
  const p = get('port')
  if (p !== undefined) {
    const n = typeof p.value === 'string' && /^\d+$/.test(p.value) ? Number(p.value) : p.value
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) v.push(`${p.key}: ${show(p.value)} is not a port (1-65535)`)
    else port = n
  }
  let user = userInfo().username
  const u = get('user')
  if (u !== undefined) {
    if (typeof u.value !== 'string' || !USER_RE.test(u.value)) v.push(`${u.key}: ${show(u.value)} is not a user name`)
    else user = u.value
  }
  let key: string | null = null
  const k = get('key')
  if (k !== undefined) {
    if (typeof k.value !== 'string' || k.value === '') v.push(`${k.key}: expected a private key file, got ${show(k.value)}`)
    else {
      key = localPath(k.value, dir, env)
      if (!existsSync(key)) v.push(`${k.key}: ${key} does not exist`)
      else if (!statSync(key).isFile()) v.push(`${k.key}: ${key} is not a file`)
    }
  } else if (defaultIdentities(env).length === 0 && (env.SSH_AUTH_SOCK ?? '') === '') {
    v.push(`${at}: no SSH key: set key (or defaults.key), start ssh-agent with your key, or create ~/.ssh/id_ed25519`)
  }
  let sudo = false
  const s = get('sudo')
  if (s !== undefined) {
    if (typeof s.value !== 'boolean') v.push(`${s.key}: expected true or false, got ${show(s.value)}`)
    else sudo = s.value
  }
  let node = 'node'
  const n = get('node')
  if (n !== undefined) {
    if (typeof n.value !== 'string' || !NODE_RE.test(n.value)) v.push(`${n.key}: ${show(n.value)} is not a command name or absolute path`)
    else node = n.value
  }
  let prefix = DEFAULT_PREFIX
  const pr = get('prefix')
  if (pr !== undefined) {
    if (typeof pr.value !== 'string' || !PATH_RE.test(pr.value) || pr.value.length < 2) v.push(`${pr.key}: ${show(pr.value)} must be an absolute path of letters, digits and ._+@/-`)
    else prefix = pr.value.replace(/\/+$/, '')
  }
  let hostKeyAlias: string | null = null
  const a = get('hostKeyAlias')
  if (a !== undefined) {
    if (typeof a.value !== 'string' || a.value === '' || /\s/.test(a.value)) v.push(`${a.key}: expected a name without spaces, got ${show(a.value)}`)
    else hostKeyAlias = a.value
  }

  const settings: Record<string, unknown> = {}
  for (const gk of GRIDD_KEYS) {
    if (gk === 'name') {
      if (entry.name !== undefined) settings.name = gridd('name', entry.name, `${at}.name`, v)
      continue
    }
    if (gk === 'labels') {
      const merged: Record<string, unknown> = {}
      for (const [src, key2] of [[defaults.labels, 'defaults.labels'], [entry.labels, `${at}.labels`]] as const) {
        if (src === undefined) continue
        if (!isMap(src)) { v.push(`${key2}: must be a map of key: value`); continue }
        Object.assign(merged, src)
      }
      if (defaults.labels !== undefined || entry.labels !== undefined) settings.labels = gridd('labels', merged, `${at}.labels`, v)
      continue
    }
    const g = get(gk)
    if (g === undefined) continue
    const raw2 = gk === 'listen' && typeof g.value === 'string' ? [g.value] : g.value
    settings[gk] = gridd(gk, raw2, g.key, v)
  }
  const extra: Record<string, unknown> = {}
  for (const [src, key2] of [[defaults.config, 'defaults.config'], [entry.config, `${at}.config`]] as const) {
    if (src === undefined) continue
    if (!isMap(src)) { v.push(`${key2}: must be a map of gridd configuration keys`); continue }
    for (const [ck, cv] of flatten(src)) {
      if (MANAGED_KEYS.has(ck)) v.push(`${key2}.${ck}: set by deploy; ${managedHint(ck)}`)
      else if (!FIELD.has(ck)) v.push(`${key2}.${ck}: not a gridd configuration key${suggest(ck, FIELDS.map(f => f.key))}`)
      else extra[ck] = cv
    }
  }
  for (const [ck, cv] of Object.entries(extra)) settings[ck] = gridd(ck, cv, `${at}.config.${ck}`, v)

  if (v.length > before || typeof host !== 'string') return null
  const name = typeof settings.name === 'string' ? settings.name : null
  return {
    index: i,
    host,
    port,
    user,
    key,
    sudo,
    node,
    prefix,
    hostKeyAlias,
    name,
    gridd: settings,
    label: name ?? (port === 22 ? host : `${host}:${port}`)
  }
}

function managedHint (key: string): string {
  if ((GRIDD_KEYS as readonly string[]).includes(key)) return `use the host's (or defaults') ${key} key`
  if (key === 'cluster' || key === 'bootstrap' || key === 'swarmKey') return `use the inventory's top-level ${key} key`
  return 'deploy derives it from the prefix and the service manager'
}

/** Checks one gridd key with gridd's own converter (so the config written is one gridd accepts); records a violation. */
function gridd (configKey: string, value: unknown, at: string, v: string[]): unknown {
  const f = FIELD.get(configKey)
  if (f === undefined) { v.push(`${at}: not a gridd configuration key`); return null }
  const c = f.convert(value)
  if (!c.ok) { v.push(`${at}: ${c.error}`); return null }
  // keep the value as written (durations as "2s"), which is what the YAML file for gridd wants
  return configKey === 'labels' || configKey === 'listen' || configKey === 'bootstrap' || configKey === 'capabilities' ? c.value : value
}

/** `[user@]host[:port]`, with IPv6 addresses in brackets. */
export function parseHostString (s: string): Record<string, unknown> | null {
  const m = /^(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:@\s[\]]+)(?::(\d{1,5}))?$/.exec(s.trim())
  if (m === null) return null
  const out: Record<string, unknown> = { host: (m[2] as string).replace(/^\[|\]$/g, '') }
  if (m[1] !== undefined) out.user = m[1]
  if (m[3] !== undefined) out.port = Number(m[3])
  return out
}

/** Private keys ssh would try when none is named, in its order. */
export function defaultIdentities (env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME ?? homedir()
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map(f => join(home, '.ssh', f)).filter(p => existsSync(p))
}

/** A local path from the inventory: ~ is the home directory; relative paths are relative to the inventory. */
export function localPath (p: string, dir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (p === '~' || p.startsWith('~/')) return join(env.HOME ?? homedir(), p.slice(1))
  return isAbsolute(p) ? p : resolve(dir, p)
}

function flatten (o: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = []
  for (const [k, val] of Object.entries(o)) {
    const key = prefix === '' ? k : `${prefix}.${k}`
    if (isMap(val) && key !== 'labels' && !FIELD.has(key)) out.push(...flatten(val, key))
    else out.push([key, val])
  }
  return out
}

function isMap (x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x)
}

function show (x: unknown): string {
  const s = JSON.stringify(x) ?? String(x)
  return s.length > 60 ? `${s.slice(0, 57)}...` : s
}

function suggest (key: string, known: readonly string[]): string {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_.]/g, '')
  const exact = known.find(k => norm(k) === norm(key))
  if (exact !== undefined) return `; did you mean ${exact}?`
  const close = known.find(k => distance(norm(k), norm(key)) <= 2)
  return close === undefined ? '' : `; did you mean ${close}?`
}

function distance (a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[]
      const prev = d[i - 1] as number[]
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
  }
  return (d[a.length] as number[])[b.length] as number
}
