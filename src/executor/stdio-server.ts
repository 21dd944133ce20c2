/**
 * The daemon's end of its children's direct stdio: a Unix socket in a private directory (mkdtemp: mode 0700, under
 * the temporary directory; removed on stop). For a child with `stdio: 'direct'` the spawner connects to it, writes
 * one line naming the child (`<slot> <token>`, the token a random one the daemon put in the spawn request), and only
 * then forks the child with that connection as its stdin and stdout. A connection whose hello names no child this
 * server expects, with the wrong token, or that says nothing in time, is dropped. The directories of earlier runs
 * that were killed (kill -9 runs no stop) are removed when the next one opens its socket.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'

/** A hello is `<slot> <32 hex digits>\n`: anything longer without a newline is not one. */
const HELLO_MAX_BYTES = 128
const SOCKET_NAME = 'stdio.sock'
const DIR_PREFIX = 'grid-stdio-'
/** A directory without its socket this long is an earlier run's leftover (one being made now is younger). */
const STALE_DIR_MIN_AGE_MS = 60_000
/** A Unix socket's path is at most 107 bytes on Linux: a long TMPDIR falls back to /tmp. */
const SOCKET_PATH_MAX_BYTES = 100

/** Takes a child's connection; `head` is what came after the hello (the child's first stdout). */
export type Accept = (socket: Socket, head: Buffer) => void

export class StdioServer {
  private server: Server | undefined
  private dir: string | undefined
  private socketPath: string | undefined
  private readonly expected = new Map<number, { token: Buffer, accept: Accept }>()
  /** connections that have not said hello yet */
  private readonly greeting = new Set<Socket>()

  constructor (private readonly log: Logger, private readonly helloTimeoutMs: number) {}

  /** The socket's path, opening it on first use; undefined when its directory cannot be made (logged). */
  path (): string | undefined {
    if (this.socketPath !== undefined) return this.socketPath
    const base = join(tmpdir(), `${DIR_PREFIX}XXXXXX`, SOCKET_NAME).length > SOCKET_PATH_MAX_BYTES ? '/tmp' : tmpdir()
    try {
      this.dir = mkdtempSync(join(base, DIR_PREFIX))
    } catch (err) {
      this.log.error({ err, dir: base }, 'cannot make the directory for children\'s stdio socket')
      return undefined
    }
    const path = join(this.dir, SOCKET_NAME)
    const server = createServer({ allowHalfOpen: true }, socket => { this.onConnection(socket) })
    server.on('error', err => { this.log.error({ err, path }, 'the socket for children\'s stdio failed') })
    // binding is synchronous: a spawner told this path right after can connect
    server.listen(path)
    this.server = server
    this.socketPath = path
    sweepStaleDirs(base, this.dir, this.log)
    return path
  }

  /** The socket's path while it listens. */
  get listening (): string | undefined { return this.socketPath }

  /** A new token for a child's hello. */
  static token (): string {
    return randomBytes(16).toString('hex')
  }

  /** The spawner will connect for `slot`, saying `token`: hand that connection to `accept`. */
  expect (slot: number, token: string, accept: Accept): void {
    this.expected.set(slot, { token: Buffer.from(token), accept })
  }

  /** No connection is wanted for `slot` any more (it ended, or timed out). */
  forget (slot: number): void {
    this.expected.delete(slot)
  }

  /** Stops listening and removes its directory; connections already handed over stay with their children. */
  stop (): void {
    this.expected.clear()
    for (const s of this.greeting) s.destroy()
    this.greeting.clear()
    this.server?.close()
    this.server = undefined
    this.socketPath = undefined
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
    this.dir = undefined
  }

  private onConnection (socket: Socket): void {
    this.greeting.add(socket)
    let head: Buffer = Buffer.alloc(0)
    const drop = (): void => { this.greeting.delete(socket); socket.destroy() }
    socket.on('error', () => {})
    socket.setTimeout(this.helloTimeoutMs, drop)
    socket.once('close', () => { this.greeting.delete(socket) })
    const onData = (d: Buffer): void => {
      head = head.byteLength === 0 ? d : Buffer.concat([head, d])
      const nl = head.indexOf(10)
      if (nl < 0) {
        if (head.byteLength > HELLO_MAX_BYTES) this.refuse(drop)
        return
      }
      socket.pause()
      socket.off('data', onData)
      socket.setTimeout(0)
      this.greeting.delete(socket)
      const [slotText = '', token = ''] = head.subarray(0, nl).toString('latin1').split(' ')
      const slot = Number(slotText)
      const e = this.expected.get(slot)
      if (e === undefined || !sameToken(Buffer.from(token), e.token)) { this.refuse(drop); return }
      this.expected.delete(slot)
      e.accept(socket, head.subarray(nl + 1))
    }
    socket.on('data', onData)
  }

  private refuse (drop: () => void): void {
    // its hello is untrusted: not logged. Debug: the spawner's own connection for a child that timed out, or was
    // killed while it connected, lands here too
    this.log.debug({ path: this.socketPath }, 'dropped a stdio connection that named no child it was expecting')
    drop()
  }
}

/**
 * Removes socket directories that earlier runs left behind: ours (same owner), whose socket refuses connections, as
 * one that nobody listens on does, whichever process or namespace made it; a live one's is left alone.
 */
function sweepStaleDirs (base: string, keep: string, log: Logger): void {
  let names: string[]
  try {
    names = readdirSync(base)
  } catch {
    return
  }
  const uid = process.getuid?.()
  for (const name of names) {
    const dir = join(base, name)
    if (!name.startsWith(DIR_PREFIX) || dir === keep) continue
    let madeAt: number
    try {
      const st = lstatSync(dir)
      if (!st.isDirectory() || st.uid !== uid) continue
      madeAt = st.mtimeMs
    } catch {
      continue
    }
    const probe = connect(join(dir, SOCKET_NAME))
    probe.once('connect', () => { probe.destroy() })
    probe.once('error', err => {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ECONNREFUSED' && !(code === 'ENOENT' && Date.now() - madeAt > STALE_DIR_MIN_AGE_MS)) return
      try {
        rmSync(dir, { recursive: true, force: true })
        log.debug({ dir }, 'removed the stdio socket directory of an earlier run')
      } catch (rmErr) {
        log.debug({ err: rmErr, dir }, 'cannot remove the stdio socket directory of an earlier run')
      }
    })
  }
}

function sameToken (a: Buffer, b: Buffer): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}
