/**
 * Local health (Lifeguard): a node whose own event loop lags (an overloaded machine, a long GC) handles heartbeats and
 * probe answers late, and would suspect healthy peers. Each interval with a lagging loop raises the score by one (as
 * does having to refute a suspicion about itself); each interval that keeps up lowers it by one. The failure
 * detector's deadlines and the probe timeouts stretch by the resulting multiplier. The same sampler keeps when the
 * loop last stalled (held STALL_MS or more: SIGSTOP, a starved CPU), which the tasks' start fence reads.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Logger } from 'pino'
import { repeat } from '../util/index.ts'
import { LAG_RESOLUTION_MS, LOCAL_HEALTH_MAX, SLOW_LOOP_MS } from './constants.ts'
import type { LagSampler } from './types.ts'

/** The event loop held this long or longer counts as a stall (`lastStallAt`). */
export const STALL_MS = 1_000
/** Stalls this long or longer are logged at info (shorter ones, common on a loaded machine, at debug). */
const STALL_INFO_MS = 3_000

export interface LocalHealthComponents {
  logger: Logger
  /** Told the multiplier after every change of score. */
  detector: { setHealthMultiplier: (k: number) => void }
  eventLoopLag?: LagSampler
}

export interface LocalHealthInit {
  /** How often the event-loop delay is assessed (the heartbeat interval). */
  intervalMs: number
}

export class LocalHealth {
  private readonly log: Logger
  private readonly lag: LagSampler
  /** 0 when this node keeps up, up to LOCAL_HEALTH_MAX while it is slow. */
  private score = 0
  /** epoch ms since when the score has stayed above 0 (0 while it is 0) */
  private slowFrom = 0
  private loop?: { stop: () => void }
  /** performance.now() of the last assessment, and of the last one that saw a stall */
  private assessedAt = performance.now()
  private stallSeenAt = -Infinity

  constructor (private readonly components: LocalHealthComponents, private readonly init: LocalHealthInit) {
    this.log = components.logger
    this.lag = components.eventLoopLag ?? processLag()
  }

  /** 1 while this node keeps up; more while it is slow: its probe and suspicion deadlines stretch by this much. */
  get multiplier (): number { return 1 + this.score }

  /** Since when this node has been slow without a break (epoch ms), 0 while it keeps up: long lag degrades it. */
  get slowSince (): number { return this.slowFrom }

  /**
   * When this node's event loop last stalled (performance.now(), -Infinity if never): the end of the latest stall seen,
   * or now while one is under way or has just ended unseen (the assessment is overdue by STALL_MS).
   */
  get lastStallAt (): number {
    const now = performance.now()
    return this.loop !== undefined && now - this.assessedAt > this.init.intervalMs + STALL_MS ? now : this.stallSeenAt
  }

  start (): void {
    this.assessedAt = performance.now()
    this.lag.enable()
    this.loop = repeat(() => { this.assess() }, this.init.intervalMs, err => { this.log.error({ err }, 'membership loop failed') })
  }

  stop (): void {
    this.loop?.stop()
    this.loop = undefined
    this.lag.disable()
  }

  /** Being suspected is a hint that this node is slow: the score rises as for a lagging interval. */
  raise (why: string): void {
    const before = this.score
    this.score = Math.min(LOCAL_HEALTH_MAX, this.score + 1)
    this.apply(before, why)
  }

  /** One interval's verdict, from the event-loop delay since the last one. */
  assess (): void {
    const lagMs = this.lag.p99Ms()
    const now = performance.now()
    const stalledMs = Math.max(this.lag.maxMs?.() ?? lagMs, now - this.assessedAt - this.init.intervalMs)
    this.assessedAt = now
    this.lag.reset()
    if (stalledMs >= STALL_MS) {
      this.stallSeenAt = now
      this.log[stalledMs >= STALL_INFO_MS ? 'info' : 'debug']({ stalledMs: Math.round(stalledMs) }, 'the event loop stalled')
    }
    const before = this.score
    if (lagMs > SLOW_LOOP_MS) this.score = Math.min(LOCAL_HEALTH_MAX, this.score + 1)
    else if (this.score > 0) this.score--
    this.apply(before, `event loop lag p99 ${Math.round(lagMs)}ms`)
  }

  private apply (before: number, why: string): void {
    this.components.detector.setHealthMultiplier(this.multiplier)
    if (this.score === 0) this.slowFrom = 0
    else if (this.slowFrom === 0) this.slowFrom = Date.now()
    if (before === 0 && this.score > 0) this.log.warn({ multiplier: this.multiplier, why }, 'this node is slow: stretching its failure-detection deadlines so it does not accuse healthy peers')
    else if (before > 0 && this.score === 0) this.log.info('this node keeps up again: failure-detection deadlines back to normal')
  }
}

/** This process's event-loop delay, from Node's histogram. */
function processLag (): LagSampler {
  const h = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS })
  return {
    enable: () => { h.enable() },
    disable: () => { h.disable() },
    p99Ms: () => h.percentile(99) / 1e6,
    maxMs: () => h.max / 1e6,
    reset: () => { h.reset() }
  }
}
