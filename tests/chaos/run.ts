/**
 * One chaos run: sweep what crashed runs left, make the network and the daemons, start the load and the watchers,
 * let the nemesis inject its faults one after another until the duration is spent, heal, stop the load, read every
 * node's final state, and judge the history. Whatever happens, the daemons, mounts, namespaces and links go.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { check, type Verdict } from './checker.ts'
import { ChaosCluster } from './daemons.ts'
import { History } from './history.ts'
import { finalReads, Load, memberEvents, round, RunLogTail, untilAgreed } from './load.ts'
import { ChaosNet, sweep } from './netns.ts'
import { Nemesis, type FaultName } from './nemesis.ts'
import { problemContext } from './report.ts'
import { Rng } from './rng.ts'

export interface RunOptions {
  nodes: number
  durationMs: number
  seed: number
  faults: FaultName[]
  /** keep the run's directory (history, logs) */
  keep?: boolean
  /** where the run's directory goes (default /tmp) */
  dir?: string
  log?: (msg: string) => void
  /** how long after the last fault everything must agree */
  convergeBoundMs?: number
  /** hold every fault this long (short runs); default: each fault's seeded range */
  holdMs?: number
  /** the quiet gap between faults */
  gapMs?: number
}

export interface RunResult {
  verdict: Verdict
  historyFile: string
  root: string
  faults: Array<{ fault: string, at: number }>
  /** when the verdict is not valid: the schedule and the daemons' log lines about the tasks its problems name */
  context?: string
}

/** how long after each heal the nemesis waits for every node to agree before the next fault */
export const SETTLE_TIMEOUT_MS = 20_000
/** a quiet gap between faults */
export const FAULT_GAP_MS = 2_000

export async function chaosRun (opts: RunOptions): Promise<RunResult> {
  const log = opts.log ?? ((m: string) => { process.stderr.write(`chaos: ${m}\n`) })
  const swept = await sweep()
  if (swept.length > 0) log(`swept ${swept.length} leftovers of earlier runs`)
  const net = new ChaosNet(opts.seed)
  const root = join(opts.dir ?? '/tmp', `grid-chaos-${net.prefix}`)
  rmSync(root, { recursive: true, force: true })
  mkdirSync(root, { recursive: true })
  const historyFile = join(root, 'history.jsonl')
  const history = new History(historyFile)
  const rng = new Rng(opts.seed)
  const names = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`)
  const cluster = new ChaosCluster(root)
  const injected: Array<{ fault: string, at: number }> = []
  let load: Load | undefined
  let tail: NodeJS.Timeout | undefined
  try {
    await net.create(names)
    for (const n of net.nodes) cluster.add(n)
    log(`network ${net.prefix}: ${names.length} namespaces on ${net.bridge} (${net.subnet}.0/24); starting daemons`)
    await cluster.start()
    if (!await untilAgreed(cluster, history, 60_000)) throw new Error('the cluster did not form within 60 s')
    log('cluster formed; load and nemesis start')
    const loadNodes = rng.shuffle(names).slice(0, Math.max(2, Math.ceil(names.length / 2)))
    const runs = new RunLogTail(join(root, 'runs.log'), history)
    load = new Load(cluster, history, rng, runs.file, { taskEveryMs: 300, writeEveryMs: 150, loadNodes })
    tail = setInterval(() => { try { runs.poll() } catch {} }, 250)
    load.start()
    const nemesis = new Nemesis({ cluster, net, history, rng, runs, loadNodes, prefix: net.prefix, ...(opts.holdMs === undefined ? {} : { holdMs: opts.holdMs }) })
    const end = Date.now() + opts.durationMs
    await new Promise(resolve => setTimeout(resolve, 2_000))
    // every fault listed runs at least once (the first round), then more rounds until the duration is spent
    let order = rng.shuffle(opts.faults)
    let firstRound = true
    while ((firstRound || Date.now() < end) && opts.faults.length > 0) {
      if (order.length === 0) { order = rng.shuffle(opts.faults); firstRound = false; if (Date.now() >= end) break }
      const f = order.shift() as FaultName
      log(`fault ${f}`)
      injected.push({ fault: f, at: Date.now() })
      await nemesis.run(f)
      // healed: the load pauses while the cluster settles, so agreement (views and state hashes) is measured quiet
      load.pause()
      if (!await untilAgreed(cluster, history, SETTLE_TIMEOUT_MS)) log(`after ${f}: the nodes did not agree within ${SETTLE_TIMEOUT_MS} ms`)
      load.resume()
      await new Promise(resolve => setTimeout(resolve, opts.gapMs ?? FAULT_GAP_MS))
    }
    log('faults over; healing, stopping the load')
    await net.heal()
    await load.stop()
    await untilAgreed(cluster, history, 60_000)
    log(`final reads of ${load.accepted.length} tasks`)
    await finalReads(cluster, history, load.accepted, 120_000)
    runs.poll()
    await untilAgreed(cluster, history, 30_000)
    await round(cluster, history)
    memberEvents(cluster, history)
    const verdict = check(history.events, { nodes: names, convergeBoundMs: opts.convergeBoundMs ?? 60_000 })
    return { verdict, historyFile, root, faults: injected, ...(verdict.valid ? {} : { context: problemContext(root, verdict.problems) }) }
  } finally {
    if (tail !== undefined) clearInterval(tail)
    await load?.stop().catch(() => {})
    await cluster.destroy().catch(() => {})
    await net.destroy().catch(() => {})
    if (opts.keep !== true) {
      for (const d of cluster.daemons) await d.unmount()
      rmSync(root, { recursive: true, force: true })
    }
  }
}
