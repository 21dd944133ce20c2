import { spawnSync } from 'node:child_process'
import { statSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, runCtl } from '../helpers/cluster.ts'
import { GRIDCTL, ROOT } from '../helpers/paths.ts'

describe('gridctl - against real daemons', () => {
  let c: Cluster
  beforeAll(async () => {
    c = await Cluster.start(2, { args: i => i === 0 ? ['--region', 'eu-west', '--label', 'rack=r1', '--capability', 'cuda'] : [] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('prints status as exactly one JSON document with full multiaddrs', async () => {
    const r = await c.node('n1').ctl(['status', '-o', 'json'])
    expect(r.code).toBe(0)
    const s = JSON.parse(r.stdout)
    expect(s).toMatchObject({ name: 'n1', region: 'eu-west', labels: { rack: 'r1' }, capabilities: ['cuda'], counts: { alive: 2, total: 2 } })
    expect(s.addrs[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${s.id}$`))
  })

  it('lists nodes as a JSON array with the fields scripts rely on', async () => {
    const r = await c.node('n2').ctl(['nodes', '-o', 'json'])
    expect(r.code).toBe(0)
    const nodes = JSON.parse(r.stdout) as Array<Record<string, unknown>>
    expect(Array.isArray(nodes)).toBe(true)
    expect(nodes).toHaveLength(2)
    for (const n of nodes) {
      for (const k of ['id', 'name', 'state', 'addrs', 'region', 'labels', 'capabilities', 'load', 'lastSeen']) expect(n).toHaveProperty(k)
      expect(n.state).toBe('alive')
    }
  })

  it('prints tables and Markdown', async () => {
    const t = await c.node('n1').ctl(['nodes'])
    expect(t.stdout.split('\n')[0]).toMatch(/^NAME\s+ID\s+STATE/)
    expect(t.stdout).toMatch(/n1 \*/)
    const md = await c.node('n1').ctl(['-o', 'markdown', 'health'])
    expect(md.stdout.split('\n')[0]).toBe('| name | state | health | since | heartbeat | rtt | connected | incarnation | recent |')
    expect(md.stdout.split('\n')[1]).toMatch(/^\| --- \| --- \| --- \| --- \| ---: \|/)
  })

  it('gets one node by name or id, and exits 1 when there is none', async () => {
    const byName = JSON.parse((await c.node('n1').ctl(['nodes', 'get', 'n2', '-o', 'json'])).stdout)
    expect(byName.name).toBe('n2')
    const byId = JSON.parse((await c.node('n1').ctl(['nodes', 'get', byName.id, '-o', 'json'])).stdout)
    expect(byId.name).toBe('n2')
    const none = await c.node('n1').ctl(['nodes', 'get', 'nobody'])
    expect(none.code).toBe(1)
    expect(none.stderr).toBe('gridctl: no node with id or name nobody\n')
  })

  it('shows health with probe round trips', async () => {
    const h = JSON.parse((await c.node('n1').ctl(['health', '-o', 'json'])).stdout) as Array<{ name: string, rttMs: number | null, heartbeatAgeMs: number }>
    const n2 = h.find(x => x.name === 'n2')
    expect(n2?.heartbeatAgeMs).toBeLessThan(10_000)
    // routine probes run every heartbeat interval
    expect(n2?.rttMs === null || (n2?.rttMs ?? -1) >= 0).toBe(true)
  })

  it('answers curl-style HTTP on the socket, with JSON errors', async () => {
    const r = await c.node('n1').api.get<unknown[]>('/nodes')
    expect(r).toHaveLength(2)
    await expect(c.node('n1').api.get('/nope')).rejects.toMatchObject({ code: 'NO_SUCH_ENDPOINT' })
    expect(statSync(c.node('n1').socket).mode & 0o777).toBe(0o660)
  })

  it('gives a one-line error naming the socket and how to start a daemon when none answers', async () => {
    const r = await runCtl(['--socket', '/tmp/grid-no-such.sock', 'status'])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe('gridctl: error [DAEMON_NOT_RUNNING]: no gridd answers at /tmp/grid-no-such.sock — start it with `npm start` or `systemctl start gridd`, or point gridctl at another socket with --socket (or GRID_SOCKET)\n')
    const env = await runCtl(['nodes'], { env: { GRID_SOCKET: '/tmp/grid-env.sock' } })
    expect(env.stderr).toMatch(/no gridd answers at \/tmp\/grid-env\.sock/)
  })

  it('exits 2 with the command\'s help on a usage error', async () => {
    const r = await runCtl(['nodes', '--wat'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/Usage: gridctl nodes/)
    const f = await runCtl(['-o', 'yaml', 'status'])
    expect(f.code).toBe(2)
    expect(f.stderr).toMatch(/--output must be one of table, json, markdown/)
    const u = await runCtl(['teleport'])
    expect(u.code).toBe(2)
    expect(u.stderr).toMatch(/unknown command "teleport"/)
  })

  it('writes a swarm key with mode 0600 and refuses to overwrite it', async () => {
    const file = join(c.root, 'new.key')
    const r = await runCtl(['keygen', file, '-o', 'json'])
    expect(r.code).toBe(0)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    expect(JSON.parse(r.stdout).fingerprint).toMatch(/^[0-9a-f]{16}$/)
    const again = await runCtl(['keygen', file])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/exists; pass --force/)
  })
  it('loads only what a command needs: no libp2p, typebox or ssh2 for a request on the socket', () => {
    // every gridctl call pays for what it loads before it sends anything (974 modules, 0.3-0.7 s, before this test)
    const hook = join(ROOT, 'tests/helpers/count-modules.mjs')
    for (const args of [['--version'], ['--socket', c.node('n1').socket, 'status'], ['--socket', c.node('n1').socket, 'run', '--', 'true']]) {
      const file = join(c.root, `modules-${args.length}.json`)
      const r = spawnSync(process.execPath, ['--import', hook, GRIDCTL, ...args], { env: { ...process.env, GRID_MODULE_COUNT_FILE: file }, encoding: 'utf8', timeout: 60_000 })
      expect(r.status, r.stderr).toBe(0)
      const counted = JSON.parse(readFileSync(file, 'utf8')) as { total: number, byPackage: Record<string, number> }
      expect(Object.keys(counted.byPackage).filter(p => p !== '(own)' && p !== 'node:'), args.join(' ')).toEqual([])
      expect(counted.total, args.join(' ')).toBeLessThan(60)
    }
  })
})
