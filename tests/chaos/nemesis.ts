/**
 * The nemesis: faults injected one after another (staggered: each healed, and the cluster given time to agree,
 * before the next), chosen and shaped by the run's seed. Each is recorded as a nemesis start and end in the history,
 * with its targets (and, for a partition, the groups that hear only themselves).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ChaosCluster, ChaosDaemon } from './daemons.ts'
import type { History, NemesisValue } from './history.ts'
import type { RunLogTail } from './load.ts'
import { ROOT } from '../helpers/paths.ts'
import { sh, type ChaosNet } from './netns.ts'
import type { Rng } from './rng.ts'

export const FAULTS = ['kill9', 'kill9-origin', 'stop', 'partition-one', 'partition-halves', 'partition-ring', 'partition-oneway', 'loss', 'delay', 'starve', 'disk-full', 'restart', 'cluster-restart'] as const
export type FaultName = typeof FAULTS[number]

/** share of packets dropped on every link by the loss fault */
export const LOSS_PERCENT = 5
/** the delay fault: one node's outgoing packets held this long (plus up to the jitter) by a userspace relay */
export const DELAY_MS = 200
export const DELAY_JITTER_MS = 50
const DELAY_RELAY = join(ROOT, 'tests/chaos/delay-relay.py')
/** CPU quota of a starved node, and how its event loop is stalled on top of it */
export const STARVE_QUOTA_PERCENT = 3
export const STARVE_STALL_MS = 2_000
export const STARVE_RUN_MS = 2_000
const CPU_CGROUP = '/sys/fs/cgroup/cpu'

export interface NemesisContext {
  cluster: ChaosCluster
  net: ChaosNet
  history: History
  rng: Rng
  runs: RunLogTail
  loadNodes: string[]
  prefix: string
  /** hold every fault this long instead of its seeded share of its usual range (short CI runs) */
  holdMs?: number
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export class Nemesis {
  private nextId = 0
  constructor (private readonly ctx: NemesisContext) {}

  private record (v: Omit<NemesisValue, 'phase'>, phase: 'start' | 'end', extra: Record<string, unknown> = {}): void {
    this.ctx.history.add({ type: 'info', op: 'nemesis', node: v.targets.join(',') || 'all', value: { ...v, phase, ...extra } })
  }

  private names (): string[] { return this.ctx.cluster.daemons.map(d => d.name) }

  /** How long to hold a fault: seeded within its range, or the run's fixed hold. */
  private hold (lo: number, hi: number): number {
    const ms = this.ctx.rng.between(lo, hi)
    return this.ctx.holdMs ?? ms
  }

  private async restart (d: ChaosDaemon): Promise<void> {
    await d.start({ wait: false })
  }

  /** Injects one fault, holds it, heals it. */
  async run (fault: FaultName): Promise<void> {
    const { cluster, net, rng } = this.ctx
    const id = ++this.nextId
    const names = this.names()
    const other = (xs: string[]): string => rng.pick(names.filter(n => !xs.includes(n)))
    switch (fault) {
      case 'kill9':
      case 'kill9-origin': {
        // an executor: the node running the most tasks now; an origin: a node the load submits to
        this.ctx.runs.poll()
        const t = fault === 'kill9' ? (this.ctx.runs.busiest() ?? other(this.ctx.loadNodes)) : rng.pick(this.ctx.loadNodes)
        const d = cluster.daemon(t)
        const v = { id, fault, targets: [t] }
        this.record(v, 'start')
        await d.kill9()
        await sleep(this.hold(6_000, 8_000))
        this.record(v, 'end')
        await this.restart(d)
        return
      }
      case 'stop': {
        const d = cluster.daemon(rng.pick(names))
        const v = { id, fault, targets: [d.name] }
        this.record(v, 'start')
        d.signal('SIGSTOP')
        await sleep(this.hold(9_000, 11_000))
        d.signal('SIGCONT')
        this.record(v, 'end')
        return
      }
      case 'partition-one':
      case 'partition-halves': {
        const shuffled = rng.shuffle(names)
        const cut = fault === 'partition-one' ? 1 : Math.floor(names.length / 2)
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)]
        const v = { id, fault, targets: groups[0] as string[], isolated: groups }
        this.record(v, 'start')
        await net.partition(groups)
        await sleep(this.hold(9_000, 12_000))
        await net.heal()
        this.record(v, 'end')
        return
      }
      case 'partition-ring': {
        // every node hears a majority (itself and its nearest neighbours on a ring), no two the same majority
        const ring = rng.shuffle(names)
        const k = Math.ceil(Math.floor(names.length / 2) / 2)
        const v = { id, fault, targets: ring }
        this.record(v, 'start')
        for (const [i, to] of ring.entries()) {
          for (const [j, from] of ring.entries()) {
            const dist = Math.min(Math.abs(i - j), ring.length - Math.abs(i - j))
            if (dist > k) await net.drop(from, to)
          }
        }
        await sleep(this.hold(9_000, 12_000))
        await net.heal()
        this.record(v, 'end')
        return
      }
      case 'partition-oneway': {
        const [a, b] = rng.shuffle(names) as [string, string]
        const v = { id, fault, targets: [a, b] }
        this.record(v, 'start', { from: a, to: b })
        await net.drop(a, b)
        await sleep(this.hold(9_000, 12_000))
        await net.heal()
        this.record(v, 'end')
        return
      }
      case 'loss': {
        const v = { id, fault, targets: [] }
        this.record(v, 'start', { percent: LOSS_PERCENT })
        await net.loss(names, LOSS_PERCENT)
        await sleep(this.hold(18_000, 22_000))
        await net.heal()
        this.record(v, 'end')
        return
      }
      case 'delay': {
        // this kernel has no tc netem: a relay in the node's namespace holds its outgoing packets (tun + raw socket)
        const t = rng.pick(names)
        const me = net.node(t)
        const v = { id, fault, targets: [t] }
        const relay = spawn('ip', ['netns', 'exec', me.ns, 'python3', DELAY_RELAY, String(DELAY_MS), String(DELAY_JITTER_MS), me.ip, ...net.nodes.filter(n => n !== me).map(n => n.ip)], { stdio: ['ignore', 'pipe', 'pipe'] })
        const ready = await new Promise<boolean>(resolve => {
          const timer = setTimeout(() => { resolve(false) }, 10_000)
          relay.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(true) } })
          relay.on('exit', () => { clearTimeout(timer); resolve(false) })
          relay.on('error', () => { clearTimeout(timer); resolve(false) })
        })
        if (!ready) { try { relay.kill('SIGKILL') } catch {} ; process.stderr.write('chaos: the delay relay did not start (python3 and /dev/net/tun are needed); delay skipped\n'); return }
        this.record(v, 'start', { delayMs: DELAY_MS, jitterMs: DELAY_JITTER_MS })
        await sleep(this.hold(9_000, 12_000))
        relay.kill('SIGKILL')
        await new Promise(resolve => setTimeout(resolve, 100))
        this.record(v, 'end')
        return
      }
      case 'starve': {
        // a fifth of the nodes (at least one): a CPU quota of a few percent, and the event loop stalled 2 s at a time
        const targets = rng.shuffle(names).slice(0, Math.max(1, Math.round(names.length / 5)))
        const v = { id, fault, targets }
        this.record(v, 'start', { quotaPercent: STARVE_QUOTA_PERCENT, stallMs: STARVE_STALL_MS })
        const groups = targets.map(t => join(CPU_CGROUP, `${this.ctx.prefix}-${t}`))
        for (const [i, t] of targets.entries()) {
          const g = groups[i] as string
          mkdirSync(g, { recursive: true })
          writeFileSync(join(g, 'cpu.cfs_period_us'), '100000')
          writeFileSync(join(g, 'cpu.cfs_quota_us'), String(STARVE_QUOTA_PERCENT * 1000))
          try { writeFileSync(join(g, 'cgroup.procs'), String(cluster.daemon(t).pid)) } catch {}
        }
        const until = Date.now() + this.hold(18_000, 22_000)
        while (Date.now() < until) {
          for (const t of targets) cluster.daemon(t).signal('SIGSTOP')
          await sleep(STARVE_STALL_MS)
          for (const t of targets) cluster.daemon(t).signal('SIGCONT')
          await sleep(STARVE_RUN_MS)
        }
        for (const [i, t] of targets.entries()) {
          try { writeFileSync(join(CPU_CGROUP, 'cgroup.procs'), String(cluster.daemon(t).pid)) } catch {}
          try { rmSync(groups[i] as string, { recursive: false }) } catch {}
        }
        this.record(v, 'end')
        return
      }
      case 'disk-full': {
        const d = cluster.daemon(rng.pick(names))
        const v = { id, fault, targets: [d.name] }
        this.record(v, 'start')
        const filler = join(d.dataDir, 'chaos-filler')
        const st = statfsSync(d.dataDir)
        await sh('fallocate', ['-l', String(Number(st.bavail) * Number(st.bsize)), filler], { ignore: true })
        await sleep(this.hold(9_000, 11_000))
        rmSync(filler, { force: true })
        this.record(v, 'end')
        return
      }
      case 'restart': {
        // a clean stop, and the daemon started again on its old data
        const d = cluster.daemon(rng.pick(names))
        const v = { id, fault, targets: [d.name] }
        this.record(v, 'start')
        await d.terminate()
        await sleep(rng.between(1_000, 3_000))
        await this.restart(d)
        this.record(v, 'end')
        return
      }
      case 'cluster-restart': {
        // every daemon killed, then started again in a random order, a little apart
        const v = { id, fault, targets: names }
        this.record(v, 'start')
        await Promise.all(cluster.daemons.map(async d => { await d.kill9() }))
        await sleep(1_000)
        for (const n of rng.shuffle(names)) {
          await this.restart(cluster.daemon(n))
          await sleep(rng.between(0, 500))
        }
        this.record(v, 'end')
      }
    }
  }
}

export function parseFaults (list: string | undefined): FaultName[] {
  if (list === undefined || list === 'all') return [...FAULTS]
  const xs = list.split(',').map(s => s.trim()).filter(s => s !== '')
  const bad = xs.filter(x => !(FAULTS as readonly string[]).includes(x))
  if (bad.length > 0) throw new Error(`unknown fault ${bad.join(', ')} (known: ${FAULTS.join(', ')})`)
  return xs as FaultName[]
}
