/**
 * The spawner: a small helper process that forks the daemon's children (tasks and warm workers), so the daemon's event
 * loop never blocks in fork() and exec(), and forking starts from a small process (cheaper page tables) rather than
 * the daemon's large heap.
 *
 * It is also what ties the children to the daemon's life: when the daemon dies (even by kill -9) the spawner's stdin
 * closes, and it kills every child's process group before it exits. It runs in its own process group so that a signal
 * to the daemon's group does not take it down before it has done so.
 *
 * Protocol: the daemon writes newline-delimited JSON requests to the spawner's stdin, the first one `env` (the base
 * environment, and the children's umask if given), then `spawn`, `kill`, `pause`/`resume` (the child's output),
 * `write` (base64 bytes for an open stdin) and `end` (close it). A spawn's stdin is /dev/null, or `input` written then closed, or with `stdin: 'pipe'` kept
 * open (`input`, when given, written first) for `write` and `end`. With `connect` (direct stdio) the spawner first
 * connects to the daemon's Unix socket at `connect.path` and writes the line `connect.hello`, then forks the child
 * with that connection as its stdin and stdout and closes its own copy: the child's requests and replies never pass
 * through the spawner (a `kill` while it connects cancels the fork, and answers `exit`). The spawner answers on its
 * stdout with frames `[u32 length][u8 kind][u32 slot][payload]`: kind 0 a JSON event (spawned, error, exit, and
 * `written` once the child's stdin took the bytes of a `write`), 1 stdout bytes (none for direct stdio), 2 stderr
 * bytes. Its body is spawner-main.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { spawnerMain } from './spawner-main.ts'

export { spawnerMain }

export interface SpawnRequest {
  slot: number
  argv: string[]
  cwd?: string
  /** added to the base environment the spawner got at start */
  env: Record<string, string>
  /** written to the child's stdin; then stdin is closed unless `stdin` is 'pipe'. Without either, stdin is /dev/null */
  input?: string
  /** 'pipe': stdin stays open for `write` and `end` requests */
  stdin?: 'pipe'
  /** direct stdio: stdin and stdout are a connection to the Unix socket at `path`, which first hears `hello` (a line) */
  connect?: { path: string, hello: string }
}

export type SpawnerRequest =
  | { op: 'spawn' } & SpawnRequest
  | { op: 'kill', slot: number, signal: NodeJS.Signals }
  | { op: 'pause' | 'resume' | 'end', slot: number }
  | { op: 'write', slot: number, data: Uint8Array }

export type SpawnerEvent =
  | { slot: number, ev: 'spawned', pid: number }
  | { slot: number, ev: 'error', code: string, message: string }
  | { slot: number, ev: 'exit', code: number | null, signal: string | null }
  | { slot: number, ev: 'out', stream: 1 | 2, data: Buffer }
  /** the child's stdin took `bytes` of what was written to it (or they can no longer be delivered) */
  | { slot: number, ev: 'written', bytes: number }

/** The daemon's side of the spawner: starts it, sends requests, parses its frames into events. */
export class Spawner extends EventEmitter<{ event: [SpawnerEvent], exit: [code: number | null] }> {
  private child?: ChildProcess
  private pending: Buffer[] = []
  private pendingBytes = 0

  get running (): boolean { return this.child !== undefined }

  /**
   * Starts the spawner; `baseEnv` is the environment every child starts from (sent once, not with each child),
   * `umask` the one children get (without it, gridd's).
   */
  start (baseEnv: Record<string, string>, umask?: number): void {
    const child = spawn(process.execPath, ['--input-type=module', '--max-old-space-size=64', '-e', `import * as cp from 'node:child_process'; import * as net from 'node:net'; (${spawnerMain.toString()})(cp, net)`], {
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }
    })
    this.child = child
    this.pending = []
    this.pendingBytes = 0
    child.stdin?.on('error', () => {})
    child.stdin?.write(JSON.stringify({ op: 'env', slot: 0, env: baseEnv, ...(umask === undefined ? {} : { umask }) }) + '\n')
    child.stdout?.on('data', (d: Buffer) => { this.onData(d) })
    child.once('exit', code => {
      this.child = undefined
      this.emit('exit', code)
    })
  }

  /** Closes the spawner's stdin: it kills every child it still has, and exits. */
  stop (): void {
    this.child?.stdin?.end()
  }

  send (req: SpawnerRequest): void {
    const line = req.op === 'write' ? JSON.stringify({ op: 'write', slot: req.slot, data: Buffer.from(req.data.buffer, req.data.byteOffset, req.data.byteLength).toString('base64') }) : JSON.stringify(req)
    this.child?.stdin?.write(line + '\n')
  }

  private onData (d: Buffer): void {
    this.pending.push(d)
    this.pendingBytes += d.byteLength
    let buf = this.pending.length === 1 ? d : Buffer.concat(this.pending, this.pendingBytes)
    let off = 0
    while (buf.byteLength - off >= 4) {
      const len = buf.readUInt32LE(off)
      if (buf.byteLength - off - 4 < len) break
      const kind = buf.readUInt8(off + 4)
      const slot = buf.readUInt32LE(off + 5)
      const payload = buf.subarray(off + 9, off + 4 + len)
      off += 4 + len
      if (kind === 0) {
        const e = JSON.parse(payload.toString('utf8')) as Record<string, unknown>
        this.emit('event', { slot, ...e } as SpawnerEvent)
      } else {
        // copy: the frame buffer is reused by the next read
        this.emit('event', { slot, ev: 'out', stream: kind === 1 ? 1 : 2, data: Buffer.from(payload) })
      }
    }
    buf = buf.subarray(off)
    this.pending = buf.byteLength === 0 ? [] : [buf]
    this.pendingBytes = buf.byteLength
  }
}
