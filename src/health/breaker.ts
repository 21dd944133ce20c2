/**
 * One node's circuit breaker, as the node keeps it on itself: closed while dispatches succeed; open (ejected) after
 * `ejectAfterFailures` consecutive dispatch failures that are not the task's own doing, for a cool-down that grows
 * with each ejection; half-open once the cool-down is over, letting one trial task through at a time: its success
 * closes the breaker, its failure opens it again for longer. Pure: time comes in through `now`.
 */
import type { BreakerState } from '../interface/index.ts'

export interface BreakerOptions {
  ejectAfterFailures: number
  baseEjectionMs: number
  maxEjectionMs: number
}

export class CircuitBreaker {
  private failures = 0
  private ejections = 0
  private openUntil = 0
  private opened = false
  private trialInFlight = false
  private trialAt = 0
  private closedAt = 0
  /** why the last failure happened (shown while the breaker is open) */
  lastFailure = ''

  constructor (private readonly opts: BreakerOptions, private readonly now: () => number = Date.now) {}

  get state (): BreakerState {
    if (!this.opened) return 'closed'
    return this.now() < this.openUntil ? 'open' : 'half-open'
  }

  /** consecutive failures since the last success */
  get consecutiveFailures (): number { return this.failures }
  /** how many times it opened since it last stayed closed for a long while (sets the cool-down) */
  get ejectionCount (): number { return this.ejections }
  /** epoch ms when an open breaker turns half-open */
  get reopensAt (): number { return this.openUntil }

  /** The cool-down the next ejection would get. */
  cooldownMs (ejections = this.ejections + 1): number {
    return Math.min(this.opts.maxEjectionMs, this.opts.baseEjectionMs * Math.max(1, ejections))
  }

  /**
   * A dispatch failed for a reason of the node's own. `mayEject` says whether the cluster can spare one more
   * ejected node (the bounded share); when it cannot, the breaker stays closed and keeps counting.
   */
  failure (reason: string, mayEject: () => boolean = () => true): void {
    this.lastFailure = reason
    const s = this.state
    if (s === 'open') return
    if (s === 'half-open') { this.trialInFlight = false; this.eject(); return }
    // a node that stayed closed for longer than the longest cool-down starts its ejections from one again
    if (this.ejections > 0 && this.now() - this.closedAt > this.opts.maxEjectionMs) this.ejections = 0
    this.failures++
    if (this.failures >= this.opts.ejectAfterFailures && mayEject()) this.eject()
  }

  /** A dispatch succeeded (the task's process started): the count starts again; a half-open trial closes it. */
  success (): void {
    this.failures = 0
    if (this.state === 'half-open') {
      this.opened = false
      this.trialInFlight = false
      this.closedAt = this.now()
    }
  }

  /** Whether a task may be let through now: always while closed or open (routing keeps an open node for when nothing healthy fits), one at a time while half-open. */
  tryTrial (): boolean {
    if (this.state !== 'half-open') return true
    // a trial that never told its outcome (cancelled while queued) does not block the node forever
    if (this.trialInFlight && this.now() - this.trialAt < this.opts.baseEjectionMs) return false
    this.trialInFlight = true
    this.trialAt = this.now()
    return true
  }

  private eject (): void {
    this.ejections++
    this.opened = true
    this.openUntil = this.now() + this.cooldownMs(this.ejections)
    this.failures = 0
  }
}
