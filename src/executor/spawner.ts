/**
 * The spawner: a small helper process that forks the tasks, so the daemon's event loop never blocks in fork() and
 * exec(), and forking starts from a small process (cheaper page tables) rather than the daemon's large heap.
 *
 * It is also what ties tasks to the daemon's life: when the daemon dies (even by kill -9) the spawner's stdin closes,
 * and it kills every task's process group before it exits. It runs in its own process group so that a signal to the
 * daemon's group does not take it down before it has done so.
 *
 * Protocol: the daemon writes newline-delimited JSON requests to the spawner's stdin; the spawner answers on its
 * stdout with frames `[u32 length][u8 kind][u32 slot][payload]`: kind 0 a JSON event, 1 stdout bytes, 2 stderr bytes.
 * `spawnerMain` runs inside the spawner process: it is started from its source text (Function.toString), so it must
 * not use anything from outside its own body.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'

export interface SpawnRequest {
  slot: number
  argv: string[]
  cwd?: string
  /** added to the base environment the spawner got at start */
  env: Record<string, string>
  /** written to the task's stdin, then stdin is closed; without it stdin is /dev/null */
  stdin?: string
}

export type SpawnerEvent =
  | { slot: number, ev: 'spawned', pid: number }
  | { slot: number, ev: 'error', code: string, message: string }
  | { slot: number, ev: 'exit', code: number | null, signal: string | null }
  | { slot: number, ev: 'out', stream: 1 | 2, data: Buffer }

/** Runs in the spawner process. */
export async function spawnerMain (): Promise<void> {
  const cp = await import('node:child_process')
  const children = new Map<number, import('node:child_process').ChildProcess>()
  // the environment every task starts from: sent once, at start (the first line on stdin)
  let baseEnv: Record<string, string> = {}
  const out = process.stdout
  const frame = (kind: number, slot: number, payload: Buffer): void => {
    const head = Buffer.allocUnsafe(9)
    head.writeUInt32LE(payload.byteLength + 5, 0)
    head.writeUInt8(kind, 4)
    head.writeUInt32LE(slot, 5)
    out.write(head)
    out.write(payload)
  }
  const event = (slot: number, e: Record<string, unknown>): void => { frame(0, slot, Buffer.from(JSON.stringify(e))) }
  const killAll = (): void => {
    for (const c of children.values()) { try { process.kill(-(c.pid as number), 'SIGKILL') } catch {} }
  }
  // the daemon is gone: nothing may outlive it
  process.stdin.on('end', () => { killAll(); process.exit(0) })
  process.stdin.on('error', () => { killAll(); process.exit(0) })
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => { killAll(); process.exit(0) })
  let buf = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk: string) => {
    buf += chunk
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (line === '') continue
      const req = JSON.parse(line) as { op: string, slot: number, argv?: string[], cwd?: string, env?: Record<string, string>, stdin?: string, signal?: NodeJS.Signals }
      if (req.op === 'env') baseEnv = req.env ?? {}
      else if (req.op === 'spawn') start(req)
      else if (req.op === 'kill') {
        const c = children.get(req.slot)
        if (c?.pid !== undefined) { try { process.kill(-c.pid, req.signal ?? 'SIGTERM') } catch { try { c.kill(req.signal ?? 'SIGTERM') } catch {} } }
      } else if (req.op === 'pause') { const c = children.get(req.slot); c?.stdout?.pause(); c?.stderr?.pause() } else if (req.op === 'resume') { const c = children.get(req.slot); c?.stdout?.resume(); c?.stderr?.resume() }
    }
  })
  function start (req: { slot: number, argv?: string[], cwd?: string, env?: Record<string, string>, stdin?: string }): void {
    const argv = req.argv ?? []
    let child: import('node:child_process').ChildProcess
    try {
      child = cp.spawn(argv[0] as string, argv.slice(1), { cwd: req.cwd, env: { ...baseEnv, ...req.env }, detached: true, stdio: [req.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    } catch (err) {
      event(req.slot, { ev: 'error', code: (err as NodeJS.ErrnoException).code ?? 'ERR', message: (err as Error).message })
      return
    }
    let failed = false
    child.once('error', err => {
      if (child.pid === undefined && !failed) {
        failed = true
        event(req.slot, { ev: 'error', code: (err as NodeJS.ErrnoException).code ?? 'ERR', message: err.message })
      }
    })
    if (child.pid === undefined) return
    children.set(req.slot, child)
    event(req.slot, { ev: 'spawned', pid: child.pid })
    if (req.stdin !== undefined) { child.stdin?.on('error', () => {}); child.stdin?.end(req.stdin) }
    child.stdout?.on('data', (d: Buffer) => { frame(1, req.slot, d) })
    child.stderr?.on('data', (d: Buffer) => { frame(2, req.slot, d) })
    let closed = false
    child.once('close', () => { closed = true })
    child.once('exit', (code, signal) => {
      // stop whatever the task left behind in its group, and give its pipes a moment to deliver the last output
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
      const done = (): void => { children.delete(req.slot); event(req.slot, { ev: 'exit', code, signal }) }
      if (closed) done()
      else {
        const t = setTimeout(done, 2000)
        child.once('close', () => { clearTimeout(t); done() })
      }
    })
  }
}

/** The daemon's side of the spawner: starts it, sends requests, parses its frames into events. */
export class Spawner extends EventEmitter<{ event: [SpawnerEvent], exit: [code: number | null] }> {
  private child?: ChildProcess
  private pending: Buffer[] = []
  private pendingBytes = 0

  get running (): boolean { return this.child !== undefined }

  /** Starts the spawner; `baseEnv` is the environment every task starts from (sent once, not with each task). */
  start (baseEnv: Record<string, string>): void {
    const child = spawn(process.execPath, ['--input-type=module', '--max-old-space-size=64', '-e', `(${spawnerMain.toString()})()`], {
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }
    })
    this.child = child
    child.stdin?.on('error', () => {})
    child.stdin?.write(JSON.stringify({ op: 'env', slot: 0, env: baseEnv }) + '\n')
    child.stdout?.on('data', (d: Buffer) => { this.onData(d) })
    child.once('exit', code => {
      this.child = undefined
      this.emit('exit', code)
    })
  }

  stop (): void {
    this.child?.stdin?.end()
  }

  send (req: { op: 'spawn' } & SpawnRequest | { op: 'kill', slot: number, signal: NodeJS.Signals } | { op: 'pause' | 'resume', slot: number }): void {
    this.child?.stdin?.write(JSON.stringify(req) + '\n')
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
