/**
 * Virtual time for the real components. The simulator installs this clock in place of the process's globals
 * (`Date.now`, `performance.now`, `setTimeout`/`setInterval` and their clears, `node:timers/promises`' `setTimeout`
 * that `delay` uses, and `Math.random`), so membership's code runs unchanged on simulated time: each timer is owned by
 * the node whose code set it (the node whose event is running), and fires in virtual time unless that node is frozen
 * (held until it thaws) or crashed (dropped with its process life).
 *
 * Events run one at a time; after each, the microtasks it queued drain (a real `setImmediate` turn) before virtual
 * time moves on, so an `await` continues on the same node, at the same instant, as it would on a real event loop.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { EventHeap, type SimEvent } from './heap.ts'
import type { Rng } from './rng.ts'
import type { Trace } from './trace.ts'

/** Event kinds, as they enter the trace hash. */
export const KIND = { timer: 1, gossip: 2, rpcRequest: 3, rpcResponse: 4, rpcFail: 5, fault: 6, control: 7, connect: 8 } as const

/** A fixed epoch, so incarnations (start time in seconds) and every timestamp replay. 2027-01-15T08:00:00Z. */
export const SIM_EPOCH_MS = 1_800_000_000_000

/** What the clock asks the simulation about a node before running one of its events. */
export interface NodeGate {
  /** the node's current process life; an event of an older life is dropped (its process crashed) */
  life: (node: number) => number
  /** frozen: the event is held and given back when the node thaws */
  hold: (node: number, e: SimEvent) => boolean
}

const realSetImmediate = setImmediate
const require = createRequire(import.meta.url)

export class VirtualClock {
  now = 0
  current = -1
  currentLife = 0
  private seq = 0
  private readonly heap = new EventHeap()
  private restore?: () => void
  gate?: NodeGate
  processed = 0
  private running = false

  /** Timers set now belong to the simulation: inside its run, or inside `on()`. */
  private get virtual (): boolean { return this.running || this.current >= 0 }

  constructor (private readonly rng: Rng, private readonly trace: Trace) {}

  get epochMs (): number { return SIM_EPOCH_MS + this.now }

  /** Schedules `fn` on `node`'s process (its current life) `delayMs` from now. */
  at (delayMs: number, node: number, kind: number, fn: () => void, life?: number): SimEvent {
    const e: SimEvent = { at: this.now + Math.max(0, delayMs), seq: this.seq++, node, life: life ?? (node < 0 ? 0 : this.gate?.life(node) ?? 0), kind, fn, cancelled: false }
    this.heap.push(e)
    return e
  }

  /** Gives a held event back (its node thawed): it runs now, after the events already due. */
  requeue (e: SimEvent): void {
    e.at = this.now
    e.seq = this.seq++
    this.heap.push(e)
  }

  /** Runs events until virtual time `endMs`. */
  async runUntil (endMs: number): Promise<void> {
    this.running = true
    try { await this.loop(endMs) } finally { this.running = false; this.current = -1 }
  }

  private async loop (endMs: number): Promise<void> {
    for (;;) {
      const e = this.heap.peek()
      if (e === undefined || e.at > endMs) break
      this.heap.pop()
      if (e.cancelled) continue
      if (e.node >= 0 && this.gate !== undefined) {
        if (e.life !== this.gate.life(e.node)) continue
        if (this.gate.hold(e.node, e)) continue
      }
      if (e.at > this.now) this.now = e.at
      this.current = e.node
      this.currentLife = e.life
      this.trace.record(this.now, e.node, e.kind)
      this.processed++
      e.fn()
      await new Promise<void>(resolve => { realSetImmediate(resolve) })
    }
    if (endMs > this.now) this.now = endMs
  }

  /** Runs `fn` as if on `node` (its timers belong to it): for the simulator's own calls into a node's code. */
  on<T> (node: number, fn: () => T): T {
    const [c, l] = [this.current, this.currentLife]
    this.current = node
    this.currentLife = this.gate?.life(node) ?? 0
    try { return fn() } finally { this.current = c; this.currentLife = l }
  }

  /** Replaces the process's clock, timers and Math.random with this virtual clock's; `uninstall` puts them back. */
  install (): void {
    if (this.restore !== undefined) return
    const g = globalThis as unknown as Record<string, unknown>
    const timersPromises = require('node:timers/promises') as Record<string, unknown>
    const saved = {
      dateNow: Date.now, perfNow: performance.now.bind(performance), random: Math.random,
      setTimeout: g.setTimeout, clearTimeout: g.clearTimeout, setInterval: g.setInterval, clearInterval: g.clearInterval,
      sleep: timersPromises.setTimeout
    }
    Date.now = () => Math.floor(this.epochMs)
    performance.now = () => this.now
    Math.random = () => this.rng.next()
    const self = this
    const makeTimer = (fn: (...a: unknown[]) => void, ms: unknown, args: unknown[], repeatMs?: number): SimTimer => {
      const t = new SimTimer()
      const fire = (): void => {
        if (repeatMs !== undefined) t.event = self.at(repeatMs, self.current, KIND.timer, fire, self.currentLife)
        fn(...args)
      }
      t.event = self.at(toMs(ms), self.current, KIND.timer, fire, self.currentLife)
      return t
    }
    // outside the simulation's run (a test runner's own timers between runs) the real timers serve
    type AnyFn = (...a: unknown[]) => unknown
    g.setTimeout = (fn: (...a: unknown[]) => void, ms?: unknown, ...args: unknown[]) => this.virtual ? makeTimer(fn, ms, args) : (saved.setTimeout as AnyFn)(fn, ms, ...args)
    g.setInterval = (fn: (...a: unknown[]) => void, ms?: unknown, ...args: unknown[]) => this.virtual ? makeTimer(fn, ms, args, Math.max(1, toMs(ms))) : (saved.setInterval as AnyFn)(fn, ms, ...args)
    g.clearTimeout = (t: unknown) => { if (t instanceof SimTimer) { if (t.event !== undefined) t.event.cancelled = true } else (saved.clearTimeout as AnyFn)(t) }
    g.clearInterval = (t: unknown) => { if (t instanceof SimTimer) { if (t.event !== undefined) t.event.cancelled = true } else (saved.clearInterval as AnyFn)(t) }
    timersPromises.setTimeout = async (ms?: unknown, value?: unknown, opts?: { signal?: AbortSignal }) => this.virtual ? await new Promise((resolve, reject) => {
      const signal = opts?.signal
      if (signal?.aborted === true) { reject(abortError(signal)); return }
      const e = self.at(toMs(ms), self.current, KIND.timer, () => { signal?.removeEventListener('abort', onAbort); resolve(value) }, self.currentLife)
      const onAbort = (): void => { e.cancelled = true; reject(abortError(signal as AbortSignal)) }
      signal?.addEventListener('abort', onAbort, { once: true })
    }) : await (saved.sleep as AnyFn)(ms, value, opts)
    syncBuiltinESMExports()
    this.restore = () => {
      Date.now = saved.dateNow
      performance.now = saved.perfNow
      Math.random = saved.random
      g.setTimeout = saved.setTimeout; g.clearTimeout = saved.clearTimeout; g.setInterval = saved.setInterval; g.clearInterval = saved.clearInterval
      timersPromises.setTimeout = saved.sleep
      syncBuiltinESMExports()
    }
  }

  uninstall (): void {
    this.restore?.()
    this.restore = undefined
  }
}

/** What the virtual setTimeout returns: enough of Node's Timeout for the code that calls it. */
class SimTimer {
  event?: SimEvent
  unref (): this { return this }
  ref (): this { return this }
  hasRef (): boolean { return false }
  refresh (): this { return this }
  [Symbol.toPrimitive] (): number { return this.event?.seq ?? 0 }
}

function toMs (ms: unknown): number {
  const n = Number(ms)
  return Number.isFinite(n) && n > 0 ? n : 0
}

function abortError (signal: AbortSignal): Error {
  const err = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string }
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  return err
}
