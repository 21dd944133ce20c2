/**
 * A task's watchers: its events fanned out to everyone who follows it. The first watcher (the origin's stream) is
 * primary: when it cannot keep up, the task's output is paused until it drains, so the task slows down instead of
 * output being lost. Other watchers (logs -f) that fall behind skip ahead instead.
 */
import type { ExecAspect, TaskEvent } from '../../proto/index.ts'

/** Someone who wants the task's events: the origin's stream, or a `logs -f`. */
export interface Watcher {
  /** false: the watcher's buffer is full */
  event(ev: TaskEvent): boolean
  drain(): Promise<void>
  /** the task ended */
  done(result: ExecAspect): void
  /** the origin's stream: its backpressure pauses the task's output */
  primary: boolean
}

/** Where a follower's events go: `send` is false once its buffer is full, `drain` resolves when it can take more. */
export interface FollowerSink {
  send(ev: TaskEvent): boolean
  drain(): Promise<void>
}

/**
 * A `logs -f` follower over a sink with back-pressure. Once the sink is full, output is skipped (its bytes counted)
 * until the sink drains; then one `gap` event says how much was missed, and the output goes on from there. What it
 * holds is at most what the sink took before it said full: a follower that never reads costs the task nothing and
 * this node no memory. Events other than output are few and small (started, exit) and are always passed on.
 */
export function followerWatcher (sink: FollowerSink, done: (result: ExecAspect) => void): Watcher {
  let behind = false
  let skipped = 0
  return {
    primary: false,
    event: ev => {
      if (behind && ev.k === 'out') { skipped += ev.d.byteLength; return true }
      if (sink.send(ev) || behind) return true
      behind = true
      void sink.drain().then(() => {
        behind = false
        if (skipped > 0) sink.send({ k: 'gap', bytes: skipped })
        skipped = 0
      }, () => {})
      return true
    },
    drain: async () => {},
    done
  }
}

/** How watchers slow a task down: stop reading its output, read it again. */
export interface OutputFlow {
  pause: () => void
  resume: () => void
}

export class TaskWatchers {
  private readonly watchers = new Set<Watcher>()
  /** primary watchers waiting for a drain: the output is paused while there are any */
  private paused = 0

  constructor (private readonly flow: OutputFlow) {}

  get size (): number { return this.watchers.size }

  add (w: Watcher): void { this.watchers.add(w) }

  /** Forgets a watcher; a primary one that was holding the output back no longer does. */
  delete (w: Watcher): void {
    this.watchers.delete(w)
    if (w.primary && this.paused > 0) this.resume()
  }

  /** Hands an event to every watcher; one that throws is dropped, a primary one that is full pauses the output. */
  broadcast (ev: TaskEvent): void {
    for (const w of this.watchers) {
      let ok: boolean
      try {
        ok = w.event(ev)
      } catch {
        this.watchers.delete(w)
        continue
      }
      if (ok) continue
      if (w.primary) {
        // the origin cannot keep up: pause the task's output (it blocks on its next write) until the stream drains
        this.pause()
        void w.drain().catch(() => {}).finally(() => { this.resume() })
      }
    }
  }

  /** The task ended: tells every watcher, and forgets them. */
  done (state: ExecAspect): void {
    for (const w of this.watchers) {
      try { w.done(state) } catch {}
    }
    this.watchers.clear()
  }

  private pause (): void {
    if (this.paused++ === 0) this.flow.pause()
  }

  private resume (): void {
    if (this.paused > 0 && --this.paused === 0) this.flow.resume()
  }
}
