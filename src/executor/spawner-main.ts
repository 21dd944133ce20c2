/**
 * The spawner's own body: what runs inside the helper process (see spawner.ts for the protocol).
 *
 * `spawnerMain` is started from its source text (Function.toString), so it must not use anything from outside its
 * own body: no constants from elsewhere, and no import of its own (a transpiler may rewrite a dynamic import into a
 * helper that the spawner does not have): the script that starts it imports node:child_process and hands it over.
 */
import type * as ChildProcesses from 'node:child_process'
import type * as Net from 'node:net'

/** Runs in the spawner process; `cp` is node:child_process, `net` node:net. */
export function spawnerMain (cp: typeof ChildProcesses, net: typeof Net): void {
  const children = new Map<number, ChildProcesses.ChildProcess>()
  // children with direct stdio whose connection to the daemon is being made (they are forked once it is)
  const connecting = new Map<number, Net.Socket>()
  // the environment every child starts from: sent once, at start (the first line on stdin)
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
  interface Req { op: string, slot: number, argv?: string[], cwd?: string, env?: Record<string, string>, input?: string, stdin?: string, connect?: { path: string, hello: string }, signal?: NodeJS.Signals, data?: string, umask?: number }
  let buf = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk: string) => {
    buf += chunk
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (line === '') continue
      const req = JSON.parse(line) as Req
      if (req.op === 'env') { baseEnv = req.env ?? {}; if (req.umask !== undefined) process.umask(req.umask) }
      else if (req.op === 'spawn') { if (req.connect !== undefined) connect(req, req.connect); else start(req) } else if (req.op === 'kill') {
        const pending = connecting.get(req.slot)
        if (pending !== undefined) {
          // killed before it was forked: it never runs
          connecting.delete(req.slot)
          pending.destroy()
          event(req.slot, { ev: 'exit', code: null, signal: req.signal ?? 'SIGTERM' })
        }
        const c = children.get(req.slot)
        if (c?.pid !== undefined) { try { process.kill(-c.pid, req.signal ?? 'SIGTERM') } catch { try { c.kill(req.signal ?? 'SIGTERM') } catch {} } }
      } else if (req.op === 'pause') { const c = children.get(req.slot); c?.stdout?.pause(); c?.stderr?.pause() } else if (req.op === 'resume') { const c = children.get(req.slot); c?.stdout?.resume(); c?.stderr?.resume() } else if (req.op === 'write') write(req.slot, Buffer.from(req.data ?? '', 'base64'))
      else if (req.op === 'end') { const s = children.get(req.slot)?.stdin; if (s != null && !s.writableEnded) s.end() }
    }
  })
  // bytes for a child's open stdin: acknowledged once the child's pipe took them (or they can never be delivered),
  // so that the daemon holds back while a child does not read
  function write (slot: number, data: Buffer): void {
    const s = children.get(slot)?.stdin
    const ack = (): void => { event(slot, { ev: 'written', bytes: data.byteLength }) }
    if (s == null || s.writableEnded || s.destroyed) { ack(); return }
    s.write(data, ack)
  }
  // direct stdio: the connection first (it says which child it is for), then the fork with it as stdin and stdout
  function connect (req: Req, to: { path: string, hello: string }): void {
    const sock = net.connect(to.path)
    connecting.set(req.slot, sock)
    const fail = (err: Error): void => {
      if (connecting.get(req.slot) !== sock) return
      connecting.delete(req.slot)
      sock.destroy()
      event(req.slot, { ev: 'error', code: 'ESTDIO', message: `cannot connect its stdin and stdout to the daemon: ${err.message}` })
    }
    sock.on('error', fail)
    sock.once('connect', () => {
      sock.write(to.hello + '\n', err => {
        if (err != null) { fail(err); return }
        // a kill while it connected destroyed it
        if (connecting.get(req.slot) !== sock) return
        connecting.delete(req.slot)
        start(req, sock)
      })
    })
  }
  function start (req: Req, sock?: Net.Socket): void {
    const argv = req.argv ?? []
    const open = req.stdin === 'pipe'
    let child: ChildProcesses.ChildProcess
    try {
      child = cp.spawn(argv[0] as string, argv.slice(1), { cwd: req.cwd, env: { ...baseEnv, ...req.env }, detached: true, stdio: [sock ?? (open || req.input !== undefined ? 'pipe' : 'ignore'), sock ?? 'pipe', 'pipe'] })
    } catch (err) {
      sock?.destroy()
      event(req.slot, { ev: 'error', code: (err as NodeJS.ErrnoException).code ?? 'ERR', message: (err as Error).message })
      return
    }
    // the child has its own copy of the connection (or none, if it could not start): this one must not read what
    // the daemon writes to the child
    sock?.destroy()
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
    child.stdin?.on('error', () => {})
    if (req.input !== undefined) {
      if (open) child.stdin?.write(req.input)
      else child.stdin?.end(req.input)
    }
    child.stdout?.on('data', (d: Buffer) => { frame(1, req.slot, d) })
    child.stderr?.on('data', (d: Buffer) => { frame(2, req.slot, d) })
    let closed = false
    child.once('close', () => { closed = true })
    child.once('exit', (code, signal) => {
      // stop whatever the child left behind in its group, and give its pipes a moment to deliver the last output
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
