/**
 * `gridctl cluster status|start|stop|restart`: the same inventory and SSH pool as deploy, acting on the installed
 * daemons. `restart --rolling` goes one host at a time: drain (remote `gridctl drain --wait`), restart, wait until
 * alive and seeing the nodes it saw before, undrain; it stops at the first failure so that at most one node is out.
 */
import { formatDuration } from '../interface/index.ts'
import { addressOf, checkHost, failHostJob, layoutOf, makePool, meshCheck, remoteStatus, startHostJob, targetOf, waitAlive, type RunOptions } from './common.ts'
import { CommandMissingError, NotInstalledError, SkippedError } from './errors.ts'
import type { HostSpec } from './inventory.ts'
import type { Layout } from './layout.ts'
import {
  parseProbe, plainGridctlScript, probeScript, remoteFailure, restartScript, runScript, startScript, stopScript, type Probe
} from './remote.ts'
import { hostError, type HostReport, type StatusReport } from './report.ts'
import type { SshPool } from './ssh-pool.ts'
import type { SshSession } from './ssh.ts'

export type ClusterAction = 'start' | 'stop' | 'restart'

export interface ClusterOptions extends RunOptions {
  /** restart: one host at a time, drained first. */
  rolling?: boolean
  /** How long one host's drain may wait for its running tasks. */
  drainTimeoutMs?: number
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 30 * 60_000

async function probe (s: SshSession, h: HostSpec, layout: Layout, signal?: AbortSignal): Promise<Probe> {
  const r = await runScript(s, probeScript(layout, h.node, [layout.griddJs]), { sudo: h.sudo, ...(signal === undefined ? {} : { signal }) })
  return parseProbe(s, r, h.sudo)
}

function installedOrThrow (p: Probe, h: HostSpec, layout: Layout): string {
  if (p.files[layout.griddJs] === null || p.files[layout.griddJs] === undefined) {
    throw new NotInstalledError(`Grid is not installed on ${h.label} under ${layout.prefix}: run gridctl deploy first (with the same inventory and --service-manager)`)
  }
  return p.installed ?? 'unknown'
}

export async function clusterStatus (o: RunOptions): Promise<StatusReport[]> {
  const pool = makePool(o)
  const sm = o.inventory.serviceManager
  const signal = o.signal
  try {
    return await Promise.all(o.inventory.hosts.map(async h => {
      const started = Date.now()
      const row: StatusReport = { host: h.label, address: addressOf(h), name: h.name, installed: null, running: false, state: null, alive: null, total: null, durationMs: 0, error: null }
      const layout = layoutOf(h, sm)
      try {
        await pool.with(targetOf(h), async s => {
          const p = await probe(s, h, layout, signal)
          if (p.nodeMissing) checkHost(p, h, 'none')
          if (p.files[layout.griddJs] === null || p.files[layout.griddJs] === undefined) return
          row.installed = p.installed ?? 'unknown'
          row.running = p.running
          if (!p.running) return
          const st = await remoteStatus(s, h, layout, signal)
          row.name = st.name
          row.state = st.state
          row.alive = st.counts.alive
          row.total = st.counts.total
        }, signal === undefined ? {} : { signal })
      } catch (err) {
        row.error = hostError(err)
      }
      row.durationMs = Date.now() - started
      o.progress(h.label, row.error !== null ? `failed: ${row.error.message}` : row.installed === null ? 'Grid is not installed' : row.running ? `running ${row.installed}` : `installed (${row.installed}), not running`)
      return row
    }))
  } finally {
    pool.closeAll()
  }
}

export async function clusterAction (action: ClusterAction, o: ClusterOptions): Promise<HostReport[]> {
  const pool = makePool(o)
  try {
    if (action === 'restart' && o.rolling === true) return await rollingRestart(o, pool)
    const reports = await Promise.all(o.inventory.hosts.map(async (h, i) => await actOn(action, o, pool, h, i === 0)))
    if (action !== 'stop') await meshCheck(o, pool, reports)
    return reports
  } finally {
    pool.closeAll()
  }
}

function newReport (h: HostSpec): HostReport {
  return { host: h.label, address: addressOf(h), name: h.name, result: 'failed', version: null, changes: [], durationMs: 0, error: null }
}

async function actOn (action: ClusterAction, o: ClusterOptions, pool: SshPool, h: HostSpec, keep: boolean): Promise<HostReport> {
  const job = startHostJob(o, h)
  const { started, report, layout, signal, run, say } = job
  try {
    await pool.with(targetOf(h), async s => {
      const p = await probe(s, h, layout, signal)
      if (p.nodeMissing) checkHost(p, h, 'none')
      report.version = installedOrThrow(p, h, layout)
      if (action === 'stop') {
        if (!p.running) { report.result = 'unchanged'; report.changes = ['already stopped']; say('already stopped'); return }
        say('stopping gridd')
        const r = await runScript(s, stopScript(layout), run)
        if (r.code !== 0) throw remoteFailure(s, 'stopping gridd', r, h.sudo)
        report.result = 'stopped'
        report.changes = ['stopped']
        say('stopped')
        return
      }
      if (action === 'start' && p.running) {
        report.result = 'unchanged'
        report.changes = ['already running']
        say('already running')
      } else {
        const restart = action === 'restart' && p.running
        say(restart ? 'restarting gridd' : 'starting gridd')
        const r = await runScript(s, restart ? restartScript(layout) : startScript(layout), run)
        if (r.code !== 0) throw remoteFailure(s, restart ? 'restarting gridd' : 'starting gridd', r, h.sudo)
        report.result = restart ? 'restarted' : 'started'
        report.changes = [report.result]
        say('waiting until it is alive in the mesh')
      }
      await waitAlive(s, h, layout, { mustSee: [], timeoutMs: o.waitTimeoutMs, ...(signal === undefined ? {} : { signal }) })
      const st = await remoteStatus(s, h, layout, signal)
      report.name = st.name
      report.version = st.version
      if (report.result !== 'unchanged') say(`${report.result}: ${st.name} alive`)
    }, { keep, ...(signal === undefined ? {} : { signal }), onConnect: () => { say(`connecting to ${addressOf(h)}`) } })
  } catch (err) {
    failHostJob(job, err)
  }
  report.durationMs = Date.now() - started
  return report
}

/** One host at a time; the first failure stops the rest (they are reported skipped). */
async function rollingRestart (o: ClusterOptions, pool: SshPool): Promise<HostReport[]> {
  const reports: HostReport[] = []
  let failed: string | null = null
  for (const h of o.inventory.hosts) {
    if (failed !== null) {
      const r = newReport(h)
      r.result = 'skipped'
      r.error = hostError(new SkippedError(`not restarted: the rolling restart stopped at ${failed}, which failed`))
      reports.push(r)
      continue
    }
    const r = await rollOne(o, pool, h)
    reports.push(r)
    if (r.error !== null) failed = h.label
  }
  return reports
}

async function rollOne (o: ClusterOptions, pool: SshPool, h: HostSpec): Promise<HostReport> {
  const job = startHostJob(o, h)
  const { started, report, layout, signal, run, say } = job
  let drained = false
  try {
    await pool.with(targetOf(h), async s => {
      const p = await probe(s, h, layout, signal)
      if (p.nodeMissing) checkHost(p, h, 'none')
      report.version = installedOrThrow(p, h, layout)
      const alive = { mustSee: [] as string[], timeoutMs: o.waitTimeoutMs, ...(signal === undefined ? {} : { signal }) }
      if (!p.running) {
        say('not running: starting gridd')
        const r = await runScript(s, startScript(layout), run)
        if (r.code !== 0) throw remoteFailure(s, 'starting gridd', r, h.sudo)
        report.result = 'started'
        report.changes = ['started']
      } else {
        // the nodes it sees alive now are the ones it must see again after its restart
        const before = await waitAlive(s, h, layout, alive)
        alive.mustSee = before.filter(n => !n.self && n.state === 'alive').map(n => n.name)
        const drainTimeoutMs = o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS
        say(`draining (gridctl drain --wait; up to ${formatDuration(drainTimeoutMs)})`)
        // a drain that fails half-way (timeout) may have taken effect: say so if this host fails from here on
        drained = true
        try {
          await remoteGridctl(s, h, layout, ['drain', '--wait'], drainTimeoutMs, signal)
        } catch (err) {
          if (err instanceof CommandMissingError) drained = false
          throw err
        }
        report.changes.push('drained')
        say('restarting gridd')
        const r = await runScript(s, restartScript(layout), run)
        if (r.code !== 0) throw remoteFailure(s, 'restarting gridd', r, h.sudo)
        report.changes.push('restarted')
        say(`waiting until it is alive${alive.mustSee.length > 0 ? ` and sees ${alive.mustSee.join(', ')}` : ''}`)
      }
      await waitAlive(s, h, layout, alive)
      if (drained) {
        say('undraining (gridctl undrain)')
        await remoteGridctl(s, h, layout, ['undrain'], undefined, signal)
        drained = false
        report.changes.push('undrained')
        report.result = 'restarted'
      }
      const st = await remoteStatus(s, h, layout, signal)
      report.name = st.name
      report.version = st.version
      say(`${report.result}: ${st.name} alive`)
    }, { ...(signal === undefined ? {} : { signal }), onConnect: () => { say(`connecting to ${addressOf(h)}`) } })
  } catch (err) {
    failHostJob(job, err, drained ? `${h.label} is still drained: run "gridctl undrain" on it once it is fixed` : undefined)
  }
  report.durationMs = Date.now() - started
  return report
}

/** Runs `gridctl ARGS` on the host; a gridctl without that command is a COMMAND_MISSING error naming the host. */
async function remoteGridctl (s: SshSession, h: HostSpec, layout: Layout, args: string[], timeoutMs: number | undefined, signal?: AbortSignal): Promise<void> {
  const r = await runScript(s, plainGridctlScript(layout, args), { sudo: h.sudo, ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(signal === undefined ? {} : { signal }) })
  if (r.code === 2 && /unknown command/.test(r.stderr)) {
    throw new CommandMissingError(`the gridctl installed on ${h.label} has no "${args[0] ?? ''}" command (it is older than this gridctl): upgrade it with gridctl deploy, or restart without --rolling`)
  }
  if (r.code !== 0) throw remoteFailure(s, `gridctl ${args.join(' ')}`, r, h.sudo)
}
