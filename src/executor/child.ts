/**
 * One child process of the spawner, as its owner holds it: signals to its process group, its output paused or read,
 * and its stdin.
 *
 * Its stdin is /dev/null, or `input` written then closed, or kept open, in one of two ways:
 * - 'pipe': relayed by the spawner (`write` requests, acknowledged once the child's pipe took the bytes);
 * - 'direct' (`stdio: 'direct'`): its stdin and stdout are one Unix socket connected straight to this process. The
 *   spawner made the connection before the fork and keeps no copy, so requests and replies take no hop through it;
 *   it still owns the process (pid, signals, exit, killing it when the daemon dies), and stderr still comes through it.
 */
import type { Socket } from 'node:net'
import { STDIN_HIGH_WATER_BYTES, STDIO_FLUSH_TIMEOUT_MS } from './constants.ts'
import type { Spawner } from './spawner.ts'

export interface ChildSpec {
  argv: string[]
  /** added to the base environment */
  env: Record<string, string>
  cwd?: string
  /** written to stdin; then stdin is closed unless `stdin` is 'pipe' or `stdio` 'direct'. Without either, /dev/null */
  input?: string
  /** 'pipe': stdin stays open for `write` and `end`, relayed by the spawner */
  stdin?: 'pipe'
  /** 'direct': stdin (open, for `write` and `end`) and stdout are one socket to this process, not via the spawner */
  stdio?: 'direct'
  /** wraps the command line that runs it (as the task user, when there is one), run still as gridd (a cgroup's join) */
  wrap?: (argv: string[]) => string[]
}

/** What a child's owner hears about it. Exactly one of `error`, `exit` and `lost` ends it. */
export interface ChildHandlers {
  spawned?: (pid: number) => void
  output?: (stream: 1 | 2, data: Buffer) => void
  /** it could not be started (`code` as Node gives it: ENOENT, EACCES…; ESTDIO or ETIMEDOUT: its direct stdio) */
  error: (e: { code: string, message: string }) => void
  /** with direct stdio, only once its last stdout has been read (or STDIO_FLUSH_TIMEOUT_MS passed) */
  exit: (code: number | null, signal: NodeJS.Signals | null) => void
  /** the spawner died, and the child with it */
  lost: () => void
  /** an open stdin took what was written to it after `write` answered false */
  drain?: () => void
}

/** Runs a handler so that one that throws is logged, not taking its caller (a socket, the spawner's pipe) down. */
export type HandlerGuard = (event: string, fn: () => void) => void

/** One child process of the spawner. */
export class Child {
  pid: number | undefined
  /** over: it exited, could not start, or was lost */
  ended = false
  /** relayed: bytes the spawner has not acknowledged; direct: bytes held until the socket may be written */
  private unwritten = 0
  private full = false
  // direct stdio: the daemon's end of the socket, once the spawner's connection said hello
  private socket: Socket | undefined
  private forked = false
  /** the socket is there and the child forked (the spawner holds no copy): it may be written */
  private ready = false
  private held: Array<Uint8Array | string> = []
  private endAsked = false
  private paused = false
  /** the child's end closed (no more stdout can come) */
  private stdoutClosed = false
  private onStdoutClosed: (() => void) | undefined
  private connectTimer: NodeJS.Timeout | undefined

  constructor (readonly slot: number, private readonly spawner: Spawner, readonly handlers: ChildHandlers, readonly direct: boolean, private readonly guard: HandlerGuard) {}

  /** Signals its process group. */
  kill (signal: NodeJS.Signals): void {
    if (!this.ended) this.spawner.send({ op: 'kill', slot: this.slot, signal })
  }

  /** Stops reading its output (it blocks on its next write once the pipe is full); `resume` reads again. */
  pause (): void {
    if (this.ended) return
    this.paused = true
    this.socket?.pause()
    this.spawner.send({ op: 'pause', slot: this.slot })
  }

  resume (): void {
    if (this.ended) return
    this.paused = false
    this.socket?.resume()
    this.spawner.send({ op: 'resume', slot: this.slot })
  }

  /**
   * Writes to its open stdin. False: more than STDIN_HIGH_WATER_BYTES are on their way and not yet taken by the
   * child; the bytes are still sent, and `drain` says when to go on.
   */
  write (data: Uint8Array | string): boolean {
    if (this.ended) return false
    if (this.direct) return this.writeDirect(data)
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    if (bytes.byteLength === 0) return !this.full
    this.unwritten += bytes.byteLength
    this.spawner.send({ op: 'write', slot: this.slot, data: bytes })
    if (this.unwritten > STDIN_HIGH_WATER_BYTES) this.full = true
    return !this.full
  }

  /** Closes its stdin (after what was written): with direct stdio, a half-close of the socket (the child reads EOF). */
  end (): void {
    if (this.ended) return
    if (!this.direct) this.spawner.send({ op: 'end', slot: this.slot })
    else if (this.ready) this.socket?.end()
    else this.endAsked = true
  }

  /** @internal the spawner's acknowledgement of written bytes */
  written (bytes: number): void {
    this.unwritten = Math.max(0, this.unwritten - bytes)
    if (!this.full || this.unwritten > STDIN_HIGH_WATER_BYTES) return
    this.full = false
    this.handlers.drain?.()
  }

  /** @internal it was forked, as `pid` */
  started (pid: number): void {
    this.pid = pid
    this.forked = true
    this.becomeReady()
  }

  /** @internal the daemon's end of its direct stdio; `head`: what came after the hello, the child's first stdout */
  attach (socket: Socket, head: Buffer): void {
    clearTimeout(this.connectTimer)
    if (this.ended) { socket.destroy(); return }
    this.socket = socket
    socket.on('error', () => {}) // the spawner's exit event says how the child ended
    socket.on('data', (d: Buffer) => { this.guard('output', () => { this.handlers.output?.(1, d) }) })
    socket.on('drain', () => { this.onSocketDrain() })
    socket.once('end', () => { this.onClosed() })
    socket.once('close', () => { this.onClosed() })
    if (head.byteLength > 0) this.guard('output', () => { this.handlers.output?.(1, head) })
    if (!this.paused) socket.resume()
    this.becomeReady()
  }

  /** @internal fails its start (`onTimeout`) unless its direct stdio connects within `ms` */
  armConnectTimeout (ms: number, onTimeout: () => void): void {
    this.connectTimer = setTimeout(onTimeout, ms)
    this.connectTimer.unref()
  }

  /**
   * @internal it exited: `report` once its last stdout is read. The spawner reports an exit only after the child's
   * pipes closed, but a direct socket's bytes come another way and may still be on it, or the connection itself may
   * not have been taken yet (the spawner's events can be read first). One that was never forked has nothing to read.
   */
  whenOutputRead (report: () => void): void {
    clearTimeout(this.connectTimer)
    if (!this.direct || !this.forked || this.stdoutClosed) { report(); return }
    const timer = setTimeout(() => {
      if (this.socket !== undefined) { this.socket.destroy(); return }
      this.onStdoutClosed = undefined
      report()
    }, STDIO_FLUSH_TIMEOUT_MS)
    timer.unref()
    this.onStdoutClosed = () => { clearTimeout(timer); report() }
  }

  /** @internal it is over: its socket closes, no timer of its own fires */
  release (): void {
    clearTimeout(this.connectTimer)
    this.held = []
    this.socket?.destroy()
  }

  private writeDirect (data: Uint8Array | string): boolean {
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    if (size === 0) return !this.full
    if (!this.ready) {
      this.held.push(data)
      this.unwritten += size
      if (this.unwritten > STDIN_HIGH_WATER_BYTES) this.full = true
      return !this.full
    }
    const socket = this.socket as Socket
    socket.write(data)
    if (socket.writableLength > STDIN_HIGH_WATER_BYTES) this.full = true
    return !this.full
  }

  /**
   * Once both the socket is here and the child is forked, what was held goes out. Not before the fork: until then
   * the spawner's copy of the connection could read it.
   */
  private becomeReady (): void {
    if (!this.direct || this.ready || this.socket === undefined || !this.forked || this.ended) return
    this.ready = true
    const socket = this.socket
    for (const data of this.held) socket.write(data)
    this.held = []
    this.unwritten = 0
    if (this.endAsked) socket.end()
    this.onSocketDrain()
  }

  private onSocketDrain (): void {
    if (!this.full || (this.socket?.writableLength ?? 0) > STDIN_HIGH_WATER_BYTES) return
    this.full = false
    this.guard('drain', () => { this.handlers.drain?.() })
  }

  private onClosed (): void {
    if (this.stdoutClosed) return
    this.stdoutClosed = true
    const report = this.onStdoutClosed
    this.onStdoutClosed = undefined
    report?.()
  }
}
