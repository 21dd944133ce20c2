/**
 * `gridctl deploy`: per host, over one SSH connection: probe (Node, root, sha256 of every managed file, running?),
 * upload only what differs (SFTP into a private staging directory), install it atomically, (re)start gridd only when
 * something it reads changed or it is not running, and wait until it is alive in the mesh. Without bootstrap
 * addresses in the inventory the first host goes first and its addresses become the others' bootstrap.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { newSwarmKey, parseSwarmKey } from '../../proto/index.ts'
import { SwarmKeyError } from '../interface/index.ts'
import { writeFileAtomic } from '../util/index.ts'
import { SERVICE_USER, SYSTEMD_UNIT_FILE, SYSUSERS_FILE, TMPFILES_FILE } from './constants.ts'
import {
  addressOf, checkHost, failHostJob, makePool, meshCheck, pickBootstrap, remoteStatus, startHostJob, targetOf, waitAlive, type RunOptions
} from './common.ts'
import { RemoteCommandError, SkippedError } from './errors.ts'
import type { HostSpec, Inventory } from './inventory.ts'
import type { Layout } from './layout.ts'
import { formatSize, loadPackage, sha256, type GridPackage } from './package.ts'
import {
  MKTEMP_SCRIPT, cleanupScript, installScript, mustRun, parseProbe, probeScript, restartScript, runScript, startScript,
  type InstallItem
} from './remote.ts'
import { SYSUSERS_CONF, TMPFILES_CONF, renderConfig, renderGriddLauncher, renderGridctlLauncher, renderUnit } from './render.ts'
import { hostError, type HostReport } from './report.ts'
import type { SshPool } from './ssh-pool.ts'
import type { SshSession } from './ssh.ts'

export interface DeployOptions extends RunOptions {
  /** Folder with gridd.mjs, gridctl.mjs and chunks/; default: found beside gridctl or in the checkout's dist/bundle. */
  packageDir?: string
}

export interface SwarmKey {
  path: string
  bytes: Buffer
  fingerprint: string
}

/**
 * The inventory's swarm key, or (when it names none) the one beside it, generated with mode 0600 on first use.
 * Its content is never printed; the fingerprint is safe to show.
 */
export function ensureSwarmKey (inv: Inventory, progress: RunOptions['progress']): SwarmKey {
  const path = inv.swarmKey
  if (existsSync(path)) {
    const bytes = readFileSync(path)
    const { fingerprint } = parseSwarmKey(bytes, path)
    const mode = statSync(path).mode & 0o777
    if ((mode & 0o077) !== 0) progress(null, `warning: the swarm key ${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`)
    return { path, bytes, fingerprint }
  }
  if (inv.swarmKeyNamed) {
    throw new SwarmKeyError(`the swarm key ${path} named in the inventory does not exist: create it with "gridctl keygen ${path}", or remove swarmKey from the inventory to have deploy generate one beside it`)
  }
  const bytes = Buffer.from(newSwarmKey())
  writeFileAtomic(path, bytes, 0o600)
  const { fingerprint } = parseSwarmKey(bytes, path)
  progress(null, `generated the swarm key ${path} (mode 0600, fingerprint ${fingerprint}); keep it: every node of the cluster needs it`)
  return { path, bytes, fingerprint }
}

/** One file deploy manages on a host. */
interface ManagedFile {
  /** What it is, as the report's changes column says it. */
  what: 'package' | 'launchers' | 'config' | 'swarm key' | 'unit'
  dest: string
  mode: string
  owner: string
  sha256: string
  size: number
  source: { path: string } | { data: Buffer }
  /** gridd reads it: a change restarts the daemon. */
  restart: boolean
}

function managedFiles (layout: Layout, pkg: GridPackage, key: SwarmKey, nodePath: string, config: string): ManagedFile[] {
  const data = (what: ManagedFile['what'], dest: string, mode: string, owner: string, text: Buffer | string, restart: boolean): ManagedFile => {
    const buf = typeof text === 'string' ? Buffer.from(text) : text
    return { what, dest, mode, owner, sha256: sha256(buf), size: buf.length, source: { data: buf }, restart }
  }
  const systemd = layout.serviceManager === 'systemd'
  const files: ManagedFile[] = [
    // the chunks before the programs that load them, so that a program started while the files go in finds its chunks
    ...pkg.chunks.map((c): ManagedFile => ({ what: 'package', dest: `${layout.chunksDir}/${c.name}`, mode: '0644', owner: '', sha256: c.sha256, size: c.size, source: { path: c.path }, restart: false })),
    { what: 'package', dest: layout.griddJs, mode: '0644', owner: '', sha256: pkg.gridd.sha256, size: pkg.gridd.size, source: { path: pkg.gridd.path }, restart: true },
    { what: 'package', dest: layout.gridctlJs, mode: '0644', owner: '', sha256: pkg.gridctl.sha256, size: pkg.gridctl.size, source: { path: pkg.gridctl.path }, restart: false },
    data('package', layout.versionFile, '0644', '', `${pkg.version}\n`, false),
    data('launchers', layout.binGridd, '0755', '', renderGriddLauncher(layout, nodePath), true),
    data('launchers', layout.binGridctl, '0755', '', renderGridctlLauncher(layout, nodePath), false),
    data('config', layout.configFile, systemd ? '0640' : '0600', systemd ? `root:${SERVICE_USER}` : '', config, true),
    data('swarm key', layout.swarmKeyFile, '0600', systemd ? `${SERVICE_USER}:${SERVICE_USER}` : '', key.bytes, true)
  ]
  if (systemd) {
    files.push(
      data('unit', SYSUSERS_FILE, '0644', '', SYSUSERS_CONF, false),
      data('unit', TMPFILES_FILE, '0644', '', TMPFILES_CONF, false),
      data('unit', SYSTEMD_UNIT_FILE, '0644', '', renderUnit(layout.prefix), true)
    )
  }
  return files
}

/**
 * Every path a probe hashes: the managed files (their content depends on the probe's answer, their paths do not). A
 * chunk restarts nothing by itself: its name carries its content's hash, so a changed chunk changes gridd.mjs too.
 */
function managedPaths (layout: Layout, pkg: GridPackage): string[] {
  const paths = [...pkg.chunks.map(c => `${layout.chunksDir}/${c.name}`), layout.griddJs, layout.gridctlJs, layout.versionFile, layout.binGridd, layout.binGridctl, layout.configFile, layout.swarmKeyFile]
  if (layout.serviceManager === 'systemd') paths.push(SYSUSERS_FILE, TMPFILES_FILE, SYSTEMD_UNIT_FILE)
  return paths
}

interface HostOutcome {
  report: HostReport
  addrs: string[]
}

export async function deploy (o: DeployOptions): Promise<HostReport[]> {
  const inv = o.inventory
  const pkg = await loadPackage(o.packageDir, o.signal === undefined ? {} : { signal: o.signal })
  const key = ensureSwarmKey(inv, o.progress)
  const pool = makePool(o)
  const reports: Array<HostReport | undefined> = inv.hosts.map(() => undefined)
  try {
    const [first, ...rest] = inv.hosts as [HostSpec, ...HostSpec[]]
    if (inv.bootstrap.length === 0) {
      o.progress(null, `no bootstrap in the inventory: deploying ${first.label} first, then the others through it`)
      const one = await deployHost(o, pool, pkg, key, first, [], [], true)
      reports[0] = one.report
      if (one.report.error !== null) {
        for (const h of rest) {
          reports[h.index] = skipped(h, new SkippedError(`not deployed: the first host ${first.label}, which the others join through, failed (${one.report.error.code}); fix it, or list bootstrap addresses in the inventory`))
        }
        return reports as HostReport[]
      }
      const bootstrap = await pickBootstrap(one.addrs, first.host)
      const firstName = one.report.name as string
      await Promise.all(rest.map(async h => {
        reports[h.index] = (await deployHost(o, pool, pkg, key, h, bootstrap, [firstName], false)).report
      }))
    } else {
      await Promise.all(inv.hosts.map(async (h, i) => {
        reports[h.index] = (await deployHost(o, pool, pkg, key, h, inv.bootstrap, [], i === 0)).report
      }))
    }
    await meshCheck(o, pool, reports as HostReport[])
  } finally {
    pool.closeAll()
  }
  return reports as HostReport[]
}

function skipped (h: HostSpec, err: Error): HostReport {
  return { host: h.label, address: addressOf(h), name: h.name, result: 'skipped', version: null, changes: [], durationMs: 0, error: hostError(err) }
}

async function deployHost (o: DeployOptions, pool: SshPool, pkg: GridPackage, key: SwarmKey, h: HostSpec, bootstrap: string[], mustSee: string[], keep: boolean): Promise<HostOutcome> {
  const job = startHostJob(o, h)
  const { started, report, layout, signal, run, say } = job
  let addrs: string[] = []
  const sm = o.inventory.serviceManager
  try {
    await pool.with(targetOf(h), async s => {
      const probe = parseProbe(s, await runScript(s, probeScript(layout, h.node, managedPaths(layout, pkg)), run), h.sudo)
      checkHost(probe, h, sm)
      say(`node ${probe.node ?? '?'} at ${probe.nodePath ?? '?'}${probe.installed === null ? '; Grid not installed yet' : `; Grid ${probe.installed} installed, ${probe.running ? 'running' : 'not running'}`}`)
      const config = renderConfig(layout, { cluster: o.inventory.cluster, bootstrap, gridd: h.gridd })
      const files = managedFiles(layout, pkg, key, probe.nodePath as string, config)
      const changed = files.filter(f => probe.files[f.dest] !== f.sha256)
      const changes: string[] = [...new Set(changed.map(f => f.what))]
      if (changed.length > 0) await install(s, h, layout, pkg, key, changed, say, run)
      const restart = probe.running && changed.some(f => f.restart)
      if (restart) {
        say(`restarting gridd (${[...new Set(changed.filter(f => f.restart).map(f => f.what))].join(', ')} changed)`)
        await mustRun(s, 'restarting gridd', restartScript(layout), run)
        changes.push('restarted')
      } else if (!probe.running) {
        say(`starting gridd${sm === 'none' ? ` (log ${layout.logFile ?? ''})` : ' (gridd.service)'}`)
        await mustRun(s, 'starting gridd', startScript(layout), run)
        changes.push('started')
      } else if (changed.length === 0) {
        say('up to date: nothing to change')
      }
      report.changes = changes
      if (restart || !probe.running) say(`waiting until it is alive in the mesh${mustSee.length > 0 ? ` and sees ${mustSee.join(', ')}` : ''}`)
      const nodes = await waitAlive(s, h, layout, { mustSee, timeoutMs: o.waitTimeoutMs, ...(signal === undefined ? {} : { signal }) })
      const status = await remoteStatus(s, h, layout, signal)
      report.name = status.name
      report.version = status.version
      addrs = status.addrs
      report.result = probe.files[layout.griddJs] === null || probe.files[layout.griddJs] === undefined
        ? 'installed'
        : changes.includes('package') ? 'upgraded' : changed.length > 0 ? 'reconfigured' : !probe.running ? 'started' : 'unchanged'
      say(`${report.result}: ${status.name} alive, sees ${nodes.filter(n => n.state === 'alive').length} of ${nodes.length} nodes alive`)
    }, { keep, ...(signal === undefined ? {} : { signal }), onConnect: () => { say(`connecting to ${addressOf(h)}`) } })
  } catch (err) {
    failHostJob(job, err)
  }
  report.durationMs = Date.now() - started
  return { report, addrs }
}

/** Uploads the changed files into a private staging directory, then moves them into place atomically. */
async function install (s: SshSession, h: HostSpec, layout: Layout, pkg: GridPackage, key: SwarmKey, changed: ManagedFile[], say: (m: string) => void, run: { sudo: boolean, signal?: AbortSignal }): Promise<void> {
  const mk = await mustRun(s, 'creating a staging directory', MKTEMP_SCRIPT, { sudo: false, ...(run.signal === undefined ? {} : { signal: run.signal }) })
  const staging = mk.stdout.trim()
  if (!staging.startsWith('/')) throw new RemoteCommandError(`mktemp on ${h.label} printed ${JSON.stringify(staging.slice(0, 80))} instead of a directory`)
  try {
    const items: InstallItem[] = []
    const small: string[] = []
    let uploading = false
    for (const [i, f] of changed.entries()) {
      const staged = `${i}-${f.dest.split('/').pop() ?? 'file'}`
      const remote = `${staging}/${staged}`
      const opt = run.signal === undefined ? {} : { signal: run.signal }
      if ('path' in f.source) {
        if (!uploading) {
          uploading = true
          const files = changed.filter(c => 'path' in c.source)
          const name = files.some(c => c.dest === layout.griddJs) ? 'gridd' : files.some(c => c.dest === layout.gridctlJs) ? 'gridctl' : 'the chunks of grid'
          say(`uploading ${name} ${pkg.version} (${formatSize(files.reduce((n, c) => n + c.size, 0))}, ${files.length} file${files.length === 1 ? '' : 's'})`)
        }
        await s.putFile(f.source.path, remote, 0o600, opt)
      } else {
        const label = f.what === 'swarm key' ? `swarm key (fingerprint ${key.fingerprint})` : f.what === 'package' ? null : f.what
        if (label !== null && !small.includes(label)) small.push(label)
        await s.writeFile(remote, f.source.data, 0o600, opt)
      }
      items.push({ staged, dest: f.dest, mode: f.mode, owner: f.owner })
    }
    if (small.length > 0) say(`writing ${small.join(', ')}`)
    say(`installing ${changed.length} file${changed.length === 1 ? '' : 's'} under ${layout.prefix}${layout.serviceManager === 'systemd' ? ' and /etc' : ''}`)
    const keep = changed.some(f => f.dest === layout.griddJs || f.dest === layout.gridctlJs) ? pkg.chunks.map(c => c.name) : undefined
    await mustRun(s, 'installing files', installScript(layout, staging, items, keep), run)
  } finally {
    try { await runScript(s, cleanupScript(staging), { sudo: false }) } catch {}
  }
}
