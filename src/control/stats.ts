/**
 * Cluster figures for `gridctl stats` and `gridctl watch`: sums of the nodes' last heartbeats, and rates from a
 * short history this node samples once a second (so no request scans the task records).
 */
import type { StatsResponse } from '../../proto/index.ts'
import type { Startable } from '../interface/index.ts'
import { repeat } from '../util/index.ts'
import { nodeEntries } from './cluster-view.ts'
import type { ControlDeps } from './deps.ts'

const WINDOW_MS = 10_000

export class StatsSampler implements Startable {
  private samples: Array<{ at: number, done: number, failed: number }> = []
  private loop?: { stop: () => void }

  constructor (private readonly deps: ControlDeps) {}

  start (): void {
    this.loop = repeat(() => { this.sample() }, 1_000, () => {}, { immediate: true })
  }

  stop (): void { this.loop?.stop() }

  private sample (): void {
    const s = this.totals()
    const now = Date.now()
    this.samples.push({ at: now, ...s })
    while (this.samples.length > 0 && now - (this.samples[0] as { at: number }).at > WINDOW_MS + 2_000) this.samples.shift()
  }

  private totals (): { done: number, failed: number } {
    let done = 0
    let failed = 0
    for (const v of this.deps.membership.view()) {
      if (v.state !== 'alive' && v.state !== 'suspect') continue
      done += v.load?.done ?? 0
      failed += v.load?.failed ?? 0
    }
    return { done, failed }
  }

  stats (): StatsResponse {
    const deps = this.deps
    const nodes = nodeEntries(deps)
    const live = nodes.filter(n => n.state === 'alive' || n.state === 'suspect')
    const sum = (f: (n: typeof live[number]) => number): number => live.reduce((s, n) => s + f(n), 0)
    const totals = this.totals()
    const now = Date.now()
    const old = this.samples.find(s => now - s.at <= WINDOW_MS)
    const secs = old === undefined ? 0 : (now - old.at) / 1000
    const gpuNodes = live.filter(n => (n.load?.gpus ?? 0) > 0)
    const sessions = deps.sessions.list()
    return {
      at: new Date(now).toISOString(),
      nodes: {
        total: nodes.length,
        alive: nodes.filter(n => n.state === 'alive').length,
        suspect: nodes.filter(n => n.state === 'suspect').length,
        dead: nodes.filter(n => n.state === 'dead').length,
        left: nodes.filter(n => n.state === 'left').length,
        draining: live.filter(n => n.drain).length
      },
      slots: { total: sum(n => n.load?.slots ?? 0), free: sum(n => n.load?.freeSlots ?? 0) },
      gpus: {
        total: sum(n => n.load?.gpus ?? 0),
        free: sum(n => n.load?.freeGpus ?? 0),
        utilizationPercent: gpuNodes.length === 0 ? 0 : Math.round(gpuNodes.reduce((s, n) => s + (n.load?.gpuUtilizationPercent ?? 0), 0) / gpuNodes.length),
        memoryUsedBytes: sum(n => (n.load?.gpuMemoryUsedMiB ?? 0) * 1048576),
        memoryTotalBytes: sum(n => (n.load?.gpuMemoryTotalMiB ?? 0) * 1048576)
      },
      tasks: {
        running: sum(n => n.load?.running ?? 0),
        queued: sum(n => n.load?.queued ?? 0),
        done: totals.done,
        failed: totals.failed,
        donePerSecond: secs < 0.5 || old === undefined ? null : Math.max(0, (totals.done - old.done) / secs),
        failedPerSecond: secs < 0.5 || old === undefined ? null : Math.max(0, (totals.failed - old.failed) / secs)
      },
      sessions: sessions.length,
      ...(deps.sync === undefined ? {} : { syncCache: deps.sync.stats() }),
      workers: sessions.filter(s => s.worker !== undefined && s.worker !== null).length,
      perNode: nodes.map(n => ({
        id: n.id,
        name: n.name,
        state: n.state,
        drain: n.drain,
        cpu: n.load?.cpu ?? 0,
        memUsed: n.load === null ? 0 : 1 - n.load.memFreeMiB / Math.max(1, n.load.memTotalMiB),
        slots: n.load?.slots ?? 0,
        freeSlots: n.load?.freeSlots ?? 0,
        gpus: n.load?.gpus ?? 0,
        freeGpus: n.load?.freeGpus ?? 0,
        gpuUtilizationPercent: n.load?.gpuUtilizationPercent ?? 0,
        running: n.load?.running ?? 0,
        queued: n.load?.queued ?? 0
      }))
    }
  }
}
