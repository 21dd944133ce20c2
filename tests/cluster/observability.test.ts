import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import xterm from '@xterm/headless'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatsResponse, StatusResponse } from '../../proto/index.ts'
import { Cluster, type Gridd, waitFor } from '../helpers/cluster.ts'
import { FAKE_NVIDIA_SMI, GRIDCTL } from '../helpers/paths.ts'
import { metricValue } from '../helpers/metrics.ts'
import { PROMTOOL, needsTool } from '../helpers/tools.ts'

const promtoolCheck = needsTool('serves metrics that promtool check metrics accepts', PROMTOOL, 'promtool')

async function metricsOver (url: string): Promise<string> {
  const res = await fetch(url)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/text\/plain/)
  return await res.text()
}

describe('operability - metrics, stats and watch on live daemons', () => {
  let c: Cluster
  let n1: Gridd
  let taken: Server
  let takenPort = 0
  beforeAll(async () => {
    taken = createServer()
    await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', () => { resolve() }))
    takenPort = (taken.address() as { port: number }).port
    c = await Cluster.start(2, {
      args: i => i === 0 ? ['--metrics-listen', '127.0.0.1:0', '--nvidia-smi', FAKE_NVIDIA_SMI] : ['--metrics-listen', `127.0.0.1:${takenPort}`],
      env: (i): Record<string, string> => i === 0 ? { FAKE_GPU_COUNT: '2', FAKE_GPU_NODE: 'n1' } : {}
    })
    n1 = c.node('n1')
    await c.converged()
    // some traffic for the counters
    for (let i = 0; i < 3; i++) expect((await n1.ctl(['run', '--', 'true'])).code).toBe(0)
    expect((await n1.ctl(['run', '--node', 'n2', '--', 'false'])).code).toBe(1)
  })
  afterAll(async () => {
    taken?.close()
    await c?.destroy()
  })

  it('serves Prometheus metrics with the names users graph', async () => {
    const s = await n1.status()
    expect(s.metrics.enabled).toBe(true)
    const text = await metricsOver(`http://${s.metrics.listen ?? ''}/metrics`)
    for (const name of [
      'grid_tasks_submitted_total', 'grid_tasks_completed_total', 'grid_task_duration_seconds_bucket', 'grid_node_health_score', 'grid_active_tasks',
      'grid_membership_peers', 'grid_membership_heartbeats_sent_total', 'grid_membership_heartbeats_received_total', 'grid_membership_suspicions_total',
      'grid_membership_deaths_total', 'grid_mesh_gossip_sent_bytes_total', 'grid_mesh_stream_sent_bytes_total', 'grid_state_updates_applied_total',
      'grid_state_document_bytes', 'grid_tasks_started_total', 'grid_tasks_retried_total', 'grid_tasks_failed_over_total', 'grid_task_dispatch_seconds_bucket',
      'grid_tasks_queued', 'grid_routing_decisions_total', 'grid_gpu_utilization_percent', 'grid_gpu_memory_used_bytes', 'grid_process_resident_memory_bytes'
    ]) expect(text, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'))
    expect(metricValue(text, 'grid_tasks_submitted_total')).toBeGreaterThanOrEqual(4)
    expect(metricValue(text, 'grid_node_health_score', { peer: 'n2' })).toBe(1)
    expect(metricValue(text, 'grid_gpu_utilization_percent', { gpu: '1' })).toBe(10)
    expect(text).toMatch(/node="n1"/)
  })

  it.skipIf(promtoolCheck.skipped)(promtoolCheck.title, async () => {
    expect(PROMTOOL, 'GRID_TEST_REQUIRE_TOOLS=1 but promtool is missing: set GRID_PROMTOOL or put it on PATH').toBeDefined()
    const s = await n1.status()
    const text = await metricsOver(`http://${s.metrics.listen ?? ''}/metrics`)
    const check = spawnSync(PROMTOOL as string, ['check', 'metrics'], { input: text, encoding: 'utf8' })
    expect(check.stderr + check.stdout).toBe('')
    expect(check.status).toBe(0)
  })

  it('runs on without metrics when their address is taken, and says so in status and log', async () => {
    const n2 = c.node('n2')
    const s: StatusResponse = await n2.status()
    expect(s.metrics).toEqual({ enabled: false, listen: `127.0.0.1:${takenPort}`, error: `cannot listen on 127.0.0.1:${takenPort}: EADDRINUSE` })
    expect(n2.logEvents().some(e => String(e.msg).startsWith('metrics endpoint not started'))).toBe(true)
    const status = await n2.ctl(['status'])
    expect(status.stdout).toMatch(/metrics:\s+off: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/)
    // the same text is still there through the control socket
    const r = await n2.ctl(['metrics'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^grid_active_tasks\{node="n2"\} \d+$/m)
  })

  it('sums the cluster in gridctl stats', async () => {
    // stats sums the nodes' last heartbeats: n2's counts for the runs above reach n1 with its next one
    const s = await waitFor('both nodes\' runs in the sums', async () => {
      const r = JSON.parse((await n1.ctl(['stats', '-o', 'json'])).stdout) as StatsResponse
      return r.tasks.done + r.tasks.failed >= 4 ? r : undefined
    })
    expect(s.nodes).toMatchObject({ total: 2, alive: 2 })
    expect(s.gpus).toMatchObject({ total: 2, free: 2 })
    expect(s.tasks.done + s.tasks.failed).toBeGreaterThanOrEqual(4)
    expect(s.perNode.map(n => n.name).sort()).toEqual(['n1', 'n2'])
    const table = (await n1.ctl(['stats'])).stdout
    expect(table).toMatch(/^nodes 2: 2 alive, 0 suspect, 0 dead, 0 left$/m)
    expect(table).toMatch(/^NODE\s+STATE\s+CPU\s+MEM\s+GPU USE\s+SLOTS\s+RUN\+QUEUED$/m)
  })

  it('draws watch in a terminal, redrawing in place, and quits on q', async () => {
    // `script` gives gridctl a real pseudo-terminal; what it draws is replayed into a headless terminal
    const cmd = `${process.execPath} ${GRIDCTL} --socket ${n1.socket} watch --interval 300ms`
    const p = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, COLUMNS: '120', LINES: '30' } })
    let raw = ''
    p.stdout.on('data', d => { raw += String(d) })
    await waitFor('two frames', () => (raw.match(/grid watch ·/g) ?? []).length >= 2)
    p.stdin.write('q')
    const code = await new Promise<number | null>(resolve => p.on('close', resolve))
    expect(code).toBe(0)
    const term = new xterm.Terminal({ cols: 120, rows: 30, allowProposedApi: true })
    await new Promise<void>(resolve => { term.write(raw, resolve) })
    const screen = Array.from({ length: term.buffer.active.length }, (_, i) => term.buffer.active.getLine(i)?.translateToString(true) ?? '')
    const text = screen.join('\n')
    // in place: one header on screen, however many frames were drawn
    expect(text.match(/grid watch ·/g)).toHaveLength(1)
    expect(text).toMatch(/q quits/)
    expect(text).toMatch(/^NODE\s+STATE\s+CPU\s+MEM\s+GPU USE\s+SLOTS\s+RUN\+QUEUED$/m)
    expect(text).toMatch(/^n1\s+alive\s+\[[#-]{10}\]\s+\d+%.*\s0\/2\s/m)
    expect(text).toMatch(/^n2\s+alive\s/m)
    expect(raw).toContain('\u001b[?25h')
  })

  it('prints plain repeated frames when stdout is not a terminal', async () => {
    const r = await n1.ctl(['watch', '--interval', '200ms', '--count', '2'])
    expect(r.code).toBe(0)
    expect(r.stdout).not.toContain('\u001b')
    expect(r.stdout.match(/^grid watch ·/gm)).toHaveLength(2)
  })

  it('refuses a bad interval with exit 2', async () => {
    const r = await n1.ctl(['watch', '--interval', 'often'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--interval must be a duration/)
  })
})

describe('operability - logs', () => {
  it('are JSON lines with component and ids, and never hold a task\'s environment or the swarm key', async () => {
    const c = await Cluster.start(1, { env: () => ({ GRID_TEST_LOG_LEVEL: 'trace' }) })
    try {
      const n = c.node('n1')
      const key = readFileSync(join(n.dataDir, 'swarm.key'), 'utf8').trim().split('\n')[2] as string
      expect((await n.ctl(['run', '--env', 'SECRET_TOKEN=hunter2-very-secret', '--', 'true'])).code).toBe(0)
      await waitFor('the task\'s log lines', () => ['task placed', 'task started', 'task finished'].every(m => n.logEvents().some(e => e.msg === m && e.component === 'tasks' && typeof e.task === 'string')))
      const log = n.log()
      for (const line of log.split('\n').filter(l => l.trim() !== '')) expect(() => JSON.parse(line), line.slice(0, 80)).not.toThrow()
      expect(log).not.toContain('hunter2-very-secret')
      expect(log).not.toContain(key)
      expect(n.logEvents().every(e => typeof e.level === 'number' && typeof e.time === 'string' && e.node === 'n1')).toBe(true)
    } finally {
      await c.destroy()
    }
  })
})

