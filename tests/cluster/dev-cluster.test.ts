import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCtl, tempDir, waitFor, type CtlResult } from '../helpers/cluster.ts'

interface DevStateFile { nodes: Array<{ name: string, pid: number, dataDir: string, socket: string, port: number | null }> }

/**
 * gridctl dev: the daemons are started by gridctl itself, detached, so the harness's lifeline cannot hold them. A
 * watchdog holds them instead: when the test process goes (even killed), its stdin closes and it kills every pid
 * recorded in the dev cluster's cluster.json; afterAll does the same at once.
 */
function recordedPids (cwd: string): number[] {
  try {
    return (JSON.parse(readFileSync(join(cwd, '.grid-dev', 'cluster.json'), 'utf8')) as DevStateFile).nodes.map(n => n.pid).filter(p => p > 0)
  } catch {
    return []
  }
}

/**
 * Whether the pid is a process that still runs: a zombie does not (it has exited; its parent, here whatever adopted
 * the detached daemon after gridctl exited, has not reaped it yet).
 */
function running (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))
  } catch {
    return false
  }
}

function watchdog (cwd: string): ChildProcess {
  const script = `const fs = require('fs'); const seen = new Set()
const read = () => { try { for (const n of JSON.parse(fs.readFileSync(${JSON.stringify(join(cwd, '.grid-dev', 'cluster.json'))}, 'utf8')).nodes) if (n.pid > 0) seen.add(n.pid) } catch {} }
setInterval(read, 500)
process.stdin.on('data', () => {}); process.stdin.on('end', () => { read(); for (const p of seen) { try { process.kill(p, 'SIGKILL') } catch {} } process.exit(0) })`
  return spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'ignore', 'ignore'] })
}

describe('gridctl dev - a local cluster from one command', () => {
  let cwd: string
  let guard: ChildProcess
  let pids: number[] = []
  // failure detection a little quicker than the defaults, so that dev kill shows within the test's time; gridctl's
  // GRID_* variables reach the daemons it starts
  const env = { GRID_HEARTBEAT_INTERVAL: '500ms', GRID_SUSPICION_TIMEOUT: '2s', GRID_SOCKET: '' }
  const ctl = async (args: string[]): Promise<CtlResult> => await runCtl(args, { cwd, env, timeoutMs: 120_000 })

  beforeAll(() => {
    cwd = tempDir('grid-dev-')
    guard = watchdog(cwd)
  })
  afterAll(async () => {
    for (const p of [...pids, ...recordedPids(cwd)]) { try { process.kill(p, 'SIGKILL') } catch {} }
    guard?.stdin?.end()
    rmSync(cwd, { recursive: true, force: true })
  })

  it('dev up starts 3 nodes that see each other, each with 2 fake GPUs', async () => {
    const r = await ctl(['dev', 'up', '--nodes', '3', '--gpus-fake', '2'])
    pids = recordedPids(cwd)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/waiting for 3 nodes to see each other… \d\/3/)
    expect(r.stderr).toMatch(/waiting for 3 nodes to see each other… 3\/3/)
    expect(pids).toHaveLength(3)
    for (const p of pids) expect(running(p)).toBe(true)
    // each node its own data dir, socket and port
    const state = JSON.parse(readFileSync(join(cwd, '.grid-dev', 'cluster.json'), 'utf8')) as DevStateFile
    expect(new Set(state.nodes.map(n => n.socket)).size).toBe(3)
    expect(new Set(state.nodes.map(n => n.port)).size).toBe(3)
    for (const n of state.nodes) expect(existsSync(join(n.dataDir, 'gridd.log'))).toBe(true)
  })

  it('dev status shows every node running and seeing all 3 alive', async () => {
    const r = await ctl(['dev', 'status', '-o', 'json'])
    expect(r.code, r.stderr).toBe(0)
    const rows = JSON.parse(r.stdout) as Array<{ name: string, running: boolean, alive: number | null, pid: number }>
    expect(rows.map(x => [x.name, x.running, x.alive])).toEqual([['n1', true, 3], ['n2', true, 3], ['n3', true, 3]])
    expect(rows.map(x => x.pid)).toEqual(pids)
    const md = await ctl(['dev', 'status', '-o', 'markdown'])
    expect(md.stdout).toMatch(/^\| node \| process \|/)
  })

  it('dev up again while it runs says so and changes nothing', async () => {
    const r = await ctl(['dev', 'up'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/already runs/)
    expect(recordedPids(cwd)).toEqual(pids)
    const other = await ctl(['dev', 'up', '--nodes', '5'])
    expect(other.code).toBe(1)
    expect(other.stderr).toMatch(/already runs.*gridctl dev down/)
  })

  it('gridctl in that directory, with no --socket, talks to the first node and sees 3 nodes', async () => {
    const st = await ctl(['status', '-o', 'json'])
    expect(st.code, st.stderr).toBe(0)
    expect(JSON.parse(st.stdout).name).toBe('n1')
    const r = await ctl(['nodes', '-o', 'json'])
    expect(r.code, r.stderr).toBe(0)
    const nodes = JSON.parse(r.stdout) as Array<{ name: string, state: string, gpus: unknown[] }>
    expect(nodes.map(n => [n.name, n.state]).sort()).toEqual([['n1', 'alive'], ['n2', 'alive'], ['n3', 'alive']])
    expect(nodes.every(n => n.gpus.length === 2)).toBe(true)
    // an explicit socket still wins over the dev cluster's
    const n2 = JSON.parse(readFileSync(join(cwd, '.grid-dev', 'cluster.json'), 'utf8')).nodes[1].socket as string
    expect(JSON.parse((await runCtl(['status', '-o', 'json'], { cwd, env: { GRID_SOCKET: n2 } })).stdout).name).toBe('n2')
    const elsewhere = await ctl(['--socket', join(cwd, 'nothing.sock'), 'status'])
    expect(elsewhere.code).toBe(1)
    expect(elsewhere.stderr).toContain(join(cwd, 'nothing.sock'))
  })

  it('runs a task, and a GPU task gets a fake GPU', async () => {
    const r = await ctl(['run', '--', 'echo', 'hello from the dev cluster'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('hello from the dev cluster\n')
    const g = await ctl(['run', '--gpus', '1', '--', 'sh', '-c', 'echo $CUDA_VISIBLE_DEVICES'])
    expect(g.code, g.stderr).toBe(0)
    expect(g.stdout.trim()).toMatch(/^GPU-fake-n[123]-[01]$/)
  })

  it('dev kill NODE kills it with SIGKILL and the others see it dead', async () => {
    const r = await ctl(['dev', 'kill', 'n3'])
    expect(r.code, r.stderr).toBe(0)
    expect(running(pids[2] as number)).toBe(false)
    await waitFor('n1 and n2 to see n3 dead', async () => {
      const s = await ctl(['nodes', '-o', 'json'])
      const nodes = JSON.parse(s.stdout) as Array<{ name: string, state: string }>
      return nodes.find(n => n.name === 'n3')?.state === 'dead'
    }, { timeoutMs: 60_000, intervalMs: 500 })
    const st = await ctl(['dev', 'status', '-o', 'json'])
    expect(st.code).toBe(1)
    expect((JSON.parse(st.stdout) as Array<{ name: string, running: boolean }>).map(x => x.running)).toEqual([true, true, false])
  })

  it('dev down stops every gridd by its pid and leaves none behind', async () => {
    const r = await ctl(['dev', 'down', '-o', 'json'])
    expect(r.code, r.stderr).toBe(0)
    expect((JSON.parse(r.stdout) as Array<{ result: string }>).map(x => x.result)).toEqual(['stopped', 'stopped', 'not running'])
    for (const p of pids) expect(running(p)).toBe(false)
    // gone with the cluster: gridctl no longer defaults to its sockets
    const after = await ctl(['dev', 'status'])
    expect(after.code).toBe(1)
    expect(after.stderr).toMatch(/no dev cluster/)
  })
})
