/**
 * Runs a peer's benchmark script with knobs (environment variables) and returns its medians, by metric name: the
 * scripts of shared/peers (bench_bullmq.sh, bench_dask.sh, bench_slurm.sh) or our own variants under bench/peers/
 * (dask-dag.sh, slurm-dag.sh). Each run gets its own WORKDIR under the temporary directory and free ports on this
 * machine, so it never meets another run's Redis, scheduler or slurmctld. A peer that fails to install or run is
 * returned as such (ok: false, with the error), never thrown: the benchmarks report it and go on.
 *
 * GRID_BENCH_PEER_FILE (set by `npm run bench -- all`) shares the figures of a run between the benchmarks of one run:
 * the same peer with the same knobs is measured once.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { ROOT } from '../tests/helpers/paths.ts'
import { formatLoad, knobKey, parseMedians, type PeerName } from './peers/parse.ts'

export { PEERS, parsePeers, type PeerName } from './peers/parse.ts'

/** How long one peer script may run before it is stopped (seconds); GRID_BENCH_PEER_TIMEOUT_S overrides. */
const PEER_TIMEOUT_S = 1200

export interface PeerRun {
  /** bullmq, dask, slurm, or a variant's name (dask-dag, slurm-dag) */
  name: string
  /** the knobs it ran with (beside WORKDIR and its port) */
  knobs: Record<string, string | number>
  ok: boolean
  figures: Record<string, number>
  /** the script's `== ...` line: the system, its version and set-up */
  title: string
  error?: string
  /** the load average (1 / 5 / 15 min) when the run ended */
  load: string
  secs: number
}

/** The knob each script takes its listening port(s) from, and the ports it uses from there. */
const PORT_KNOB: Record<PeerName, { knob: string, offsets: number[] }> = {
  bullmq: { knob: 'REDIS_PORT', offsets: [0] },
  dask: { knob: 'SCHED_PORT', offsets: [0] },
  slurm: { knob: 'PORT_BASE', offsets: [0, 1, 11, 12, 13] }
}

/** shared/peers/bench_NAME.sh: GRID_BENCH_PEERS_DIR, or shared/peers in the checkout or a directory above it. */
export function sharedScript (peer: PeerName): string | undefined {
  const file = `bench_${peer}.sh`
  const env = process.env.GRID_BENCH_PEERS_DIR
  if (env !== undefined) return existsSync(join(env, file)) ? join(env, file) : undefined
  for (let d = ROOT; ; d = dirname(d)) {
    const p = join(d, 'shared', 'peers', file)
    if (existsSync(p)) return p
    if (dirname(d) === d) return undefined
  }
}

/** Our own variant of a peer's script, bench/peers/FILE. */
export const ownScript = (file: string): string => join(ROOT, 'bench', 'peers', file)

async function portFree (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const s = createServer()
    s.once('error', () => { resolve(false) })
    s.listen(port, () => { s.close(() => { resolve(true) }) })
  })
}

/** A base port whose offsets are all free (Slurm's daemons bind every interface, so this checks every interface). */
async function freeBase (offsets: number[]): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 9000)
    let free = true
    for (const o of offsets) if (!await portFree(base + o)) { free = false; break }
    if (free) return base
  }
  throw new Error('no free ports for the peer')
}

function readShared (file: string | undefined): Record<string, PeerRun> {
  if (file === undefined || !existsSync(file)) return {}
  try { return JSON.parse(readFileSync(file, 'utf8')) as Record<string, PeerRun> } catch { return {} }
}

/**
 * Runs `script` (default: shared/peers/bench_PEER.sh) with `knobs` and returns its medians. `name` tells a variant
 * apart (its WORKDIR and its shared figures).
 */
export async function runPeer (peer: PeerName, knobs: Record<string, string | number>, opts: { script?: string, name?: string } = {}): Promise<PeerRun> {
  const name = opts.name ?? peer
  const key = knobKey(name, knobs)
  const shared = process.env.GRID_BENCH_PEER_FILE
  const seen = readShared(shared)[key]
  if (seen !== undefined) return seen
  const script = opts.script ?? sharedScript(peer)
  const t0 = performance.now()
  const failed = (error: string): PeerRun => ({ name, knobs, ok: false, figures: {}, title: '', error, load: formatLoad(loadavg()), secs: (performance.now() - t0) / 1000 })
  if (script === undefined || !existsSync(script)) return failed(`bench_${peer}.sh not found (shared/peers above ${ROOT}, or GRID_BENCH_PEERS_DIR)`)
  const workdir = join(tmpdir(), `grid-bench-peers-${process.pid}`, name)
  mkdirSync(workdir, { recursive: true })
  const port = PORT_KNOB[peer]
  const env: Record<string, string> = { ...process.env as Record<string, string>, WORKDIR: workdir, [port.knob]: String(await freeBase(port.offsets)) }
  for (const [k, v] of Object.entries(knobs)) env[k] = String(v)
  const timeoutS = Number(process.env.GRID_BENCH_PEER_TIMEOUT_S ?? PEER_TIMEOUT_S)
  console.error(`== peer ${name}: ${script} (${Object.entries(knobs).map(([k, v]) => `${k}=${v}`).join(' ')}), at most ${timeoutS} s`)
  let timedOut = false
  const r = await new Promise<{ code: number | null, out: string, err: string }>(resolve => {
    // its own process group: stopping it stops the group (the script and its client in the foreground; bash defers a
    // signal until its foreground command ends), and its EXIT trap then stops the daemons it started in their sessions
    const p = spawn('bash', [script], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    const kill = (): void => { if (p.pid !== undefined) try { process.kill(-p.pid, 'SIGTERM') } catch { /* it has ended */ } }
    let out = ''
    let err = ''
    p.stdout.on('data', d => { out += String(d) })
    p.stderr.on('data', d => { err = (err + String(d)).slice(-4000); process.stderr.write(d) })
    const timer = setTimeout(() => { timedOut = true; kill() }, timeoutS * 1000)
    // Ctrl-C: the script stops what it started (its EXIT trap), then the benchmark ends
    let interrupted = false
    const stop = (): void => { interrupted = true; kill() }
    process.once('SIGINT', stop)
    p.on('error', e => { err += String(e) })
    p.on('close', code => {
      clearTimeout(timer)
      process.off('SIGINT', stop)
      if (interrupted) process.exit(130)
      resolve({ code, out, err })
    })
  })
  if (r.code !== 0) {
    const why = timedOut ? `stopped after ${timeoutS} s (GRID_BENCH_PEER_TIMEOUT_S)` : `exited ${r.code ?? 'on a signal'}`
    return failed(`${script} ${why}: ${r.err.trim().split('\n').slice(-3).join(' | ')} (its files: ${workdir})`)
  }
  const { figures, title } = parseMedians(r.out)
  rmSync(workdir, { recursive: true, force: true })
  try { rmdirSync(dirname(workdir)) } catch { /* another peer's WORKDIR is still there */ }
  const run: PeerRun = { name, knobs, ok: Object.keys(figures).length > 0, figures, title, load: formatLoad(loadavg()), secs: (performance.now() - t0) / 1000 }
  if (!run.ok) run.error = `${script} printed no figures`
  console.error(`peer ${name} (load ${run.load}): ${JSON.stringify(figures)}`)
  if (shared !== undefined) writeFileSync(shared, JSON.stringify({ ...readShared(shared), [key]: run }))
  return run
}

/** BullMQ on a local Redis with bench_bullmq.sh's own sizes; throws when it cannot run (bench/tasks, bench/workers). */
export async function runBullmq (repeats = 1): Promise<Record<string, number>> {
  const r = await runPeer('bullmq', { REPEATS: repeats })
  if (!r.ok) throw new Error(`BullMQ: ${r.error ?? 'failed'}`)
  return r.figures
}
