/**
 * Test harness: real gridd processes on 127.0.0.1, each with its own data directory and control socket, tied to the
 * test process by a lifeline (they die with it, even if the runner crashes). Tests wait on conditions, not sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HealthEntry, NodeEntry, StatusResponse } from '../../proto/index.ts'
import { ApiClient } from '../../src/cli/client.ts'
import { GRIDD_NODE_FLAGS } from '../../src/version.ts'
import { GRIDCTL, GRIDD, LIFELINE } from './paths.ts'

export interface WaitOptions { timeoutMs?: number, intervalMs?: number }

/** Polls `fn` until it returns a truthy value (returned) or the deadline passes (throws with `what` and the last error). */
export async function waitFor<T> (what: string, fn: () => Promise<T> | T, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000)
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>
      last = v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`)
    }
    await new Promise(resolve => setTimeout(resolve, opts.intervalMs ?? 100))
  }
}

/** A TCP port free on 127.0.0.1 right now (for a daemon that must keep its address across restarts). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

export function tempDir (prefix = 'grid-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function processAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

export interface GriddOptions {
  name: string
  /** Directory that holds this node's data dir and log. */
  root: string
  swarmKey?: string
  bootstrap?: string[]
  args?: string[]
  env?: Record<string, string>
  /** Don't wait for the control socket (for daemons expected to fail at start). */
  noWait?: boolean
  /** Run it on a pseudo-terminal (util-linux script), as a person's shell would; the log is what the terminal shows. */
  terminal?: boolean
}

export interface CtlResult { code: number, stdout: string, stderr: string }

export class Gridd {
  readonly dataDir: string
  readonly socket: string
  readonly logFile: string
  readonly api: ApiClient
  pid = 0
  id = ''
  addrs: string[] = []
  private lifeline?: ChildProcess
  private exitInfo?: { code: number | null, signal: string | null }
  private exitWaiters: Array<() => void> = []

  constructor (readonly opts: GriddOptions) {
    this.dataDir = join(opts.root, opts.name)
    this.socket = join(this.dataDir, 'gridd.sock')
    this.logFile = join(opts.root, `${opts.name}.log`)
    this.api = new ApiClient({ socket: this.socket, timeoutMs: 15_000 })
  }

  get name (): string { return this.opts.name }
  get exited (): boolean { return this.exitInfo !== undefined }
  get exitCode (): number | null | undefined { return this.exitInfo?.code }

  args (): string[] {
    const a = ['--name', this.name, '--data-dir', this.dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', 'off']
    if (this.opts.swarmKey !== undefined) a.push('--swarm-key', this.opts.swarmKey)
    for (const b of this.opts.bootstrap ?? []) a.push('--bootstrap', b)
    return [...a, ...(this.opts.args ?? [])]
  }

  /** Starts the process and (unless noWait) waits until its control socket answers. */
  async start (): Promise<this> {
    this.exitInfo = undefined
    // the daemon runs with the Node flags its launchers give it (GRID_TEST_NODE_FLAGS overrides them, for A/B runs)
    const flags = process.env.GRID_TEST_NODE_FLAGS !== undefined ? process.env.GRID_TEST_NODE_FLAGS.split(' ').filter(f => f !== '') : GRIDD_NODE_FLAGS
    const argv = [process.execPath, ...flags, GRIDD, ...this.args()]
    const cmd = this.opts.terminal === true ? ['script', '-qefc', argv.map(a => `'${a.replace(/'/g, "'\\''")}'`).join(' '), '/dev/null'] : argv
    const proc = spawn(process.execPath, [LIFELINE, this.logFile, ...cmd], {
      stdio: ['pipe', 'pipe', 'inherit'],
      // GRID_TEST_LOG_LEVEL sets the daemon's level, from this node's env first, then the harness's own environment
      env: { ...process.env, GRID_LOG_LEVEL: this.opts.env?.GRID_TEST_LOG_LEVEL ?? process.env.GRID_TEST_LOG_LEVEL ?? 'debug', ...this.opts.env }
    })
    this.lifeline = proc
    let buf = ''
    const gotPid = new Promise<void>((resolve, reject) => {
      proc.stdout?.on('data', (d: Buffer) => {
        buf += d.toString()
        const pid = /pid (\d+)/.exec(buf)
        if (pid !== null && this.pid === 0) { this.pid = Number(pid[1]); resolve() }
        const exit = /exit (\d*) (\w*)/.exec(buf)
        if (exit !== null && this.exitInfo === undefined) {
          this.exitInfo = { code: exit[1] === '' ? null : Number(exit[1]), signal: exit[2] === '' ? null : exit[2] as string }
          for (const w of this.exitWaiters.splice(0)) w()
        }
      })
      proc.on('error', reject)
    })
    this.pid = 0
    await gotPid
    if (this.opts.noWait === true) return this
    await waitFor(`${this.name} to answer on its control socket`, async () => {
      if (this.exitInfo !== undefined) throw new Error(`${this.name} exited with ${this.exitInfo.code}: ${this.logTail()}`)
      const s = await this.api.get<StatusResponse>('/status')
      this.id = s.id
      this.addrs = s.addrs
      return true
    }, { timeoutMs: 30_000 })
    return this
  }

  async status (): Promise<StatusResponse> { return await this.api.get<StatusResponse>('/status') }
  async nodes (): Promise<NodeEntry[]> { return await this.api.get<NodeEntry[]>('/nodes') }
  async health (): Promise<HealthEntry[]> { return await this.api.get<HealthEntry[]>('/health') }

  /** State of every node as this node sees it, by name. */
  async states (): Promise<Record<string, string>> {
    const nodes = await this.nodes()
    return Object.fromEntries(nodes.map(n => [n.name, n.state]))
  }

  /** Runs gridctl against this node. */
  async ctl (args: string[], opts: { env?: Record<string, string>, input?: string, timeoutMs?: number, cwd?: string } = {}): Promise<CtlResult> {
    return await runCtl(['--socket', this.socket, ...args], opts)
  }

  signal (sig: NodeJS.Signals): void {
    if (this.pid !== 0 && !this.exited) process.kill(this.pid, sig)
  }

  async waitExit (timeoutMs = 30_000): Promise<{ code: number | null, signal: string | null }> {
    if (this.exitInfo === undefined) {
      await Promise.race([
        new Promise<void>(resolve => this.exitWaiters.push(resolve)),
        new Promise<void>((_, reject) => setTimeout(() => { reject(new Error(`${this.name} did not exit within ${timeoutMs}ms`)) }, timeoutMs).unref())
      ])
    }
    return this.exitInfo as { code: number | null, signal: string | null }
  }

  /** SIGTERM and wait; SIGKILL if it does not exit in time. */
  async stop (timeoutMs = 25_000): Promise<void> {
    if (this.exited || this.pid === 0) return
    this.signal('SIGCONT')
    this.signal('SIGTERM')
    try {
      await this.waitExit(timeoutMs)
    } catch {
      await this.kill()
    }
  }

  async kill (): Promise<void> {
    if (this.exited || this.pid === 0) return
    this.signal('SIGKILL')
    await this.waitExit(10_000)
  }

  /** Ends the lifeline too (after the daemon is gone). */
  dispose (): void {
    try { this.lifeline?.stdin?.end() } catch {}
  }

  log (): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : ''
  }

  logTail (lines = 30): string {
    return this.log().trim().split('\n').slice(-lines).join('\n')
  }

  /** Parsed pino lines of the log. */
  logEvents (): Array<Record<string, unknown>> {
    return this.log().split('\n').filter(l => l.startsWith('{')).map(l => { try { return JSON.parse(l) as Record<string, unknown> } catch { return {} } })
  }
}

export async function runCtl (args: string[], opts: { env?: Record<string, string>, input?: string, timeoutMs?: number, cwd?: string } = {}): Promise<CtlResult> {
  return await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [GRIDCTL, ...args], { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }) })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const t = setTimeout(() => { p.kill('SIGKILL') }, opts.timeoutMs ?? 60_000)
    p.on('error', reject)
    p.on('close', code => { clearTimeout(t); resolve({ code: code ?? 1, stdout, stderr }) })
    p.stdin.end(opts.input)
  })
}

/** Several gridd on 127.0.0.1 sharing a swarm key; every node after the first knows only the first. */
export class Cluster {
  readonly root: string
  readonly nodes: Gridd[] = []
  swarmKey = ''

  constructor (root?: string) {
    this.root = root ?? tempDir()
  }

  static async start (count: number, opts: { args?: (i: number) => string[], env?: (i: number) => Record<string, string> } = {}): Promise<Cluster> {
    const c = new Cluster()
    try {
      for (let i = 0; i < count; i++) {
        const extra: Partial<GriddOptions> = {}
        const args = opts.args?.(i)
        const env = opts.env?.(i)
        if (args !== undefined) extra.args = args
        if (env !== undefined) extra.env = env
        await c.add(`n${i + 1}`, extra)
      }
    } catch (err) {
      await c.destroy()
      throw err
    }
    return c
  }

  /** Adds a node: the first one generates the swarm key; the others use it and bootstrap to the first. */
  async add (name: string, opts: Partial<GriddOptions> = {}): Promise<Gridd> {
    const first = this.nodes[0]
    const node = new Gridd({
      name,
      root: this.root,
      ...(first === undefined ? {} : { swarmKey: this.swarmKey, bootstrap: [first.addrs[0] as string] }),
      ...opts
    })
    this.nodes.push(node)
    await node.start()
    if (first === undefined && this.swarmKey === '') this.swarmKey = join(node.dataDir, 'swarm.key')
    return node
  }

  node (name: string): Gridd {
    const n = this.nodes.find(x => x.name === name)
    if (n === undefined) throw new Error(`no node ${name}`)
    return n
  }

  running (): Gridd[] { return this.nodes.filter(n => !n.exited) }

  /** Waits until every running node sees every running node alive. */
  async converged (opts: WaitOptions = {}): Promise<void> {
    const names = this.running().map(n => n.name).sort()
    await waitFor(`every node to see ${names.join(', ')} alive`, async () => {
      for (const n of this.running()) {
        const s = await n.states()
        for (const name of names) if (s[name] !== 'alive') return false
      }
      return true
    }, { timeoutMs: 60_000, ...opts })
  }

  /** Waits until every running node (but `except`) sees `name` in `state`. */
  async allSee (name: string, state: string, opts: WaitOptions & { except?: string[] } = {}): Promise<void> {
    await waitFor(`every node to see ${name} ${state}`, async () => {
      for (const n of this.running()) {
        if (n.name === name || opts.except?.includes(n.name) === true) continue
        if ((await n.states())[name] !== state) return false
      }
      return true
    }, { timeoutMs: 60_000, ...opts })
  }

  /** Stops every node (SIGKILL: tests that need graceful stops do them themselves) and removes the directory. */
  async destroy (opts: { keep?: boolean } = {}): Promise<void> {
    await Promise.all(this.nodes.map(async n => {
      try { n.signal('SIGCONT'); await n.kill() } catch {}
      n.dispose()
    }))
    if (opts.keep !== true && process.env.GRID_TEST_KEEP === undefined) rmSync(this.root, { recursive: true, force: true })
  }
}
