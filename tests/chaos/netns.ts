/**
 * The chaos network: one network namespace per node, each with its own address on a bridge (veth pairs), and
 * nftables rules inside each namespace for partitions and packet loss. Everything is named with the run's prefix
 * (`gc` + 4 hex digits) so a crashed run's leftovers are found and removed by the next run's sweep (and a pid file
 * under RUN_DIR says whether that run still lives).
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const exec = promisify(execFile)
export const RUN_DIR = '/run/grid-chaos'
const PREFIX_RE = /^gc[0-9a-f]{4}/

export async function sh (cmd: string, args: string[], opts: { input?: string, ignore?: boolean } = {}): Promise<string> {
  try {
    if (opts.input !== undefined) {
      return await new Promise((resolve, reject) => {
        const p = execFile(cmd, args, (err, stdout, stderr) => { if (err !== null) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)); else resolve(stdout) })
        p.stdin?.end(opts.input)
      })
    }
    const r = await exec(cmd, args)
    return r.stdout
  } catch (err) {
    if (opts.ignore === true) return ''
    const e = err as { stderr?: string, message: string }
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err })
  }
}

/** Why the harness cannot run here (null: it can): root, ip netns and nft are needed. */
export async function unavailable (): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root (the chaos harness makes network namespaces, veths, a bridge and nftables rules)'
  try { await sh('ip', ['netns', 'list']) } catch (err) { return `ip netns is unavailable: ${(err as Error).message}` }
  try { await sh('nft', ['--version']) } catch { return 'nft (nftables) is not installed' }
  return null
}

/** Forgets this process's own runs (on SIGINT or SIGTERM), so that the sweep that follows removes them too. */
export function disownRuns (): void {
  if (!existsSync(RUN_DIR)) return
  for (const f of readdirSync(RUN_DIR)) {
    try { if (Number(readFileSync(join(RUN_DIR, f), 'utf8')) === process.pid) rmSync(join(RUN_DIR, f), { force: true }) } catch {}
  }
}

function pidAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** Removes what runs that are gone left behind: their namespaces (and the processes in them), links, mounts, rules. */
export async function sweep (): Promise<string[]> {
  const live = new Set<string>()
  if (existsSync(RUN_DIR)) {
    for (const f of readdirSync(RUN_DIR)) {
      const pid = Number(readFileSync(join(RUN_DIR, f), 'utf8'))
      if (pidAlive(pid)) live.add(f.replace(/\.pid$/, ''))
      else rmSync(join(RUN_DIR, f), { force: true })
    }
  }
  const stale = (name: string): boolean => PREFIX_RE.test(name) && !live.has(name.slice(0, 6))
  const removed: string[] = []
  for (const line of (await sh('ip', ['netns', 'list'], { ignore: true })).split('\n')) {
    const ns = line.split(' ')[0] ?? ''
    if (!stale(ns)) continue
    for (const pid of (await sh('ip', ['netns', 'pids', ns], { ignore: true })).split('\n').filter(p => p !== '')) {
      try { process.kill(Number(pid), 'SIGCONT'); process.kill(Number(pid), 'SIGKILL') } catch {}
    }
    await sh('ip', ['netns', 'del', ns], { ignore: true })
    removed.push(ns)
  }
  for (const line of (await sh('ip', ['-o', 'link', 'show'], { ignore: true })).split('\n')) {
    const name = (/^\d+: ([^:@]+)/.exec(line)?.[1]) ?? ''
    if (!stale(name)) continue
    await sh('ip', ['link', 'del', name], { ignore: true })
    removed.push(name)
  }
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const mnt = line.split(' ')[1] ?? ''
    const m = /\/grid-chaos-(gc[0-9a-f]{4})\//.exec(mnt)
    if (m !== null && !live.has(m[1] as string)) { await sh('umount', ['-l', mnt], { ignore: true }); removed.push(mnt) }
  }
  for (const line of (await sh('iptables', ['-S', 'FORWARD'], { ignore: true })).split('\n')) {
    const m = /--comment "?(gc[0-9a-f]{4})/.exec(line)
    if (m !== null && !live.has(m[1] as string)) {
      await sh('iptables', ['-D', ...line.replace(/^-A /, '').split(' ').map(a => a.replace(/^"|"$/g, ''))], { ignore: true })
      removed.push(`iptables: ${line}`)
    }
  }
  for (const dir of readdirSync('/sys/fs/cgroup/cpu', { withFileTypes: true })) {
    if (dir.isDirectory() && stale(dir.name)) { try { rmSync(join('/sys/fs/cgroup/cpu', dir.name), { recursive: false }) } catch {} }
  }
  return removed
}

export interface NetNode { name: string, ns: string, ip: string, hostVeth: string }

/** The network of one run: a bridge, and a namespace per node with eth0 on it. */
export class ChaosNet {
  readonly prefix: string
  readonly bridge: string
  readonly subnet: string
  readonly nodes: NetNode[] = []
  private readonly rules = new Map<string, string[]>()

  constructor (seed: number) {
    this.prefix = `gc${((seed ^ process.pid) & 0xffff).toString(16).padStart(4, '0')}`
    this.bridge = `${this.prefix}br`
    this.subnet = `10.213.${(seed ^ process.pid) & 0xff}`
  }

  async create (names: string[]): Promise<void> {
    mkdirSync(RUN_DIR, { recursive: true })
    writeFileSync(join(RUN_DIR, `${this.prefix}.pid`), String(process.pid))
    await sh('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
    await sh('ip', ['link', 'set', this.bridge, 'up'])
    // a host with br_netfilter and a FORWARD policy of drop (docker) would drop bridged traffic between the veths
    await sh('iptables', ['-I', 'FORWARD', '1', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT', '-m', 'comment', '--comment', this.prefix], { ignore: true })
    for (const [i, name] of names.entries()) {
      const n: NetNode = { name, ns: `${this.prefix}-${name}`, ip: `${this.subnet}.${i + 1}`, hostVeth: `${this.prefix}h${i + 1}` }
      await sh('ip', ['netns', 'add', n.ns])
      await sh('ip', ['link', 'add', n.hostVeth, 'type', 'veth', 'peer', 'name', `${this.prefix}p${i + 1}`])
      await sh('ip', ['link', 'set', `${this.prefix}p${i + 1}`, 'netns', n.ns])
      await sh('ip', ['-n', n.ns, 'link', 'set', `${this.prefix}p${i + 1}`, 'name', 'eth0'])
      await sh('ip', ['-n', n.ns, 'addr', 'add', `${n.ip}/24`, 'dev', 'eth0'])
      await sh('ip', ['-n', n.ns, 'link', 'set', 'eth0', 'up'])
      await sh('ip', ['-n', n.ns, 'link', 'set', 'lo', 'up'])
      await sh('ip', ['link', 'set', n.hostVeth, 'master', this.bridge, 'up'])
      await this.nft(n, 'add table inet chaos\nadd chain inet chaos input { type filter hook input priority 0; policy accept; }\n')
      this.nodes.push(n)
    }
  }

  node (name: string): NetNode {
    const n = this.nodes.find(x => x.name === name)
    if (n === undefined) throw new Error(`no node ${name}`)
    return n
  }

  private async nft (n: NetNode, script: string): Promise<void> {
    await sh('ip', ['netns', 'exec', n.ns, 'nft', '-f', '-'], { input: script })
  }

  /** Rewrites a node's input chain from its current rules. */
  private async apply (n: NetNode): Promise<void> {
    const rules = this.rules.get(n.name) ?? []
    await this.nft(n, `flush chain inet chaos input\n${rules.map(r => `add rule inet chaos input ${r}\n`).join('')}`)
  }

  /** `to` hears nothing from `from` (one way). */
  async drop (from: string, to: string): Promise<void> {
    const r = `ip saddr ${this.node(from).ip} drop`
    const rs = this.rules.get(to) ?? []
    if (!rs.includes(r)) rs.push(r)
    this.rules.set(to, rs)
    await this.apply(this.node(to))
  }

  /** Each group hears only itself (both ways). */
  async partition (groups: string[][]): Promise<void> {
    for (const [gi, g] of groups.entries()) {
      for (const to of g) {
        const rs = this.rules.get(to) ?? []
        for (const [hi, h] of groups.entries()) {
          if (hi === gi) continue
          for (const from of h) { const r = `ip saddr ${this.node(from).ip} drop`; if (!rs.includes(r)) rs.push(r) }
        }
        this.rules.set(to, rs)
      }
    }
    await Promise.all(groups.flat().map(async n => { await this.apply(this.node(n)) }))
  }

  /** A random share of every packet a node receives is dropped (nftables numgen). */
  async loss (names: string[], percent: number): Promise<void> {
    for (const name of names) {
      const rs = (this.rules.get(name) ?? []).filter(r => !r.startsWith('numgen'))
      rs.push(`numgen random mod 100 < ${Math.round(percent)} drop`)
      this.rules.set(name, rs)
    }
    await Promise.all(names.map(async n => { await this.apply(this.node(n)) }))
  }

  /** Removes every drop and loss rule. */
  async heal (): Promise<void> {
    this.rules.clear()
    await Promise.all(this.nodes.map(async n => { await this.apply(n) }))
  }

  async destroy (): Promise<void> {
    for (const n of this.nodes) {
      for (const pid of (await sh('ip', ['netns', 'pids', n.ns], { ignore: true })).split('\n').filter(p => p !== '')) {
        try { process.kill(Number(pid), 'SIGCONT'); process.kill(Number(pid), 'SIGKILL') } catch {}
      }
      await sh('ip', ['netns', 'del', n.ns], { ignore: true })
      await sh('ip', ['link', 'del', n.hostVeth], { ignore: true })
    }
    await sh('ip', ['link', 'del', this.bridge], { ignore: true })
    await sh('iptables', ['-D', 'FORWARD', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT', '-m', 'comment', '--comment', this.prefix], { ignore: true })
    rmSync(join(RUN_DIR, `${this.prefix}.pid`), { force: true })
  }
}
