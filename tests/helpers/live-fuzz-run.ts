/**
 * One live-fuzz session, as `npm run fuzz:live` and tests/cluster/live-fuzz.test.ts run it: two real daemons, the live
 * fuzzer (live-fuzz.ts) attacking n1 while valid tasks keep going both ways between n1 and n2, n1's RSS sampled
 * against its baseline (taken after a warm-up of valid tasks). The report says what happened; the callers judge it.
 */
import { readFileSync } from 'node:fs'
import { Cluster, type Gridd } from './cluster.ts'
import { LiveFuzzer, type LiveFuzzStats } from './live-fuzz.ts'
import { fetchMetrics, metricValue } from './metrics.ts'

export interface LiveFuzzReport {
  durationMs: number
  stats: LiveFuzzStats
  /** the daemons still running at the end */
  up: string[]
  baselineRssBytes: number
  peakRssBytes: number
  /** valid tasks during the attack: completed, and the failures with their output */
  tasksCompleted: number
  taskFailures: string[]
  /** what n1 counted: strikes, bans, invalid frames, rejected gossip */
  strikes: number
  bans: number
  invalidFrames: number
  gossipRejected: number
  /** whether n1 still refuses the first identity it banned, at the end */
  firstIdentityRefused: boolean | undefined
}

export function rssBytes (n: Gridd): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${n.pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) * 1024
}

async function echo (from: Gridd, node: string, text: string): Promise<string | undefined> {
  const r = await from.ctl(['run', '--node', node, '--', 'echo', text], { timeoutMs: 60_000 })
  return r.code === 0 && r.stdout.includes(text) ? undefined : `${from.name} -> ${node}: exit ${r.code} ${r.stderr.trim().slice(0, 300)}`
}

export async function runLiveFuzz (opts: { durationMs: number, seed?: number, log?: (line: string) => void }): Promise<LiveFuzzReport> {
  const log = opts.log ?? (() => {})
  const c = await Cluster.start(2)
  try {
    await c.converged()
    const [n1, n2] = [c.node('n1'), c.node('n2')]
    // warm-up: the daemons' code paths for valid work are compiled and their buffers grown before the baseline
    for (let i = 0; i < 3; i++) { await echo(n2, 'n1', `warm ${i}`); await echo(n1, 'n2', `warm ${i}`) }
    const baselineRssBytes = rssBytes(n1)
    let peakRssBytes = baselineRssBytes
    const sampler = setInterval(() => { try { peakRssBytes = Math.max(peakRssBytes, rssBytes(n1)) } catch {} }, 200)
    log(`n1 baseline RSS ${(baselineRssBytes / 2 ** 20).toFixed(0)} MiB; attacking for ${opts.durationMs} ms`)
    const fuzzer = await LiveFuzzer.start(c.swarmKey, { id: n1.id, addr: n1.addrs[0] as string, socket: n1.socket }, { seed: opts.seed ?? 1 })
    const firstId = fuzzer.id
    let tasksCompleted = 0
    const taskFailures: string[] = []
    const started = performance.now()
    try {
      for (let i = 0; performance.now() - started < opts.durationMs; i++) {
        const [from, to] = i % 2 === 0 ? [n2, 'n1'] : [n1, 'n2']
        const failure = await echo(from, to, `valid ${i}`)
        if (failure === undefined) tasksCompleted++
        else taskFailures.push(failure)
        if (i % 10 === 0) log(`${Math.round((performance.now() - started) / 1000)} s: ${tasksCompleted} tasks, ${JSON.stringify(fuzzer.stats)}`)
      }
    } finally {
      clearInterval(sampler)
    }
    const t = await fetchMetrics(n1.socket)
    let firstIdentityRefused: boolean | undefined
    if (fuzzer.stats.banned > 0) firstIdentityRefused = await fuzzer.refused(firstId)
    await fuzzer.stop()
    return {
      durationMs: Math.round(performance.now() - started),
      stats: fuzzer.stats,
      up: c.nodes.filter(n => !n.exited).map(n => n.name),
      baselineRssBytes,
      peakRssBytes,
      tasksCompleted,
      taskFailures,
      strikes: metricValue(t, 'grid_mesh_peer_strikes_total'),
      bans: metricValue(t, 'grid_mesh_peer_bans_total'),
      invalidFrames: metricValue(t, 'grid_mesh_rpc_invalid_frames_total'),
      gossipRejected: metricValue(t, 'grid_mesh_gossip_rejected_total'),
      firstIdentityRefused
    }
  } finally {
    await c.destroy()
  }
}
