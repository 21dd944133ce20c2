/** Pure pieces of the peer comparisons: which peers a flag names, and the medians a peer script prints. */

/** The peers the benchmarks can compare against (shared/peers/bench_NAME.sh). */
export const PEERS = ['bullmq', 'dask', 'slurm'] as const
export type PeerName = typeof PEERS[number]

/** `--peers` value: a comma list of PEERS, `all` (or empty) for every one, `none` for no peer. Throws on an unknown name. */
export function parsePeers (list: string | undefined): PeerName[] {
  const v = (list ?? 'all').trim()
  if (v === '' || v === 'all') return [...PEERS]
  if (v === 'none') return []
  const names = v.split(',').map(s => s.trim()).filter(s => s !== '')
  const unknown = names.filter(n => !(PEERS as readonly string[]).includes(n))
  if (unknown.length > 0) throw new Error(`--peers: unknown peer ${unknown.join(', ')} (known: ${PEERS.join(', ')}, all, none)`)
  return [...new Set(names)] as PeerName[]
}

/**
 * A peer script's summary: lines `NAME median= X  runs=...` (a metric with no value reads `NAME n/a` and is left out),
 * and the first `== ...` line, which names the system and its version.
 */
export function parseMedians (text: string): { figures: Record<string, number>, title: string } {
  const figures: Record<string, number> = {}
  let title = ''
  for (const line of text.split('\n')) {
    const x = /^(\w+)\s+median=\s*(-?[0-9.]+(?:e[-+]?\d+)?)/i.exec(line)
    if (x !== null) figures[x[1] as string] = Number(x[2])
    else if (title === '' && line.startsWith('== ')) title = line.slice(3).trim()
  }
  return { figures, title }
}

/** The knobs of a run as a stable key (sorted NAME=VALUE), for sharing one run's figures between benchmarks. */
export function knobKey (peer: string, knobs: Record<string, string | number>): string {
  return [peer, ...Object.keys(knobs).sort().map(k => `${k}=${knobs[k] ?? ''}`)].join(' ')
}

/** os.loadavg() as `1.23 / 2.34 / 3.45` (1, 5 and 15 minutes). */
export function formatLoad (l: number[]): string {
  return l.slice(0, 3).map(x => x.toFixed(2)).join(' / ')
}
