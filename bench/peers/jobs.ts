/**
 * bench/jobs's peers, measured in the same run before Grid's cluster starts: N items of `true` as BullMQ jobs that
 * each spawn it (bench_bullmq.sh's spawn test, SPAWN_N = N), Dask `client.map` of a subprocess per item
 * (bench_dask.sh, SPAWN_N = N) and a Slurm job array (bench_slurm.sh, ARRAY_N); and W no-op jobs on BullMQ and Dask
 * (their TP_N = W) against Grid's warm-worker items. Their latency and failover parts run at small sizes (this
 * benchmark does not report them).
 */
import { loadavg } from 'node:os'
import { fmt, table } from '../lib.ts'
import { runPeer, type PeerName, type PeerRun } from '../peer.ts'
import { formatLoad } from './parse.ts'

/** bench_slurm.sh leaves Slurm's MaxArraySize at its default, 1001: its array holds at most 1,000 tasks. */
export const SLURM_ARRAY_MAX = 1000

/** A rate Grid (or GNU parallel) reached, and the load average when it was measured. */
export interface Measured { rate: number, load: string }
export const measured = (items: number, secs: number): Measured => ({ rate: items / secs, load: formatLoad(loadavg()) })

export async function jobPeers (peers: PeerName[], sizes: { items: number, workerItems: number, slurmArray: number }): Promise<Map<PeerName, PeerRun>> {
  const runs = new Map<PeerName, PeerRun>()
  const small = { REPEATS: 1, LAT_N: 100, FO_N: 12, FO_TASK_MS: 500, FO_KILL_AFTER_MS: 1000 }
  const spawnN = Math.max(sizes.items, 100)
  const noopN = Math.max(sizes.workerItems, 1000)
  for (const p of peers) {
    if (p === 'bullmq') runs.set(p, await runPeer(p, { ...small, SPAWN_N: spawnN, TP_N: noopN, FO_LOCK_MS: 2000, FO_STALLED_MS: 2000 }))
    if (p === 'dask') runs.set(p, await runPeer(p, { ...small, SPAWN_N: spawnN, TP_N: noopN }))
    if (p === 'slurm' && sizes.items > 0) runs.set(p, await runPeer(p, { REPEATS: 1, LAT_N: 10, SB_N: 50, ARRAY_N: sizes.slurmArray, SKIP_FO: 1 }))
  }
  return runs
}

const vs = (grid: number, theirs: number | undefined): string => theirs === undefined || !(theirs > 0) ? '-' : `${fmt(grid / theirs)}x`

function peerRow (r: PeerRun | undefined, label: string, metric: string, grid: Measured, note: string): string[] {
  if (r === undefined) return []
  if (!r.ok) return [label, '-', '-', r.load, `failed: ${(r.error ?? '').slice(0, 200)}`]
  const v = r.figures[metric]
  return [label, v === undefined ? '-' : fmt(v, 0), vs(grid.rate, v), r.load, note]
}

/** The N items of `true`: Grid, GNU parallel on one node and each peer, side by side. */
export function printSpawnPeers (runs: Map<PeerName, PeerRun>, n: number, conc: number, grid: Measured, parallel: Measured | undefined): void {
  if (runs.size === 0) return
  const slurm = runs.get('slurm')
  const rows = [
    ['gridctl distribute (3 daemons)', fmt(grid.rate, 0), '1.00x', grid.load, `--slots ${Math.max(1, Math.round(conc / 3))} a node`],
    ...(parallel === undefined ? [] : [['GNU parallel (one node)', fmt(parallel.rate, 0), vs(grid.rate, parallel.rate), parallel.load, `-j ${conc}`]]),
    peerRow(runs.get('bullmq'), 'BullMQ, a worker spawns true per job', 'spawn_tasks_per_s', grid, `${runs.get('bullmq')?.title.split(':')[0] ?? ''}, 3 workers x 16`),
    peerRow(runs.get('dask'), 'Dask client.map, subprocess per item', 'spawn_tasks_per_s', grid, `${runs.get('dask')?.title.split(':')[0] ?? ''}, 3 workers x 4 threads`),
    peerRow(slurm, 'Slurm job array', 'array_tasks_per_s', grid, `${slurm?.title.split(':')[0] ?? ''}, 3 slurmd x 4 CPUs, an array of ${slurm?.knobs.ARRAY_N ?? '?'}${Number(slurm?.knobs.ARRAY_N) < n ? ` (not ${n}: bench_slurm.sh keeps MaxArraySize 1001)` : ''}`),
    peerRow(slurm, 'Slurm, one sbatch per job (50 jobs)', 'sbatch_jobs_per_s', grid, '')
  ].filter(r => r.length > 0)
  table(`${n} items of true side by side, same run (the peers first, then Grid)`, ['system', 'items/s', 'Grid vs it', 'load average 1 / 5 / 15', 'set-up'], rows)
}

/** W items through Grid's warm workers against the peers' no-op jobs. */
export function printNoopPeers (runs: Map<PeerName, PeerRun>, w: number, grid: Measured): void {
  if (!runs.has('bullmq') && !runs.has('dask')) return
  const rows = [
    ['Grid warm workers (echo, --type nodeecho)', fmt(grid.rate, 0), '1.00x', grid.load, 'gridctl distribute, 3 nodes'],
    peerRow(runs.get('bullmq'), 'BullMQ no-op jobs', 'noop_tasks_per_s', grid, 'in-process handler, 3 workers x 16'),
    peerRow(runs.get('dask'), 'Dask client.map no-op', 'noop_tasks_per_s', grid, 'in-process function, 3 workers x 4 threads')
  ].filter(r => r.length > 0)
  table(`${w} items through warm workers against the peers' no-op jobs, same run`, ['system', 'items/s', 'Grid vs it', 'load average 1 / 5 / 15', 'set-up'], rows)
}
