/**
 * What deploy and cluster runs share: their options, the SSH pool built from them, the checks on a host's Node and
 * service manager, and waiting (over the host's own SSH connection, with its own gridctl) until a node is alive in
 * the mesh and sees the nodes it must see.
 */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { NodeEntry, StatusResponse } from '../../proto/index.ts'
import { formatDuration } from '../interface/index.ts'
import { delay } from '../util/index.ts'
import { ALIVE_POLL_INTERVAL_MS, NODE_MAJOR_MIN } from './constants.ts'
import {
  DaemonExitedError, DeployCancelledError, HostUnsuitableError, NodeMissingError, NodeTooOldError, NotAliveError,
  RemoteCommandError
} from './errors.ts'
import type { HostSpec, Inventory, ServiceManager } from './inventory.ts'
import { KnownHosts } from './known-hosts.ts'
import { layoutFor, type Layout } from './layout.ts'
import { DOWN_MARKER, STARTING_MARKER, gridctlScript, lastLines, runScript, summarizeLog, type Probe } from './remote.ts'
import { hostError, type HostReport } from './report.ts'
import { SshPool } from './ssh-pool.ts'
import type { SshSession, SshTarget } from './ssh.ts'

/** A progress line: `[host] message` on stderr; host null for lines about the whole run. */
export type Progress = (host: string | null, message: string) => void

export interface RunOptions {
  inventory: Inventory
  concurrency: number
  retries: number
  connectTimeoutMs: number
  waitTimeoutMs: number
  /** known_hosts files to check host keys against; null turns host key checking off. */
  knownHosts: string[] | null
  env: NodeJS.ProcessEnv
  progress: Progress
  signal?: AbortSignal
  /** Jitter source for retries (tests). */
  random?: () => number
}

/** ~/.ssh/known_hosts then /etc/ssh/ssh_known_hosts, as ssh reads them. */
export function defaultKnownHostsFiles (env: NodeJS.ProcessEnv = process.env): string[] {
  return [join(env.HOME ?? homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts']
}

export function makePool (o: RunOptions): SshPool {
  const files = o.knownHosts
  return new SshPool({
    knownHosts: files === null ? null : KnownHosts.load(files),
    knownHostsFile: files?.[0] ?? defaultKnownHostsFiles(o.env)[0] as string,
    connectTimeoutMs: o.connectTimeoutMs,
    retries: o.retries,
    env: o.env,
    ...(o.random === undefined ? {} : { random: o.random }),
    onRetry: (t, attempt, wait, err) => {
      o.progress(t.label, `retrying in ${formatDuration(wait)} (attempt ${attempt + 1} of ${o.retries + 1}): ${err.message}`)
    }
  }, o.concurrency)
}

export function targetOf (h: HostSpec): SshTarget {
  return { host: h.host, port: h.port, user: h.user, key: h.key, hostKeyAlias: h.hostKeyAlias, label: h.label }
}

export function addressOf (h: HostSpec): string {
  return `${h.user}@${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`
}

/** What each per-host job of deploy and cluster starts with: its report, layout, options for remote commands and a progress line. */
export interface HostJob {
  started: number
  report: HostReport
  layout: Layout
  signal?: AbortSignal
  run: { sudo: boolean, signal?: AbortSignal }
  say: (m: string) => void
}

export function startHostJob (o: RunOptions, h: HostSpec): HostJob {
  const signal = o.signal
  return {
    started: Date.now(),
    report: { host: h.label, address: addressOf(h), name: h.name, result: 'failed', version: null, changes: [], durationMs: 0, error: null },
    layout: layoutOf(h, o.inventory.serviceManager),
    ...(signal === undefined ? {} : { signal }),
    run: { sudo: h.sudo, ...(signal === undefined ? {} : { signal }) },
    say: (m: string): void => { o.progress(h.label, m) }
  }
}

/** Marks a host's job failed with the error as a user reads it; `hint` is added to its message. */
export function failHostJob (job: HostJob, err: unknown, hint?: string): void {
  const e = hostError(err)
  if (hint !== undefined) e.message += `; ${hint}`
  job.report.result = 'failed'
  job.report.error = e
  job.say(`failed: ${e.message}`)
}

export function layoutOf (h: HostSpec, sm: ServiceManager): Layout {
  return layoutFor(h.prefix, sm)
}

/** Node present and recent enough; systemd and root where the unit is to be managed. */
export function checkHost (p: Probe, h: HostSpec, sm: ServiceManager): void {
  if (p.nodeMissing || p.node === null) {
    const where = h.node.includes('/') ? `${h.node} is not an executable file${h.sudo ? '' : ` ${h.user} may run`}` : `no "${h.node}" on ${h.sudo ? 'sudo\'s secure_path' : `${h.user}'s PATH`}`
    throw new NodeMissingError(`${where} on ${h.label}: install Node ${NODE_MAJOR_MIN} or later there, or set node: /path/to/node for this host in the inventory`)
  }
  const major = Number(/^v?(\d+)/.exec(p.node)?.[1] ?? 0)
  if (major < NODE_MAJOR_MIN) {
    throw new NodeTooOldError(`Node ${p.node} at ${p.nodePath ?? h.node} on ${h.label} is too old: Grid needs Node ${NODE_MAJOR_MIN} or later; install it there, or point node: in the inventory at a newer one`)
  }
  if (sm === 'systemd') {
    if (!p.systemd) throw new HostUnsuitableError(`${h.label} does not run systemd: use --service-manager none (or serviceManager: none in the inventory) to run gridd without it`)
    if (p.uid !== 0) throw new HostUnsuitableError(`managing gridd.service on ${h.label} needs root, and ${h.user} is not root there: connect as root, or set sudo: true for this host`)
  }
}

interface AliveOptions {
  /** Names the node must see alive besides itself. */
  mustSee: string[]
  timeoutMs: number
  signal?: AbortSignal
}

/**
 * Polls the host's own gridctl (over the same connection) until the node is alive and sees every name in mustSee
 * alive. A daemon that exits meanwhile fails at once, with the end of its log.
 */
export async function waitAlive (s: SshSession, h: HostSpec, layout: Layout, o: AliveOptions): Promise<NodeEntry[]> {
  const deadline = Date.now() + o.timeoutMs
  let last = 'no answer yet'
  for (;;) {
    if (o.signal?.aborted === true) throw new DeployCancelledError(`${h.label}: cancelled`)
    const r = await runScript(s, gridctlScript(layout, ['nodes', '-o', 'json']), { sudo: h.sudo, ...(o.signal === undefined ? {} : { signal: o.signal }) })
    const out = r.stdout.trim()
    if (out.startsWith(DOWN_MARKER)) {
      throw new DaemonExitedError(`gridd is not running on ${h.label} (it exited, or was stopped); the end of its log: ${summarizeLog(out) || '(empty)'}`)
    }
    if (out.startsWith(STARTING_MARKER)) {
      last = 'systemd is (re)starting gridd.service'
    } else if (r.code !== 0) {
      last = lastLines(r.stderr, 2) || `gridctl exit status ${r.code ?? 'null'}`
    } else {
      try {
        const nodes = JSON.parse(out) as NodeEntry[]
        const self = nodes.find(n => n.self)
        const state = new Map(nodes.map(n => [n.name, n.state]))
        const missing = o.mustSee.filter(n => n !== self?.name && state.get(n) !== 'alive')
        if (self !== undefined && self.state === 'alive' && missing.length === 0) return nodes
        last = self === undefined
          ? 'it does not list itself yet'
          : missing.map(n => `${n} is ${state.get(n) ?? 'not known'}`).join(', ')
      } catch {
        last = `gridctl printed something that is not JSON: ${lastLines(out, 1)}`
      }
    }
    if (Date.now() >= deadline) {
      throw new NotAliveError(`${h.label} is not alive in the mesh after ${formatDuration(o.timeoutMs)} (${last}); check that it can reach the others' listen addresses (firewall?) and that every node has the same swarm key`)
    }
    try {
      await delay(ALIVE_POLL_INTERVAL_MS, o.signal)
    } catch {
      throw new DeployCancelledError(`${h.label}: cancelled`)
    }
  }
}

/** `gridctl status -o json` of the node, run on the host. */
export async function remoteStatus (s: SshSession, h: HostSpec, layout: Layout, signal?: AbortSignal): Promise<StatusResponse> {
  const r = await runScript(s, gridctlScript(layout, ['status', '-o', 'json']), { sudo: h.sudo, ...(signal === undefined ? {} : { signal }) })
  if (r.stdout.startsWith(DOWN_MARKER)) throw new DaemonExitedError(`gridd is not running on ${h.label}; the end of its log: ${summarizeLog(r.stdout) || '(empty)'}`)
  if (r.code !== 0) throw new RemoteCommandError(`gridctl status failed on ${h.label} (exit status ${r.code ?? 'null'}): ${lastLines(r.stderr, 3)}`)
  try {
    return JSON.parse(r.stdout) as StatusResponse
  } catch {
    throw new RemoteCommandError(`gridctl status on ${h.label} printed something that is not JSON: ${lastLines(r.stdout, 2)}`)
  }
}

/**
 * The addresses other nodes should bootstrap through: those on the IP we reach the host at (when the node listens
 * there), else its non-loopback ones, else all. Sorted, so that the config written from them is the same each run.
 */
export async function pickBootstrap (addrs: string[], host: string): Promise<string[]> {
  let ip = isIP(host) !== 0 ? host : null
  if (ip === null) {
    try { ip = (await lookup(host)).address } catch {}
  }
  const ipOf = (a: string): string | null => /^\/(?:ip4|ip6)\/([^/]+)\//.exec(a)?.[1] ?? null
  const withId = addrs.filter(a => a.includes('/p2p/'))
  const same = withId.filter(a => ipOf(a) === ip)
  const loopback = (x: string | null): boolean => x !== null && (x.startsWith('127.') || x === '::1')
  const linkLocal = (x: string | null): boolean => x !== null && (x.startsWith('169.254.') || x.toLowerCase().startsWith('fe80'))
  const routable = withId.filter(a => !loopback(ipOf(a)) && !linkLocal(ipOf(a)))
  const chosen = same.length > 0 ? same : routable.length > 0 ? routable : withId
  return [...new Set(chosen)].sort()
}

/**
 * After every host is done: the first one that succeeded must see every other successful one alive. A host it does
 * not see fails with NOT_ALIVE, though it was installed and runs.
 */
export async function meshCheck (o: RunOptions, pool: SshPool, reports: HostReport[]): Promise<void> {
  const ok = reports.filter(r => r.error === null && r.name !== null)
  if (ok.length < 2) return
  const observer = o.inventory.hosts.find(h => h.label === ok[0]?.host) as HostSpec
  const names = ok.map(r => r.name as string)
  o.progress(observer.label, `checking that it sees ${names.filter(n => n !== ok[0]?.name).join(', ')} alive`)
  const signal = o.signal
  try {
    await pool.with(targetOf(observer), async s => {
      await waitAlive(s, observer, layoutOf(observer, o.inventory.serviceManager), { mustSee: names, timeoutMs: o.waitTimeoutMs, ...(signal === undefined ? {} : { signal }) })
    }, { keep: true, ...(signal === undefined ? {} : { signal }) })
  } catch (err) {
    if (!(err instanceof NotAliveError)) {
      o.progress(observer.label, `could not check the mesh: ${(err as Error).message}`)
      return
    }
    // name the hosts it does not see
    await pool.with(targetOf(observer), async s => {
      const nodes = await waitAlive(s, observer, layoutOf(observer, o.inventory.serviceManager), { mustSee: [], timeoutMs: o.waitTimeoutMs, ...(signal === undefined ? {} : { signal }) })
      const alive = new Set(nodes.filter(n => n.state === 'alive').map(n => n.name))
      for (const r of ok) {
        if (alive.has(r.name as string)) continue
        r.result = 'failed'
        r.error = hostError(new NotAliveError(`installed and running, but ${observer.label} does not see ${r.name ?? r.host} alive after ${Math.round(o.waitTimeoutMs / 1000)}s: check that the two can reach each other's listen addresses (firewall?) and share the swarm key`))
        o.progress(r.host, `failed: ${r.error.message}`)
      }
    }, { keep: true, ...(signal === undefined ? {} : { signal }) }).catch(() => {})
  }
}
