/**
 * This node's verdict on its own health, gossiped in its heartbeats so that every node shows (and routes by) the
 * same one, and the node's own view of itself wins. Worst first:
 * - unavailable: it cannot run anything now (its spawner is down);
 * - degraded: its breaker is open (consecutive dispatch failures that were not the tasks' own exit), its GPUs are
 *   lost (nvidia-smi failing or reporting a GPU lost: those GPUs are unusable until it reports them fine), its data
 *   directory's disk is nearly full, or its event loop has lagged for long;
 * - healthy otherwise (a half-open breaker is healthy: its trial task decides).
 */
import { statfsSync } from 'node:fs'
import type { Logger } from 'pino'
import type { HealthReport, NodeHealth } from '../interface/index.ts'
import { CircuitBreaker } from './breaker.ts'
import { DISK_CHECK_INTERVAL_MS, HEALTH_HISTORY_LENGTH, LAG_DEGRADED_AFTER_MS, MAX_EJECTION_MS } from './constants.ts'

export interface NodeHealthComponents {
  logger: Logger
  /** why this node's GPUs cannot be used now (nvidia-smi failing, a GPU lost), null when they can */
  gpuProblem: () => string | null
  /** why this node cannot run anything now (its spawner is down), null when it can */
  cannotRun: () => string | null
  /** since when its event loop has lagged without a break (epoch ms), 0 while it keeps up */
  slowSince: () => number
  /** the other nodes' health as gossiped, for the bound on how many may be ejected at once */
  peers: () => Array<{ alive: boolean, health?: NodeHealth }>
  /** free share of the data directory's disk (0..1), null when it cannot be read; statfs by default */
  diskFree?: () => number | null
  now?: () => number
}

export interface NodeHealthInit {
  dataDir: string
  ejectAfterFailures: number
  baseEjectionMs: number
  maxEjectedPercent: number
  diskFreeMinPercent: number
  lagDegradedAfterMs?: number
}

export class NodeHealthMonitor {
  readonly breaker: CircuitBreaker
  private readonly now: () => number
  private current: HealthReport
  private readonly changes: Array<{ health: NodeHealth, at: number, reason: string }> = []
  private disk: { at: number, free: number | null } = { at: 0, free: null }

  constructor (private readonly c: NodeHealthComponents, private readonly init: NodeHealthInit) {
    this.now = c.now ?? Date.now
    this.breaker = new CircuitBreaker({ ejectAfterFailures: init.ejectAfterFailures, baseEjectionMs: init.baseEjectionMs, maxEjectionMs: Math.max(MAX_EJECTION_MS, init.baseEjectionMs) }, this.now)
    this.current = { health: 'healthy', reason: 'starting', since: this.now(), breaker: 'closed' }
  }

  /** The verdict now (the state's `since` moves only when the health itself changes). */
  report (): HealthReport {
    const [health, reason] = this.assess()
    const breaker = this.breaker.state
    const prev = this.current
    if (prev.health !== health) {
      this.changes.push({ health, at: this.now(), reason })
      if (this.changes.length > HEALTH_HISTORY_LENGTH) this.changes.splice(0, this.changes.length - HEALTH_HISTORY_LENGTH)
      const log = health === 'healthy' ? this.c.logger.info.bind(this.c.logger) : this.c.logger.warn.bind(this.c.logger)
      log({ health, from: prev.health, reason, breaker }, 'node health changed')
      this.current = { health, reason, since: this.now(), breaker }
    } else {
      this.current = { ...prev, reason, breaker }
    }
    return this.current
  }

  /** This node's own health changes, newest last. */
  history (): Array<{ health: NodeHealth, at: number, reason: string }> { return [...this.changes] }

  /** A task's process started: the dispatch worked, whatever its exit will be. */
  dispatched (): void {
    const before = this.breaker.state
    this.breaker.success()
    if (before !== this.breaker.state) this.report()
  }

  /** A dispatch failed for a reason of this node's (the spawner or fork failing, a GPU error), not the task's. */
  dispatchFailed (reason: string): void {
    const before = this.breaker.state
    this.breaker.failure(reason, () => this.mayEject())
    if (before !== this.breaker.state) {
      this.c.logger.warn({ reason, failures: this.init.ejectAfterFailures, cooldownMs: this.breaker.reopensAt - this.now(), ejections: this.breaker.ejectionCount }, 'circuit breaker opened: this node is degraded until the cool-down ends')
      this.report()
    } else if (this.breaker.state === 'closed' && this.breaker.consecutiveFailures >= this.init.ejectAfterFailures) {
      this.c.logger.warn({ reason, failures: this.breaker.consecutiveFailures }, 'circuit breaker would open, but the cluster already has as many nodes ejected as it may')
    }
  }

  /** Whether an offered task may be let through: one trial at a time while the breaker is half-open. */
  admitTrial (): boolean { return this.breaker.tryTrial() }

  /** One more ejected node stays within the bounded share of the alive nodes (at least one may always be). */
  private mayEject (): boolean {
    const peers = this.c.peers().filter(p => p.alive)
    const ejected = peers.filter(p => p.health === 'degraded').length
    const allowed = Math.max(1, Math.floor((peers.length + 1) * this.init.maxEjectedPercent / 100))
    return ejected + 1 <= allowed
  }

  private assess (): [NodeHealth, string] {
    const cannot = this.c.cannotRun()
    if (cannot !== null) return ['unavailable', cannot]
    const why: string[] = []
    const b = this.breaker
    if (b.state === 'open') {
      const left = Math.max(0, Math.ceil((b.reopensAt - this.now()) / 1000))
      why.push(`circuit breaker open after ${this.init.ejectAfterFailures} consecutive dispatch failures (last: ${b.lastFailure}); trial in ${left} s`)
    }
    const gpu = this.c.gpuProblem()
    if (gpu !== null) why.push(`GPUs lost: ${gpu}`)
    const free = this.diskFree()
    if (free !== null && free * 100 < this.init.diskFreeMinPercent) why.push(`data directory's disk nearly full (${(free * 100).toFixed(1)} % free, under ${this.init.diskFreeMinPercent} %)`)
    const slow = this.c.slowSince()
    const lagAfter = this.init.lagDegradedAfterMs ?? LAG_DEGRADED_AFTER_MS
    if (slow > 0 && this.now() - slow >= lagAfter) why.push(`event loop lagging for ${Math.round((this.now() - slow) / 1000)} s`)
    if (why.length > 0) return ['degraded', why.join('; ')]
    return ['healthy', b.state === 'half-open' ? 'circuit breaker half-open: one trial task at a time' : 'ok']
  }

  private diskFree (): number | null {
    if (this.c.diskFree !== undefined) return this.c.diskFree()
    if (this.now() - this.disk.at < DISK_CHECK_INTERVAL_MS) return this.disk.free
    let free: number | null = null
    try {
      const s = statfsSync(this.init.dataDir)
      free = s.blocks > 0 ? s.bavail / s.blocks : null
    } catch {
      free = null
    }
    this.disk = { at: this.now(), free }
    return free
  }
}
