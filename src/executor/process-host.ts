/**
 * The daemon's children, through the spawner: one handle per child process, whoever asked for it (a task, a warm
 * worker). Hands out the spawner's slots, routes its events to each child's handlers, and starts the spawner again
 * (with backoff) when it dies; each child it had hears once that it is lost (`lost`).
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { UnavailableError } from '../interface/index.ts'
import { SPAWNER_RESTART_BASE_MS, SPAWNER_RESTART_CAP_MS, SPAWNER_RESTART_RESET_MS, STDIN_HIGH_WATER_BYTES } from './constants.ts'
import { Spawner, type SpawnerEvent } from './spawner.ts'

export interface ChildSpec {
  argv: string[]
  /** added to the base environment */
  env: Record<string, string>
  cwd?: string
  /** written to stdin; then stdin is closed unless `stdin` is 'pipe'. Without either, stdin is /dev/null */
  input?: string
  /** 'pipe': stdin stays open for `write` and `end` */
  stdin?: 'pipe'
}

/** What a child's owner hears about it. Exactly one of `error`, `exit` and `lost` ends it. */
export interface ChildHandlers {
  spawned?: (pid: number) => void
  output?: (stream: 1 | 2, data: Buffer) => void
  /** it could not be started (`code` as Node gives it: ENOENT, EACCES…) */
  error: (e: { code: string, message: string }) => void
  exit: (code: number | null, signal: NodeJS.Signals | null) => void
  /** the spawner died, and the child with it */
  lost: () => void
  /** an open stdin took what was written to it after `write` answered false */
  drain?: () => void
}

/** One child process of the spawner. */
export class Child {
  pid: number | undefined
  /** over: it exited, could not start, or was lost */
  ended = false
  private unwritten = 0
  private full = false

  constructor (readonly slot: number, private readonly spawner: Spawner, readonly handlers: ChildHandlers) {}

  /** Signals its process group. */
  kill (signal: NodeJS.Signals): void {
    if (!this.ended) this.spawner.send({ op: 'kill', slot: this.slot, signal })
  }

  /** Stops reading its output (it blocks on its next write once the pipe is full); `resume` reads again. */
  pause (): void { if (!this.ended) this.spawner.send({ op: 'pause', slot: this.slot }) }
  resume (): void { if (!this.ended) this.spawner.send({ op: 'resume', slot: this.slot }) }

  /**
   * Writes to its open stdin. False: more than STDIN_HIGH_WATER_BYTES are on their way and not yet taken by the
   * child; the bytes are still sent, and `drain` says when to go on.
   */
  write (data: Uint8Array | string): boolean {
    if (this.ended) return false
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    if (bytes.byteLength === 0) return !this.full
    this.unwritten += bytes.byteLength
    this.spawner.send({ op: 'write', slot: this.slot, data: bytes })
    if (this.unwritten > STDIN_HIGH_WATER_BYTES) this.full = true
    return !this.full
  }

  /** Closes its stdin (after what was written). */
  end (): void {
    if (!this.ended) this.spawner.send({ op: 'end', slot: this.slot })
  }

  /** @internal the spawner's acknowledgement of written bytes */
  written (bytes: number): void {
    this.unwritten = Math.max(0, this.unwritten - bytes)
    if (!this.full || this.unwritten > STDIN_HIGH_WATER_BYTES) return
    this.full = false
    this.handlers.drain?.()
  }
}

export interface ProcessHostComponents {
  logger: Logger
}

export interface ProcessHostEvents {
  /** the spawner died; `children` it had are lost (each hears `lost` right after) */
  'spawner:exit': [code: number | null, children: number]
}

export class ProcessHost extends EventEmitter<ProcessHostEvents> {
  private readonly spawner = new Spawner()
  private readonly children = new Map<number, Child>()
  private nextSlot = 1
  private restarts = 0
  private stopped = true

  constructor (private readonly components: ProcessHostComponents, private readonly baseEnv: Record<string, string>) {
    super()
    this.spawner.on('event', e => { this.onEvent(e) })
    this.spawner.on('exit', code => { this.onExit(code) })
  }

  /** False while the spawner is not there (before start, after stop, restarting after a crash). */
  get running (): boolean { return this.spawner.running }

  start (): void {
    this.stopped = false
    this.spawner.start(this.baseEnv)
  }

  /** The spawner kills every child it still has, and exits. */
  stop (): void {
    this.stopped = true
    this.spawner.stop()
  }

  /** Starts a child; its handlers hear how it goes. Throws UnavailableError when the spawner is not running. */
  spawn (spec: ChildSpec, handlers: ChildHandlers): Child {
    if (!this.running) throw new UnavailableError('the spawner is not running')
    const child = new Child(this.nextSlot++, this.spawner, handlers)
    this.children.set(child.slot, child)
    this.spawner.send({ op: 'spawn', slot: child.slot, ...spec })
    return child
  }

  private onEvent (e: SpawnerEvent): void {
    const child = this.children.get(e.slot)
    if (child === undefined) return
    const h = child.handlers
    // a handler that throws must not take the spawner's pipe (and every other child) down with it
    try {
      switch (e.ev) {
        case 'spawned': child.pid = e.pid; h.spawned?.(e.pid); return
        case 'out': h.output?.(e.stream, e.data); return
        case 'written': child.written(e.bytes); return
        case 'error': this.end(child); h.error({ code: e.code, message: e.message }); return
        case 'exit': this.end(child); h.exit(e.code, e.signal as NodeJS.Signals | null)
      }
    } catch (err) {
      this.components.logger.error({ err, event: e.ev }, 'child handler failed')
    }
  }

  private end (child: Child): void {
    child.ended = true
    this.children.delete(child.slot)
  }

  /**
   * The spawner died (killed, out of memory): its children are lost to us (a spawner that could not run its own
   * shutdown, as after SIGKILL, leaves them running until the next start reaps them); start a new one.
   */
  private onExit (code: number | null): void {
    const lost = [...this.children.values()]
    if (!this.stopped || lost.length > 0) {
      try {
        this.emit('spawner:exit', code, lost.length)
      } catch (err) {
        this.components.logger.error({ err }, 'spawner:exit listener failed')
      }
    }
    for (const child of lost) {
      this.end(child)
      try {
        child.handlers.lost()
      } catch (err) {
        this.components.logger.error({ err }, 'child handler failed')
      }
    }
    if (this.stopped) return
    const wait = Math.min(SPAWNER_RESTART_CAP_MS, SPAWNER_RESTART_BASE_MS * 2 ** this.restarts++)
    setTimeout(() => {
      if (this.stopped) return
      this.spawner.start(this.baseEnv)
      setTimeout(() => { this.restarts = 0 }, SPAWNER_RESTART_RESET_MS).unref()
    }, wait).unref()
  }
}
