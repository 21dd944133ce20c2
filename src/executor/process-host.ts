/**
 * The daemon's children, through the spawner: one handle per child process, whoever asked for it (a task, a warm
 * worker). Hands out the spawner's slots, routes its events to each child's handlers, and starts the spawner again
 * (with backoff) when it dies; each child it had hears once that it is lost (`lost`). Children with direct stdio
 * (child.ts) get their connection from the stdio server (stdio-server.ts), matched by the hello the spawner sends.
 * With a task user (task-user.ts) every child runs as that user, and the spawner gives them a umask that leaves what
 * they create group-writable (gridd, in that group, removes their scratch directories).
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { UnavailableError } from '../interface/index.ts'
import { Child, type ChildHandlers, type ChildSpec } from './child.ts'
import { SPAWNER_RESTART_BASE_MS, SPAWNER_RESTART_CAP_MS, SPAWNER_RESTART_RESET_MS, STDIO_CONNECT_TIMEOUT_MS } from './constants.ts'
import { cannotExec } from './exec-path.ts'
import { Spawner, type SpawnerEvent } from './spawner.ts'
import { StdioServer } from './stdio-server.ts'
import { runAs, type TaskUser } from './task-user.ts'

export { Child, type ChildHandlers, type ChildSpec }

export interface ProcessHostComponents {
  logger: Logger
}

export interface ProcessHostInit {
  /** how long a child with direct stdio may take to connect (STDIO_CONNECT_TIMEOUT_MS) */
  stdioConnectTimeoutMs?: number
  /** every child runs as this user (executor.taskUser); without it, as gridd */
  user?: TaskUser
}

/** Children of a task user: what they create is group-writable (their group is gridd's way in), not other-readable. */
export const TASK_USER_UMASK = 0o007

export interface ProcessHostEvents {
  /** the spawner died; `children` it had are lost (each hears `lost` right after) */
  'spawner:exit': [code: number | null, children: number]
}

export class ProcessHost extends EventEmitter<ProcessHostEvents> {
  private readonly spawner = new Spawner()
  private readonly stdio: StdioServer
  private readonly children = new Map<number, Child>()
  private nextSlot = 1
  private restarts = 0
  private stopped = true
  private readonly connectTimeoutMs: number
  /** the user children run as (none: gridd's) */
  readonly user: TaskUser | undefined
  private readonly guard = (event: string, fn: () => void): void => {
    // a handler that throws must not take the spawner's pipe (and every other child) or a socket down with it
    try {
      fn()
    } catch (err) {
      this.components.logger.error({ err, event }, 'child handler failed')
    }
  }

  constructor (private readonly components: ProcessHostComponents, private readonly baseEnv: Record<string, string>, init: ProcessHostInit = {}) {
    super()
    this.connectTimeoutMs = init.stdioConnectTimeoutMs ?? STDIO_CONNECT_TIMEOUT_MS
    this.user = init.user
    this.stdio = new StdioServer(components.logger, this.connectTimeoutMs)
    this.spawner.on('event', e => { this.onEvent(e) })
    this.spawner.on('exit', code => { this.onExit(code) })
  }

  /** False while the spawner is not there (before start, after stop, restarting after a crash). */
  get running (): boolean { return this.spawner.running }

  private get umask (): number | undefined { return this.user === undefined ? undefined : TASK_USER_UMASK }

  /** The Unix socket children's direct stdio connects to (opened by the first such child); undefined before. */
  get stdioPath (): string | undefined { return this.stdio.listening }

  start (): void {
    this.stopped = false
    this.spawner.start(this.baseEnv, this.umask)
  }

  /** The spawner kills every child it still has, and exits; the stdio socket and its directory go. */
  stop (): void {
    this.stopped = true
    this.spawner.stop()
    this.stdio.stop()
  }

  /** Starts a child; its handlers hear how it goes. Throws UnavailableError when the spawner is not running. */
  spawn (spec: ChildSpec, handlers: ChildHandlers): Child {
    if (!this.running) throw new UnavailableError('the spawner is not running')
    const { stdio, input, stdin, wrap, ...command } = spec
    const direct = stdio === 'direct'
    const child = new Child(this.nextSlot++, this.spawner, handlers, direct, this.guard)
    this.children.set(child.slot, child)
    let rest: { argv: string[], env: Record<string, string>, cwd?: string } = command
    if (this.user !== undefined) {
      // setpriv would exec a missing program's sh into exit 127: said as a spawn error instead
      const missing = cannotExec(rest.argv[0] ?? '', rest.env.PATH ?? this.baseEnv.PATH ?? '', rest.cwd)
      if (missing !== undefined) {
        setImmediate(() => { this.fail(child, missing) })
        return child
      }
      rest = runAs(this.user, rest.argv, rest.env, rest.cwd)
    }
    if (wrap !== undefined) rest = { ...rest, argv: wrap(rest.argv) }
    if (!direct) {
      this.spawner.send({ op: 'spawn', slot: child.slot, ...rest, ...(input === undefined ? {} : { input }), ...(stdin === undefined ? {} : { stdin }) })
      return child
    }
    const path = this.stdio.path()
    if (path === undefined) {
      // after spawn() returns, as every other end is
      setImmediate(() => { this.fail(child, { code: 'ESTDIO', message: 'the daemon has no socket for its stdin and stdout' }) })
      return child
    }
    const token = StdioServer.token()
    this.stdio.expect(child.slot, token, (socket, head) => { child.attach(socket, head) })
    child.armConnectTimeout(this.connectTimeoutMs, () => {
      // the spawner may have forked it, or fork it yet: either way it must not run
      this.spawner.send({ op: 'kill', slot: child.slot, signal: 'SIGKILL' })
      this.fail(child, { code: 'ETIMEDOUT', message: `its stdin and stdout did not connect to the daemon within ${this.connectTimeoutMs}ms` })
    })
    this.spawner.send({ op: 'spawn', slot: child.slot, ...rest, connect: { path, hello: `${child.slot} ${token}` } })
    if (input !== undefined) child.write(input)
    return child
  }

  private onEvent (e: SpawnerEvent): void {
    const child = this.children.get(e.slot)
    if (child === undefined) return
    const h = child.handlers
    switch (e.ev) {
      case 'spawned': child.started(e.pid); this.guard('spawned', () => { h.spawned?.(e.pid) }); return
      case 'out': this.guard('output', () => { h.output?.(e.stream, e.data) }); return
      case 'written': this.guard('drain', () => { child.written(e.bytes) }); return
      case 'error': this.fail(child, { code: e.code, message: e.message }); return
      case 'exit':
        child.whenOutputRead(() => {
          if (child.ended) return
          this.end(child)
          this.guard('exit', () => { h.exit(e.code, e.signal as NodeJS.Signals | null) })
        })
    }
  }

  private fail (child: Child, e: { code: string, message: string }): void {
    if (child.ended) return
    this.end(child)
    this.guard('error', () => { child.handlers.error(e) })
  }

  private end (child: Child): void {
    child.ended = true
    child.release()
    this.children.delete(child.slot)
    if (child.direct) this.stdio.forget(child.slot)
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
      this.guard('lost', () => { child.handlers.lost() })
    }
    if (this.stopped) return
    const wait = Math.min(SPAWNER_RESTART_CAP_MS, SPAWNER_RESTART_BASE_MS * 2 ** this.restarts++)
    setTimeout(() => {
      if (this.stopped) return
      this.spawner.start(this.baseEnv, this.umask)
      setTimeout(() => { this.restarts = 0 }, SPAWNER_RESTART_RESET_MS).unref()
    }, wait).unref()
  }
}
