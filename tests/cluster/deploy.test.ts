/**
 * gridctl deploy and gridctl cluster against a real OpenSSH server on 127.0.0.1, with a throwaway host key and
 * client key. Several "hosts" share that sshd, each with its own prefix and listen port, and run gridd without a
 * service manager. sshd dies with the test process (lifeline); the daemons, which deploy detaches from their SSH
 * sessions, are killed by process group from their pid files in afterAll, or by a reaper if the runner itself dies.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { NodeEntry, StatusResponse } from '../../proto/index.ts'
import { freePort, processAlive as alive, runCtl, tempDir, waitFor, type CtlResult } from '../helpers/cluster.ts'
import { LIFELINE, ROOT } from '../helpers/paths.ts'
import { REQUIRE_TOOLS as REQUIRE } from '../helpers/tools.ts'

const SSHD = '/usr/sbin/sshd'
const HAVE_SSHD = existsSync(SSHD)
const BUNDLE = join(ROOT, 'dist/bundle')
const HOSTS = ['h1', 'h2', 'h3']
/** h2's settings after the test that changes them. */
const H2_LABELS = ', labels: { gpu: a100 }'

interface Row {
  host: string
  name: string | null
  result: string
  version: string | null
  changes: string[]
  durationMs: number
  error: { code: string, message: string } | null
}

/** `npm run bundle` when dist/bundle is missing or older than the sources it is built from (npm test builds only dist/). */
function ensureBundle (): void {
  const newest = (p: string): number => {
    const st = statSync(p)
    if (!st.isDirectory()) return st.mtimeMs
    return Math.max(0, ...readdirSync(p).map(f => newest(join(p, f))))
  }
  const sources = Math.max(...['src', 'daemon', 'proto', 'package.json', 'deploy/bundle.mjs'].map(p => newest(join(ROOT, p))))
  const bundles = ['gridd.mjs', 'gridctl.mjs'].map(f => join(BUNDLE, f))
  if (bundles.every(f => existsSync(f) && statSync(f).mtimeMs >= sources)) return
  execFileSync(process.execPath, [join(ROOT, 'deploy/bundle.mjs')], { cwd: ROOT, stdio: 'pipe' })
}

/** Resolves with the first bytes the server sends (sshd's "SSH-2.0-..." banner), or rejects. */
async function banner (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    const c = createConnection({ host: '127.0.0.1', port })
    c.setTimeout(2000, () => { c.destroy(); reject(new Error('no banner')) })
    c.once('data', d => { c.destroy(); resolve(d.toString()) })
    c.once('error', reject)
  })
}

// kills every gridd whose pid file lies under the root, by process group, and sshd (which makes itself a session
// leader, out of its lifeline's reach when the runner's whole group is killed): on stdin's end (the test process is
// gone) or on a signal. Detached, so that a signal to the runner's group does not kill it before it has done its job.
const REAPER = `
const fs = require('fs'), path = require('path');
const root = process.argv[1];
const reap = () => {
  try { const pid = Number(fs.readFileSync(path.join(root, 'sshd.pid'), 'utf8').trim()); if (pid > 0) process.kill(pid, 'SIGKILL'); } catch (e) {}
  let dirs = [];
  try { dirs = fs.readdirSync(root); } catch (e) {}
  for (const d of dirs) {
    let pid = 0;
    try { pid = Number(fs.readFileSync(path.join(root, d, 'run', 'gridd.pid'), 'utf8').trim()); } catch (e) { continue; }
    if (!(pid > 0)) continue;
    try { process.kill(-pid, 'SIGKILL'); } catch (e) {}
    try { process.kill(pid, 'SIGKILL'); } catch (e) {}
  }
};
process.stdin.resume();
process.stdin.on('end', () => { reap(); process.exit(0); });
process.stdin.on('error', () => { reap(); process.exit(0); });
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => { reap(); process.exit(1); });
`

class SshFixture {
  /** Made in start(), so that a skipped suite leaves nothing behind. */
  root = ''
  readonly user = userInfo().username
  port = 0
  hostKeyPub = ''
  clientKeyPub = ''
  private sshd?: ChildProcess
  private reaper?: ChildProcess

  async start (): Promise<void> {
    this.root = tempDir('grid-deploy-')
    this.reaper = spawn(process.execPath, ['-e', REAPER, this.root], { stdio: ['pipe', 'ignore', 'inherit'], detached: true })
    try { mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }) } catch {}
    for (const k of ['host_key', 'client_key', 'wrong_key']) {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `grid-test-${k}`, '-f', join(this.root, k)], { stdio: 'pipe' })
    }
    this.hostKeyPub = readFileSync(join(this.root, 'host_key.pub'), 'utf8').trim()
    this.clientKeyPub = readFileSync(join(this.root, 'client_key.pub'), 'utf8').trim()
    writeFileSync(join(this.root, 'authorized_keys'), `${this.clientKeyPub}\n`, { mode: 0o600 })
    this.port = await freePort()
    const config = join(this.root, 'sshd_config')
    writeFileSync(config, [
      `Port ${this.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(this.root, 'host_key')}`,
      `PidFile ${join(this.root, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.root, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'StrictModes no',
      'UsePAM no',
      // deploy opens one connection per host at once, plus retries
      'MaxStartups 100:30:200',
      'MaxSessions 100',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      ''
    ].join('\n'))
    const proc = spawn(process.execPath, [LIFELINE, join(this.root, 'sshd.log'), SSHD, '-D', '-e', '-f', config], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.sshd = proc
    await waitFor('sshd to print its SSH banner', async () => {
      if (proc.exitCode !== null) throw new Error(`sshd exited: ${this.log()}`)
      return /^SSH-2\.0-/.test(await banner(this.port))
    }, { timeoutMs: 15_000 })
    // the real key, hashed as HashKnownHosts writes it; an alias whose known key is another one (a "changed" key)
    const salt = randomBytes(20)
    const hash = createHmac('sha1', salt).update(`[127.0.0.1]:${this.port}`).digest('base64')
    const [type, key] = this.hostKeyPub.split(' ')
    const clientBlob = this.clientKeyPub.split(' ')[1] as string
    writeFileSync(this.knownHosts, [
      '# test known_hosts',
      `|1|${salt.toString('base64')}|${hash} ${type} ${key}`,
      `changed-host ssh-ed25519 ${clientBlob}`,
      ''
    ].join('\n'))
  }

  get knownHosts (): string { return join(this.root, 'known_hosts') }
  log (): string { try { return readFileSync(join(this.root, 'sshd.log'), 'utf8') } catch { return '' } }
  prefix (h: string): string { return join(this.root, h) }
  socket (h: string): string { return join(this.prefix(h), 'run', 'gridd.sock') }
  pid (h: string): number {
    try { return Number(readFileSync(join(this.prefix(h), 'run', 'gridd.pid'), 'utf8').trim()) } catch { return 0 }
  }

  /** Kills every daemon it finds by process group, then sshd (through its lifeline) and the reaper. */
  async stop (): Promise<void> {
    if (this.root === '') return
    for (const d of existsSync(this.root) ? readdirSync(this.root) : []) {
      const pid = this.pid(d)
      if (pid <= 0) continue
      try { process.kill(-pid, 'SIGKILL') } catch {}
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    const exited = (p?: ChildProcess): Promise<void> => new Promise(resolve => {
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) { resolve(); return }
      p.once('exit', () => { resolve() })
    })
    this.sshd?.stdin?.end()
    this.reaper?.stdin?.end()
    await Promise.all([exited(this.sshd), exited(this.reaper)])
    if (process.env.GRID_TEST_KEEP === undefined) rmSync(this.root, { recursive: true, force: true })
  }
}

function inventory (f: SshFixture, name: string, hosts: string[]): string {
  const lines = [
    'cluster: deploy-test',
    'serviceManager: none',
    'defaults:',
    `  port: ${f.port}`,
    `  user: ${f.user}`,
    '  key: client_key',
    `  node: ${process.execPath}`,
    '  metricsListen: "off"',
    '  labels: { rack: r1 }',
    'hosts:',
    ...hosts
  ]
  const file = join(f.root, name)
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function hostLine (f: SshFixture, name: string, port: number, more = ''): string {
  return `  - { host: 127.0.0.1, name: ${name}, prefix: ${f.prefix(name)}, listen: /ip4/127.0.0.1/tcp/${port}${more} }`
}

function rows (r: CtlResult): Row[] {
  try {
    return JSON.parse(r.stdout) as Row[]
  } catch {
    throw new Error(`not one JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}

function byHost (list: Row[]): Record<string, Row> {
  return Object.fromEntries(list.map(r => [r.host, r]))
}

async function ctlAt (f: SshFixture, h: string, args: string[]): Promise<CtlResult> {
  return await runCtl(['--socket', f.socket(h), ...args])
}

async function everyoneSeesEveryone (f: SshFixture, hosts: string[]): Promise<void> {
  await waitFor(`${hosts.join(', ')} to see each other alive`, async () => {
    for (const h of hosts) {
      const r = await ctlAt(f, h, ['nodes', '-o', 'json'])
      if (r.code !== 0) return false
      const states = Object.fromEntries((JSON.parse(r.stdout) as NodeEntry[]).map(n => [n.name, n.state]))
      if (!hosts.every(x => states[x] === 'alive')) return false
    }
    return true
  }, { timeoutMs: 60_000, intervalMs: 250 })
}

const title = 'deploy - installs and runs Grid over SSH (real sshd on 127.0.0.1)'
if (!HAVE_SSHD && !REQUIRE) {
  // a clear line in the output, not only a skipped count
  console.warn(`${title}: skipped, ${SSHD} is not installed (apt-get install openssh-server; set GRID_TEST_REQUIRE_TOOLS=1 to make this a failure)`)
}

describe.skipIf(!HAVE_SSHD && !REQUIRE)(HAVE_SSHD || REQUIRE ? title : `${title} (skipped: ${SSHD} is not installed)`, () => {
  const f = new SshFixture()
  const ports: Record<string, number> = {}
  let good = ''
  let version = ''
  let keyHex = ''

  const deploy = async (inv: string, more: string[] = []): Promise<CtlResult> =>
    await runCtl(['deploy', '-i', inv, '--known-hosts', f.knownHosts, '--package', BUNDLE, ...more], { timeoutMs: 240_000 })
  const cluster = async (sub: string, inv: string, more: string[] = []): Promise<CtlResult> =>
    await runCtl(['cluster', sub, '-i', inv, '--known-hosts', f.knownHosts, ...more], { timeoutMs: 240_000 })

  beforeAll(async () => {
    expect(HAVE_SSHD, `GRID_TEST_REQUIRE_TOOLS=1 but ${SSHD} is missing: apt-get install openssh-server`).toBe(true)
    ensureBundle()
    version = /^gridd (\S+)/.exec(execFileSync(process.execPath, [join(BUNDLE, 'gridd.mjs'), '--version'], { encoding: 'utf8' }))?.[1] ?? ''
    await f.start()
    for (const h of HOSTS) ports[h] = await freePort()
    good = inventory(f, 'good.yaml', HOSTS.map(h => hostLine(f, h, ports[h] as number)))
  }, 120_000)

  afterAll(async () => { await f.stop() }, 60_000)

  it('installs on every host, shows each step, and generates a 0600 swarm key beside the inventory that it never prints', async () => {
    const r = await deploy(good, ['-o', 'json'])
    expect(r.code, r.stderr).toBe(0)
    const res = byHost(rows(r))
    for (const h of HOSTS) {
      expect(res[h]).toMatchObject({ name: h, result: 'installed', version, error: null })
      expect(res[h]?.changes).toEqual(['package', 'launchers', 'config', 'swarm key', 'started'])
    }
    expect(r.stderr).toMatch(/^\[h1\] uploading gridd \d+\.\d+\.\d+\S* \(\d+\.\d MiB, \d+ files\)$/m)
    expect(r.stderr).toMatch(/^\[h2\] waiting until it is alive in the mesh and sees h1$/m)
    const keyFile = join(f.root, 'good.swarm.key')
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    keyHex = readFileSync(keyFile, 'utf8').trim().split('\n')[2] as string
    expect(keyHex).toMatch(/^[0-9a-f]{64}$/)
    expect(r.stdout + r.stderr).not.toContain(keyHex)
    for (const h of HOSTS) {
      expect(statSync(join(f.prefix(h), 'etc/swarm.key')).mode & 0o777).toBe(0o600)
      expect(readFileSync(join(f.prefix(h), 'etc/swarm.key'))).toEqual(readFileSync(keyFile))
      expect(statSync(join(f.prefix(h), 'bin/gridd')).mode & 0o111).not.toBe(0)
    }
  }, 240_000)

  it('leaves every daemon answering on its own socket, seeing the others alive', async () => {
    await everyoneSeesEveryone(f, HOSTS)
    const fingerprints = new Set<string | null>()
    for (const h of HOSTS) {
      const r = await ctlAt(f, h, ['status', '-o', 'json'])
      expect(r.code, r.stderr).toBe(0)
      const s = JSON.parse(r.stdout) as StatusResponse
      expect(s).toMatchObject({ name: h, cluster: 'deploy-test', labels: { rack: 'r1' }, version, swarmKeyProtected: true })
      expect(s.addrs[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/${ports[h] as number}/p2p/`))
      fingerprints.add(s.swarmKeyFingerprint)
    }
    expect(fingerprints.size).toBe(1)
    // the installed launcher finds its own daemon without --socket
    const nodes = JSON.parse(execFileSync(join(f.prefix('h3'), 'bin/gridctl'), ['nodes', '-o', 'json'], { encoding: 'utf8' })) as NodeEntry[]
    expect(nodes.find(n => n.self)?.name).toBe('h3')
  }, 120_000)

  it('changes nothing on a second run, and says so for every host', async () => {
    const before = HOSTS.map(h => f.pid(h))
    const r = await deploy(good)
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^HOST\s+NAME\s+RESULT\s+VERSION\s+CHANGES\s+DURATION\s+ERROR$/)
    for (const h of HOSTS) expect(lines.find(l => l.startsWith(`${h} `))).toMatch(new RegExp(`^${h}\\s+${h}\\s+unchanged\\s+${version.replace(/\./g, '\\.')}\\s+-\\s`))
    expect(r.stderr).toMatch(/^\[h1\] up to date: nothing to change$/m)
    expect(r.stderr).not.toMatch(/uploading|restarting|starting gridd/)
    expect(HOSTS.map(h => f.pid(h))).toEqual(before)
    expect(r.stderr).toMatch(/3 hosts in .*: 3 unchanged/)
  }, 240_000)

  it('restarts only the host whose settings changed', async () => {
    const before = Object.fromEntries(HOSTS.map(h => [h, f.pid(h)]))
    good = inventory(f, 'good.yaml', HOSTS.map(h => hostLine(f, h, ports[h] as number, h === 'h2' ? H2_LABELS : '')))
    const r = await deploy(good, ['-o', 'json'])
    expect(r.code, r.stderr).toBe(0)
    const res = byHost(rows(r))
    expect(res.h2).toMatchObject({ result: 'reconfigured', changes: ['config', 'restarted'] })
    expect(res.h1).toMatchObject({ result: 'unchanged', changes: [] })
    expect(res.h3).toMatchObject({ result: 'unchanged', changes: [] })
    expect(f.pid('h2')).not.toBe(before.h2)
    expect(f.pid('h1')).toBe(before.h1)
    const s = JSON.parse((await ctlAt(f, 'h2', ['status', '-o', 'json'])).stdout) as StatusResponse
    expect(s.labels).toEqual({ rack: 'r1', gpu: 'a100' })
    await everyoneSeesEveryone(f, HOSTS)
  }, 240_000)

  it('shows cluster status per host as one JSON document, and as Markdown', async () => {
    const r = await cluster('status', good, ['-o', 'json'])
    expect(r.code, r.stderr).toBe(0)
    const list = JSON.parse(r.stdout) as Array<{ host: string, installed: string, running: boolean, state: string, alive: number, total: number }>
    expect(list.map(x => x.host)).toEqual(HOSTS)
    for (const x of list) expect(x).toMatchObject({ installed: version, running: true, state: 'alive', alive: 3, total: 3 })
    const md = await cluster('status', good, ['-o', 'markdown'])
    expect(md.stdout.split('\n')[0]).toBe('| host | name | installed | running | state | nodes | error |')
    // the bundled gridctl (what deploy installs, and what operators may run) speaks SSH as well
    const bundled = await new Promise<{ code: number, stdout: string }>(resolve => {
      execFile(process.execPath, [join(BUNDLE, 'gridctl.mjs'), 'cluster', 'status', '-i', good, '--known-hosts', f.knownHosts, '-o', 'json'], { timeout: 120_000 }, (err, stdout) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout })
      })
    })
    expect(bundled.code).toBe(0)
    expect((JSON.parse(bundled.stdout) as Array<{ running: boolean }>).every(x => x.running)).toBe(true)
  }, 120_000)

  it('stops every daemon, then starts them again', async () => {
    const pids = HOSTS.map(h => f.pid(h))
    const stop = await cluster('stop', good, ['-o', 'json'])
    expect(stop.code, stop.stderr).toBe(0)
    for (const r of rows(stop)) expect(r).toMatchObject({ result: 'stopped', error: null })
    for (const pid of pids) expect(alive(pid)).toBe(false)
    const down = await cluster('status', good, ['-o', 'json'])
    expect(down.code).toBe(1)
    for (const x of JSON.parse(down.stdout) as Array<{ running: boolean, installed: string }>) expect(x).toMatchObject({ running: false, installed: version })
    const again = await cluster('stop', good, ['-o', 'json'])
    for (const r of rows(again)) expect(r).toMatchObject({ result: 'unchanged', changes: ['already stopped'] })

    const start = await cluster('start', good, ['-o', 'json'])
    expect(start.code, start.stderr).toBe(0)
    for (const r of rows(start)) expect(r).toMatchObject({ result: 'started', version, error: null })
    await everyoneSeesEveryone(f, HOSTS)
  }, 240_000)

  it('restarts one host at a time with --rolling, draining each first (or says the installed gridctl cannot drain)', async () => {
    const before = HOSTS.map(h => f.pid(h))
    const canDrain = (await runCtl(['drain', '--help'])).code === 0
    const r = await cluster('restart', good, ['--rolling', '-o', 'json'])
    const res = rows(r)
    if (canDrain) {
      expect(r.code, r.stderr).toBe(0)
      for (const x of res) expect(x).toMatchObject({ result: 'restarted', changes: ['drained', 'restarted', 'undrained'] })
      // one at a time: each host's drain comes after the previous host is back and undrained
      const order = [...r.stderr.matchAll(/^\[(h\d)\] (draining|undraining)/gm)].map(m => `${m[1] ?? ''} ${m[2] ?? ''}`)
      expect(order).toEqual(HOSTS.flatMap(h => [`${h} draining`, `${h} undraining`]))
      HOSTS.forEach((h, i) => { expect(f.pid(h)).not.toBe(before[i]) })
      await everyoneSeesEveryone(f, HOSTS)
      // the last host's undrain reaches the others by heartbeat and replication, a moment after the command returns
      await waitFor('every node to see every host undrained', async () => {
        const drained: string[] = []
        for (const h of HOSTS) {
          const nodes = JSON.parse((await ctlAt(f, h, ['nodes', '-o', 'json'])).stdout) as NodeEntry[]
          for (const n of nodes) if (n.drain) drained.push(`${h} sees ${n.name} draining`)
        }
        if (drained.length > 0) throw new Error(drained.join('; '))
        return true
      }, { timeoutMs: 30_000, intervalMs: 250 })
    } else {
      expect(r.code).toBe(1)
      expect(res[0]?.error).toMatchObject({ code: 'COMMAND_MISSING' })
      expect(res[0]?.error?.message).toMatch(/has no "drain" command/)
      for (const x of res.slice(1)) expect(x).toMatchObject({ result: 'skipped', error: { code: 'SKIPPED' } })
      expect(HOSTS.map(h => f.pid(h))).toEqual(before)
    }
  }, 300_000)

  it('fails a host with a wrong client key, an unreachable port or an unknown or changed host key, clearly and alone', async () => {
    const dead = await freePort()
    const hosts = [
      hostLine(f, 'h1', ports.h1 as number),
      hostLine(f, 'h2', ports.h2 as number, H2_LABELS),
      `  - { host: 127.0.0.1, name: wrongkey, key: wrong_key, prefix: ${f.prefix('x1')} }`,
      `  - { host: 127.0.0.1, name: noport, port: ${dead}, prefix: ${f.prefix('x2')} }`,
      `  - { host: 127.0.0.1, name: stranger, hostKeyAlias: stranger, prefix: ${f.prefix('x3')} }`,
      `  - { host: 127.0.0.1, name: changed, hostKeyAlias: changed-host, prefix: ${f.prefix('x4')} }`,
      // installs, but its daemon cannot listen where h1 does and exits at once
      `  - { host: 127.0.0.1, name: clash, prefix: ${f.prefix('x6')}, listen: /ip4/127.0.0.1/tcp/${ports.h1 as number} }`
    ]
    // a real old Node where the machine has one (Debian's is 18 or 20)
    let oldNode: string | null = null
    for (const n of ['/usr/bin/node', '/usr/local/bin/node']) {
      if (!existsSync(n) || n === process.execPath) continue
      const major = Number(execFileSync(n, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim())
      if (major < 22) { oldNode = n; break }
    }
    if (oldNode !== null) hosts.push(`  - { host: 127.0.0.1, name: oldnode, node: ${oldNode}, prefix: ${f.prefix('x5')} }`)
    const bad = inventory(f, 'bad.yaml', hosts)
    writeFileSync(bad, readFileSync(bad, 'utf8').replace('cluster: deploy-test\n', 'cluster: deploy-test\nswarmKey: good.swarm.key\n'))
    const r = await deploy(bad, ['-o', 'json', '--retries', '1'])
    expect(r.code).toBe(1)
    const res = byHost(rows(r))
    expect(res.h1).toMatchObject({ result: 'unchanged', error: null })
    expect(res.h2).toMatchObject({ result: 'unchanged', error: null })
    expect(res.wrongkey).toMatchObject({ result: 'failed', error: { code: 'SSH_AUTH' } })
    expect(res.wrongkey?.error?.message).toMatch(/authentication failed \(offered key .*wrong_key\); check the user, and that the public key is in/)
    expect(res.noport).toMatchObject({ result: 'failed', error: { code: 'SSH_UNREACHABLE' } })
    expect(res.noport?.error?.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${dead}: connection refused .*gave up after 2 attempts`))
    expect(r.stderr).toMatch(/^\[noport\] retrying in \d+ms \(attempt 2 of 2\): .*connection refused/m)
    expect(res.stranger).toMatchObject({ result: 'failed', error: { code: 'HOST_KEY_UNKNOWN' } })
    expect(res.stranger?.error?.message).toMatch(/host key of stranger is not in .*known_hosts; it offered ssh-ed25519 SHA256:\S+\..*add it: ssh-keyscan -p \d+ 127\.0\.0\.1/)
    expect(res.changed).toMatchObject({ result: 'failed', error: { code: 'HOST_KEY_CHANGED' } })
    expect(res.changed?.error?.message).toMatch(/host key of changed-host has CHANGED.*ssh-keygen -R 'changed-host'/)
    if (oldNode !== null) {
      expect(res.oldnode).toMatchObject({ result: 'failed', error: { code: 'NODE_TOO_OLD' } })
      expect(res.oldnode?.error?.message).toMatch(/Node v\d+\.\d+\.\d+ at .* is too old: Grid needs Node 22 or later/)
    }
    expect(res.clash).toMatchObject({ result: 'failed', changes: ['package', 'launchers', 'config', 'swarm key', 'started'], error: { code: 'DAEMON_EXITED' } })
    expect(res.clash?.error?.message).toMatch(/gridd is not running on clash .*the end of its log: .*port \d+ is in use: .* pass --listen/)
    // nothing reached the prefixes of the hosts it could not connect to or use

    for (const x of ['x1', 'x2', 'x3', 'x4', 'x5']) expect(existsSync(f.prefix(x))).toBe(false)
    expect(r.stdout + r.stderr).not.toContain(keyHex)
  }, 240_000)
})

describe('deploy - inventory and flag errors', () => {
  const dir = tempDir('grid-inventory-')
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
  const write = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p }

  it('lists every problem of an inventory at once, naming each key, with exit 2', async () => {
    const inv = write('bad.yaml', [
      'clustr: x',
      'serviceManager: upstart',
      'defaults: { prot: 22, user: root }',
      'hosts:',
      '  - { name: a }',
      '  - { host: 10.0.0.2, port: 70000, lables: { a: b }, listen: nonsense }',
      '  - { host: 10.0.0.3, config: { dataDir: /x, membership: { heartbeatInterval: soon } } }',
      ''
    ].join('\n'))
    const r = await runCtl(['deploy', '-i', inv])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    for (const want of [
      /^gridctl: invalid inventory .*bad\.yaml:$/m,
      /- clustr: unknown key; did you mean cluster\?$/m,
      /- serviceManager: "upstart" is not one of systemd, none$/m,
      /- defaults\.prot: unknown key; did you mean port\?$/m,
      /- hosts\[0\]\.host: missing/m,
      /- hosts\[1\]\.port: 70000 is not a port/m,
      /- hosts\[1\]\.lables: unknown key; did you mean labels\?$/m,
      /- hosts\[1\]\.listen: \[0\] "nonsense" is not a multiaddr/m,
      /- hosts\[2\]\.config\.dataDir: set by deploy/m,
      /- hosts\[2\]\.config\.membership\.heartbeatInterval: "soon" is not a duration/m
    ]) expect(r.stderr).toMatch(want)
  })

  it('says what is wrong with YAML that does not parse, and with a missing file', async () => {
    const r = await runCtl(['cluster', 'status', '-i', write('broken.yaml', 'hosts: [\n')])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/invalid inventory .*broken\.yaml:\n {2}- not valid YAML/)
    const none = await runCtl(['deploy', '-i', join(dir, 'nope.yaml')])
    expect(none.code).toBe(2)
    expect(none.stderr).toMatch(/invalid inventory .*nope\.yaml:\n {2}- cannot be read \(ENOENT\)/)
  })

  it('exits 2 with the command\'s help on a usage error', async () => {
    write('k', 'not read: only its existence is checked before connecting\n')
    const inv = write('ok.yaml', 'defaults: { key: k }\nhosts: [ "root@10.0.0.1:2222" ]\n')
    for (const args of [
      ['deploy'],
      ['deploy', '-i', inv, '--concurrency', '0'],
      ['deploy', '-i', inv, '--service-manager', 'upstart'],
      ['deploy', '-i', inv, '--insecure-ignore-host-keys', '--known-hosts', inv],
      ['cluster'],
      ['cluster', 'start', '-i', inv, '--drain-timeout', '5m']
    ]) {
      const r = await runCtl(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(/Usage: gridctl (deploy|cluster)/)
    }
  })
})
