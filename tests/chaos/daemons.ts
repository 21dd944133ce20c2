/**
 * The chaos run's daemons: real gridd processes, each started inside its node's network namespace (`ip netns exec`,
 * which execs, so the pid we hold is the daemon's), listening on the namespace's address at a fixed port, with its
 * data directory on a small tmpfs of its own (so the disk can be filled) and its control socket on the host
 * filesystem, driven from the host. Each is tied to the harness by the tests' lifeline: it dies with the harness.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ApiClient } from '../../src/cli/client.ts'
import { GRIDD_NODE_FLAGS } from '../../src/version.ts'
import { GRIDD, LIFELINE } from '../helpers/paths.ts'
import { sh, type NetNode } from './netns.ts'

export const GRIDD_PORT = 4001
/** each node's data directory is a tmpfs of this size (the disk-full fault fills it) */
export const DATA_DIR_BYTES = 256 * 1024 * 1024

export class ChaosDaemon {
  readonly dataDir: string
  readonly socket: string
  readonly logFile: string
  readonly api: ApiClient
  pid = 0
  id = ''
  running = false
  stopped = false
  private lifeline?: ChildProcess

  constructor (readonly net: NetNode, readonly root: string, private readonly cluster: ChaosCluster) {
    this.dataDir = join(root, net.name)
    this.socket = join(this.dataDir, 'gridd.sock')
    this.logFile = join(root, `${net.name}.log`)
    this.api = new ApiClient({ socket: this.socket, timeoutMs: 5_000 })
  }

  get name (): string { return this.net.name }
  get addr (): string { return `/ip4/${this.net.ip}/tcp/${GRIDD_PORT}/p2p/${this.id}` }

  async mount (): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true })
    await sh('mount', ['-t', 'tmpfs', '-o', `size=${DATA_DIR_BYTES}`, 'tmpfs', this.dataDir])
  }

  /** Starts gridd on its (old, if any) data; `wait` for its control socket to answer. */
  async start (opts: { wait?: boolean } = {}): Promise<void> {
    const args = ['--name', this.name, '--data-dir', this.dataDir, '--listen', `/ip4/${this.net.ip}/tcp/${GRIDD_PORT}`, '--metrics-listen', 'off']
    if (this.cluster.swarmKey !== '' && !existsSync(join(this.dataDir, 'swarm.key'))) copyFileSync(this.cluster.swarmKey, join(this.dataDir, 'swarm.key'))
    if (existsSync(join(this.dataDir, 'swarm.key'))) args.push('--swarm-key', join(this.dataDir, 'swarm.key'))
    for (const d of this.cluster.daemons) if (d !== this && d.id !== '') args.push('--bootstrap', d.addr)
    const argv = ['ip', 'netns', 'exec', this.net.ns, process.execPath, ...GRIDD_NODE_FLAGS, GRIDD, ...args]
    const proc = spawn(process.execPath, [LIFELINE, this.logFile, ...argv], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, GRID_LOG_LEVEL: process.env.GRID_CHAOS_LOG_LEVEL ?? 'info' } })
    this.lifeline = proc
    this.pid = 0
    await new Promise<void>((resolve, reject) => {
      let buf = ''
      proc.stdout?.on('data', (d: Buffer) => {
        buf += d.toString()
        const m = /pid (\d+)/.exec(buf)
        if (m !== null && this.pid === 0) { this.pid = Number(m[1]); this.running = true; this.stopped = false; resolve() }
        if (/exit /.test(buf)) this.running = false
      })
      proc.on('error', reject)
    })
    if (opts.wait !== false) await this.ready(30_000)
  }

  async ready (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const s = await this.api.get<{ id: string }>('/status')
        this.id = s.id
        return
      } catch (err) {
        if (!this.running) throw new Error(`${this.name} exited at start (see ${this.logFile})`, { cause: err })
        if (Date.now() > deadline) throw new Error(`${this.name} did not answer within ${timeoutMs} ms (see ${this.logFile})`, { cause: err })
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  signal (sig: NodeJS.Signals): void {
    if (this.pid !== 0 && this.running) { try { process.kill(this.pid, sig) } catch {} }
    if (sig === 'SIGSTOP') this.stopped = true
    if (sig === 'SIGCONT') this.stopped = false
  }

  /** kill -9, and wait until the process is gone. */
  async kill9 (): Promise<void> {
    this.signal('SIGCONT')
    this.signal('SIGKILL')
    await this.exited(10_000)
  }

  /** SIGTERM (a clean stop), SIGKILL if it takes too long. */
  async terminate (): Promise<void> {
    this.signal('SIGCONT')
    this.signal('SIGTERM')
    try { await this.exited(20_000) } catch { await this.kill9() }
  }

  private async exited (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.running) {
      try { process.kill(this.pid, 0) } catch { this.running = false; break }
      if (Date.now() > deadline) throw new Error(`${this.name} (pid ${this.pid}) did not exit`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    try { this.lifeline?.stdin?.end() } catch {}
  }

  async unmount (): Promise<void> {
    await sh('umount', ['-l', this.dataDir], { ignore: true })
  }
}

export class ChaosCluster {
  readonly daemons: ChaosDaemon[] = []
  swarmKey = ''

  constructor (readonly root: string) {}

  add (n: NetNode): ChaosDaemon {
    const d = new ChaosDaemon(n, this.root, this)
    this.daemons.push(d)
    return d
  }

  daemon (name: string): ChaosDaemon {
    const d = this.daemons.find(x => x.name === name)
    if (d === undefined) throw new Error(`no daemon ${name}`)
    return d
  }

  /** Mounts every data dir, starts the first node (it makes the swarm key), then the others bootstrapped to it. */
  async start (): Promise<void> {
    for (const d of this.daemons) await d.mount()
    const [first, ...rest] = this.daemons
    if (first === undefined) return
    await first.start()
    this.swarmKey = join(this.root, 'swarm.key')
    copyFileSync(join(first.dataDir, 'swarm.key'), this.swarmKey)
    await Promise.all(rest.map(async d => { await d.start() }))
  }

  async destroy (): Promise<void> {
    await Promise.all(this.daemons.map(async d => { try { await d.kill9() } catch {} }))
    for (const d of this.daemons) await d.unmount()
  }
}
