/**
 * bench/workflows's peers, measured in the same run before Grid's cluster starts, on the same two shapes of `true`
 * jobs: Dask, a `dask.delayed` graph of subprocess calls (bench/peers/dask-dag.sh), and Slurm, batch jobs chained with
 * `sbatch --dependency=afterok` (bench/peers/slurm-dag.sh; its wide layer is a job array). Slurm starts a dependent
 * job at its scheduler's pace (most of a second each here), so its chain is sized on its own (--slurm-chain).
 */
import { loadavg } from 'node:os'
import { fmt, table } from '../lib.ts'
import { ownScript, runPeer, type PeerName, type PeerRun } from '../peer.ts'
import { formatLoad } from './parse.ts'

/** One DAG's figures: Grid's (from its workflow record) or a peer's (from its script). */
export interface DagFigures { jobs: number, makespanS: number, overheadMs: number, layerRate?: number, load: string }
export const dagFigures = (jobs: number, makespanS: number, overheadMs: number, layerRate?: number): DagFigures =>
  ({ jobs, makespanS, overheadMs, ...(layerRate === undefined ? {} : { layerRate }), load: formatLoad(loadavg()) })

export async function workflowPeers (peers: PeerName[], sizes: { wide: number, chain: number, slurmWide: number, slurmChain: number }): Promise<Map<PeerName, PeerRun>> {
  const runs = new Map<PeerName, PeerRun>()
  for (const p of peers) {
    if (p === 'dask') runs.set(p, await runPeer(p, { REPEATS: 1, WIDE: sizes.wide, CHAIN: sizes.chain }, { script: ownScript('dask-dag.sh'), name: 'dask-dag' }))
    if (p === 'slurm') runs.set(p, await runPeer(p, { REPEATS: 1, WIDE: sizes.slurmWide, CHAIN: sizes.slurmChain }, { script: ownScript('slurm-dag.sh'), name: 'slurm-dag' }))
    if (p === 'bullmq') console.error('peer bullmq: no workflow script (the DAG comparison is with Dask and Slurm)')
  }
  return runs
}

function peerRows (label: string, r: PeerRun | undefined): string[][] {
  if (r === undefined) return []
  if (!r.ok) return [[label, '-', '-', '-', '-', '-', r.load, `failed: ${(r.error ?? '').slice(0, 200)}`]]
  const f = r.figures
  const row = (shape: 'wide' | 'chain', dag: string): string[] => f[`${shape}_makespan_s`] === undefined
    ? []
    : [label, dag, fmt(f[`${shape}_jobs_done`] ?? NaN, 0), fmt(f[`${shape}_makespan_s`] ?? NaN), fmt(f[`${shape}_overhead_ms`] ?? NaN, 1),
        shape === 'wide' ? fmt(f.wide_layer_jobs_per_s ?? NaN, 0) : '-', r.load, r.title.split(':')[0] ?? '']
  return [row('wide', `wide: start, ${r.knobs.WIDE}, end`), row('chain', `chain of ${r.knobs.CHAIN}`)].filter(x => x.length > 0)
}

/** Grid's two DAGs and each peer's, side by side. */
export function printWorkflowPeers (runs: Map<PeerName, PeerRun>, grid: { wide?: DagFigures, chain?: DagFigures }): void {
  if (runs.size === 0) return
  const g = (dag: string, f: DagFigures | undefined): string[][] => f === undefined
    ? []
    : [['Grid (3 daemons x 8 slots)', dag, fmt(f.jobs, 0), fmt(f.makespanS), fmt(f.overheadMs, 1), f.layerRate === undefined ? '-' : fmt(f.layerRate, 0), f.load, 'gridctl workflow run']]
  const rows = [
    ...g(`wide: start, ${(grid.wide?.jobs ?? 2) - 2}, end`, grid.wide), ...g(`chain of ${grid.chain?.jobs ?? 0}`, grid.chain),
    ...peerRows('Dask dask.delayed (3 workers x 4 threads)', runs.get('dask')),
    ...peerRows('Slurm sbatch --dependency=afterok (3 slurmd x 4 CPUs)', runs.get('slurm'))
  ]
  table('workflows of true side by side, same run (the peers first, then Grid)', ['system', 'DAG', 'jobs', 'makespan s', 'overhead ms/job', 'layer jobs/s', 'load average 1 / 5 / 15', 'version'], rows)
}
