/**
 * The per-host report of a deploy or cluster run: one row per host in inventory order, with columns the CLI prints
 * as a table or Markdown (the rows themselves are the JSON document), and the one-line summary.
 */
import { formatDuration } from '../interface/index.ts'
import { reportCode } from './errors.ts'

/** What happened to a host. Deploy: installed, upgraded, reconfigured, started, unchanged. Cluster: started, stopped, restarted, unchanged. */
export type HostResultKind = 'installed' | 'upgraded' | 'reconfigured' | 'started' | 'stopped' | 'restarted' | 'unchanged' | 'failed' | 'skipped'

export interface HostError {
  /** Stable code (see DEPLOY_ERROR_CODES). */
  code: string
  message: string
}

export interface HostReport {
  /** The host's label: its name in the inventory, else host[:port]. */
  host: string
  /** user@host:port */
  address: string
  /** gridd's node name (null until known). */
  name: string | null
  result: HostResultKind
  /** Version of the gridd running there at the end (else the one installed). */
  version: string | null
  /** What was changed or done, in order (package, config, swarm key, unit, launchers, started, restarted, ...). */
  changes: string[]
  durationMs: number
  error: HostError | null
}

export interface StatusReport {
  host: string
  address: string
  name: string | null
  /** Installed package version, null when Grid is not installed. */
  installed: string | null
  running: boolean
  /** The node's own state (alive, draining, leaving) when it answers. */
  state: string | null
  /** What the node sees: alive nodes and all known nodes. */
  alive: number | null
  total: number | null
  durationMs: number
  error: HostError | null
}

export interface ReportColumn<T> {
  header: string
  value: (row: T) => unknown
  right?: boolean
}

export const HOST_COLUMNS: Array<ReportColumn<HostReport>> = [
  { header: 'host', value: r => r.host },
  { header: 'name', value: r => r.name },
  { header: 'result', value: r => r.result },
  { header: 'version', value: r => r.version },
  { header: 'changes', value: r => r.changes.join(', ') },
  { header: 'duration', value: r => formatDuration(r.durationMs), right: true },
  { header: 'error', value: r => r.error === null ? null : `${r.error.code}: ${r.error.message}` }
]

export const STATUS_COLUMNS: Array<ReportColumn<StatusReport>> = [
  { header: 'host', value: r => r.host },
  { header: 'name', value: r => r.name },
  { header: 'installed', value: r => r.installed ?? (r.error === null ? 'no' : null) },
  { header: 'running', value: r => r.error !== null && r.installed === null ? null : (r.running ? 'yes' : 'no') },
  { header: 'state', value: r => r.state },
  { header: 'nodes', value: r => r.alive === null ? null : `${r.alive}/${r.total ?? '?'} alive`, right: true },
  { header: 'error', value: r => r.error === null ? null : `${r.error.code}: ${r.error.message}` }
]

export function hostError (err: unknown): HostError {
  return { code: reportCode(err), message: err instanceof Error ? err.message : String(err) }
}

/** "3 hosts in 12.4s: 2 installed, 1 failed" */
export function summary (rows: Array<HostReport | StatusReport>, durationMs: number): string {
  const counts = new Map<string, number>()
  for (const r of rows) {
    const k = 'result' in r ? r.result : r.error !== null ? 'failed' : r.installed === null ? 'not installed' : r.running ? 'running' : 'stopped'
    counts.set(k, (counts.get(k) ?? 0) + 1)
  }
  const parts = [...counts].map(([k, n]) => `${n} ${k}`)
  return `${rows.length} host${rows.length === 1 ? '' : 's'} in ${formatDuration(durationMs)}: ${parts.join(', ')}`
}
