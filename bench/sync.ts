/**
 * bench/sync: `gridctl run --sync` of a generated tree (default 200 MB in 10,000 files) from n1 to n3 of 3 real
 * daemons on this machine: a run without --sync (the baseline), the first sync, a second after one changed file, and
 * a third with nothing changed. Reports wall time, what the run added over the baseline, and the bytes n1 sent to n3
 * (grid_sync_bytes_sent_total) against the bytes changed.
 *
 * With --rsync, the same three transfers by rsync over ssh to a local sshd (rsync -a --delete), side by side.
 * With --layout link|auto (as root), the daemons run tasks as nobody (executor.taskUser) with that
 * executor.syncLayout; --pause S waits S seconds before each later run (as a user edits a file between runs), which
 * gives the executor time to lay out its spare tree. --prof DIR writes CPU profiles (node --cpu-prof) of the first
 * sync's gridctl into DIR/first, each run after a changed file's into DIR/changed, and the daemons' (the whole
 * run; copy layout only) into DIR/n1, DIR/n2 and DIR/n3.
 *
 *   npm run bench -- sync [--files N] [--mb N] [--runs N] [--rsync] [--layout copy|link|auto] [--pause S] [--prof DIR]
 */
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fetchMetrics, metricValue } from '../tests/helpers/metrics.ts'
import { Cluster, type Gridd, cpuSeconds, fmt, median, sleep, startCluster, table, withCluster } from './lib.ts'
import { freePort, tempDir, waitFor } from '../tests/helpers/cluster.ts'
import { GRIDCTL } from '../tests/helpers/paths.ts'

const { values } = parseArgs({ options: { files: { type: 'string', default: '10000' }, mb: { type: 'string', default: '200' }, runs: { type: 'string', default: '5' }, rsync: { type: 'boolean', default: false }, layout: { type: 'string', default: 'copy' }, pause: { type: 'string', default: '0' }, prof: { type: 'string' } } })
const PAUSE_MS = Number(values.pause) * 1000
const FILES = Number(values.files)
const BYTES = Number(values.mb) * 1e6
const RUNS = Number(values.runs)

function generate (): string {
  const dir = tempDir('grid-bench-sync-')
  const per = Math.floor(BYTES / FILES)
  for (let i = 0; i < FILES; i++) {
    const sub = join(dir, `d${Math.floor(i / 100)}`)
    if (i % 100 === 0) mkdirSync(sub)
    writeFileSync(join(sub, `f${i}.bin`), randomBytes(per))
  }
  return dir
}

async function sentBytes (n: Gridd): Promise<number> {
  const t = await fetchMetrics(n.socket)
  return metricValue(t, 'grid_sync_bytes_sent_total')
}

/** Seconds the sending node spent on transfers and the executor on layouts, so far (grid_sync_seconds sums). */
async function phases (n1: Gridd, n3: Gridd): Promise<{ transfer: number, layout: number }> {
  return {
    transfer: metricValue(await fetchMetrics(n1.socket), 'grid_sync_seconds_sum', { phase: 'transfer' }),
    layout: metricValue(await fetchMetrics(n3.socket), 'grid_sync_seconds_sum', { phase: 'layout' })
  }
}

/** NODE_OPTIONS that profile a process into `sub` of --prof's directory (nothing without --prof). */
const profEnv = (sub: string): Record<string, string> | undefined => values.prof === undefined ? undefined : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(values.prof, sub)}` }

/** CPU seconds (user + system) of each gridctl run, by kind of run (bash's `times` of its child). */
const ctlCpu: Record<string, number[]> = {}

async function timedRun (n1: Gridd, args: string[], kind: string, prof?: string): Promise<number> {
  const env = { ...process.env, ...(prof === undefined ? {} : profEnv(prof)) }
  const t0 = performance.now()
  const r = await new Promise<{ code: number, stderr: string }>((resolve, reject) => {
    const p = spawn('bash', ['-c', '"$@"; s=$?; times >&2; exit $s', 'bash', process.execPath, GRIDCTL, '--socket', n1.socket, 'run', '--node', 'n3', ...args, '--', 'true'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    p.on('error', reject)
    p.on('close', code => { resolve({ code: code ?? 1, stderr }) })
  })
  const ms = performance.now() - t0
  if (r.code !== 0) throw new Error(`gridctl run ${args.join(' ')}: exit ${r.code}: ${r.stderr}`)
  // the last line of `times`: the children's user and system time, as 0m1.234s 0m0.123s
  const t = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stderr)
  if (t !== null) (ctlCpu[kind] ??= []).push(Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4]))
  return ms
}

/** sshd on a free local port, this user's key authorized (as the deploy tests start one). */
async function startSshd (): Promise<{ root: string, ssh: string, stop: () => void }> {
  const root = tempDir('grid-bench-sshd-')
  try { mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }) } catch {}
  for (const k of ['host', 'client']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(root, k)], { stdio: 'pipe' })
  writeFileSync(join(root, 'authorized_keys'), execFileSync('cat', [join(root, 'client.pub')]), { mode: 0o600 })
  const port = await freePort()
  writeFileSync(join(root, 'sshd_config'), [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(root, 'host')}`, `PidFile ${join(root, 'sshd.pid')}`, `AuthorizedKeysFile ${join(root, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'StrictModes no', 'UsePAM no', ''].join('\n'))
  const p = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(root, 'sshd_config')], { stdio: 'ignore' })
  await waitFor('sshd to listen', async () => await new Promise<boolean>(resolve => { const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) }); s.on('error', () => { resolve(false) }) }))
  return { root, ssh: `ssh -i ${join(root, 'client')} -p ${port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR`, stop: () => { p.kill('SIGKILL') } }
}

/**
 * Writes the kernel still holds for the disk go out first (sync(1)): the tree just generated, the runs before. Else
 * whichever run comes first pays for the writeback of the one before it.
 */
function flushWrites (): void { execFileSync('sync') }

function rsync (ssh: string, src: string, dest: string): { ms: number, sent: number } {
  const t0 = performance.now()
  const out = execFileSync('rsync', ['-a', '--delete', '--stats', '-e', ssh, `${src}/`, `root@127.0.0.1:${dest}/`], { encoding: 'utf8' })
  const ms = performance.now() - t0
  const sent = Number((/Total bytes sent: ([\d,]+)/.exec(out)?.[1] ?? '0').replace(/,/g, ''))
  return { ms, sent }
}

/** With a layout other than copy: three daemons whose tasks run as nobody, with that executor.syncLayout. */
async function startTaskUserCluster (layout: string): Promise<Cluster> {
  const cl = new Cluster()
  chmodSync(cl.root, 0o755)
  const cfg = join(cl.root, 'gridd.yaml')
  writeFileSync(cfg, `executor:\n  taskUser: nobody\n  syncLayout: ${layout}\n`)
  process.env.GRID_TEST_LOG_LEVEL = 'warn'
  for (const n of ['n1', 'n2', 'n3']) await cl.add(n, { args: ['--config', cfg], env: { GRID_TEST_LOG_LEVEL: 'warn' } })
  return cl
}

const c = values.layout === 'copy' ? await startCluster(3, values.prof === undefined ? {} : { env: i => profEnv(`n${i + 1}`) ?? {} }) : await startTaskUserCluster(String(values.layout))
await withCluster(c, async () => {
  await c.converged()
  const n1 = c.node('n1')
  const t0 = performance.now()
  const dir = generate()
  console.log(`generated ${FILES} files, ${fmt(BYTES / 1e6, 0)} MB in ${fmt((performance.now() - t0) / 1000, 1)} s`)
  const base: number[] = []
  const daemonCpu = (): number[] => ['n1', 'n3'].map(n => cpuSeconds(c.node(n).pid))
  const d0 = daemonCpu()
  for (let i = 0; i < RUNS; i++) base.push(await timedRun(n1, [], 'plain'))
  const n3 = c.node('n3')
  const d1 = daemonCpu()
  const s0 = await sentBytes(n1)
  const p0 = await phases(n1, n3)
  flushWrites()
  const first = await timedRun(n1, ['--sync', dir], 'first', 'first')
  const s1 = await sentBytes(n1)
  const p1 = await phases(n1, n3)
  const d2 = daemonCpu()
  const second: number[] = []
  const secondSent: number[] = []
  const unchanged: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const changed = randomBytes(Math.floor(BYTES / FILES))
    writeFileSync(join(dir, 'd0', 'f0.bin'), changed)
    if (PAUSE_MS > 0) await sleep(PAUSE_MS)
    const before = await sentBytes(n1)
    second.push(await timedRun(n1, ['--sync', dir], 'changed', 'changed'))
    secondSent.push(await sentBytes(n1) - before)
    if (PAUSE_MS > 0) await sleep(PAUSE_MS)
    unchanged.push(await timedRun(n1, ['--sync', dir], 'unchanged'))
  }
  const p2 = await phases(n1, n3)
  const d3 = daemonCpu()
  const cpuMs = (k: string): string => fmt(median(ctlCpu[k] ?? []) * 1000, 0)
  const cpuPer = (a: number[], b: number[], i: number, n: number): string => fmt(((b[i] as number) - (a[i] as number)) / n * 1000, 0)
  table('CPU time (ms; gridctl: the median run, the daemons: per run, the first sync\'s spare tree counted in the later runs)', ['runs', 'gridctl', 'n1', 'n3'], [
    ['plain run', cpuMs('plain'), cpuPer(d0, d1, 0, RUNS), cpuPer(d0, d1, 1, RUNS)],
    ['first sync', cpuMs('first'), cpuPer(d1, d2, 0, 1), cpuPer(d1, d2, 1, 1)],
    [`${2 * RUNS} later runs (after 1 changed file / nothing changed)`, `${cpuMs('changed')} / ${cpuMs('unchanged')}`, cpuPer(d2, d3, 0, 2 * RUNS), cpuPer(d2, d3, 1, 2 * RUNS)]
  ])
  const ms = (x: number): string => fmt(x * 1000, 0)
  table('where the time went (ms): n1 sending to n3, n3 laying the tree out', ['runs', 'transfer', 'layout'], [
    ['first sync', ms(p1.transfer - p0.transfer), ms(p1.layout - p0.layout)],
    [`${2 * RUNS} later runs, per run`, ms((p2.transfer - p1.transfer) / (2 * RUNS)), ms((p2.layout - p1.layout) / (2 * RUNS))]
  ])
  const per = Math.floor(BYTES / FILES)
  const b = median(base)
  if (values.rsync) {
    const sshd = await startSshd()
    const dest = tempDir('grid-bench-rsync-dest-')
    try {
      flushWrites()
      const r1 = rsync(sshd.ssh, dir, dest)
      const r2: Array<{ ms: number, sent: number }> = []
      const r3: Array<{ ms: number, sent: number }> = []
      for (let i = 0; i < RUNS; i++) {
        writeFileSync(join(dir, 'd0', 'f0.bin'), randomBytes(per))
        r2.push(rsync(sshd.ssh, dir, dest))
        r3.push(rsync(sshd.ssh, dir, dest))
      }
      table(`rsync -a --delete over ssh to a local sshd: the same tree (medians of ${RUNS}; ms)`, ['run', 'wall ms', 'bytes sent', 'throughput'], [
        ['first', fmt(r1.ms, 0), String(r1.sent), `${fmt(BYTES / 1e6 / (r1.ms / 1000), 0)} MB/s`],
        ['after 1 changed file', fmt(median(r2.map(r => r.ms)), 0), `${median(r2.map(r => r.sent))} (${fmt(median(r2.map(r => r.sent)) / per, 2)}x the changed bytes)`, '-'],
        ['nothing changed', fmt(median(r3.map(r => r.ms)), 0), String(median(r3.map(r => r.sent))), '-']
      ])
    } finally {
      sshd.stop()
      rmSync(dest, { recursive: true, force: true })
      rmSync(sshd.root, { recursive: true, force: true })
    }
  }
  rmSync(dir, { recursive: true, force: true })
  table(`sync: ${FILES} files, ${fmt(BYTES / 1e6, 0)} MB, n1 -> n3, executor.syncLayout ${String(values.layout)}${PAUSE_MS > 0 ? `, ${values.pause} s between runs` : ''} (medians of ${RUNS}; ms)`, ['run', 'wall ms', 'added over a plain run', 'bytes sent n1 -> n3', 'throughput'], [
    ['plain run (no --sync)', fmt(b, 0), '-', '-', '-'],
    ['first sync', fmt(first, 0), fmt(first - b, 0), String(s1 - s0), `${fmt(BYTES / 1e6 / ((first - b) / 1000), 0)} MB/s`],
    ['after 1 changed file', fmt(median(second), 0), fmt(median(second) - b, 0), `${median(secondSent)} (${fmt(median(secondSent) / per, 2)}x the changed bytes, manifest included)`, '-'],
    ['nothing changed', fmt(median(unchanged), 0), fmt(median(unchanged) - b, 0), '0', '-']
  ])
  // the daemons write their profiles only when they exit of their own accord (SIGTERM), not at the cluster's SIGKILL
  if (values.prof !== undefined) for (const n of ['n1', 'n2', 'n3']) await c.node(n).stop()
})
