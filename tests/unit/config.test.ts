import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.ts'
import { InvalidConfigError } from '../../src/interface/index.ts'
import { violationsOf } from '../helpers/violations.ts'

const dir = mkdtempSync(join(tmpdir(), 'grid-config-'))
const none = join(dir, 'no-default.yaml')

function file (name: string, text: string): string {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

const violations = (fn: () => unknown): string[] => violationsOf(InvalidConfigError, fn)

describe('config - layering and validation', () => {
  it('works with nothing configured', () => {
    const c = loadConfig({ env: {}, defaultConfigFile: none })
    expect(c.cluster).toBe('grid')
    expect(c.listen).toEqual(['/ip4/0.0.0.0/tcp/7470'])
    expect(c.dataDir).toBe(join(process.cwd(), '.grid'))
    expect(c.socket).toBe(join(process.cwd(), '.grid', 'gridd.sock'))
    expect(c.swarmKey).toBe(join(process.cwd(), '.grid', 'swarm.key'))
    expect(c.swarmKeyGenerate).toBe(true)
    expect(c.membership.heartbeatIntervalMs).toBe(1000)
    expect(Object.isFrozen(c) && Object.isFrozen(c.membership) && Object.isFrozen(c.listen)).toBe(true)
  })

  it('makes a router only of an explicit --slots 0, and puts --pool into the labels', () => {
    const none0 = loadConfig({ env: {}, defaultConfigFile: none })
    expect(none0.executor).toMatchObject({ slots: 0, router: false })
    expect(loadConfig({ env: {}, defaultConfigFile: none, flags: { 'executor.slots': '0' } }).executor.router).toBe(true)
    expect(loadConfig({ env: { GRID_SLOTS: '0' }, defaultConfigFile: none }).executor.router).toBe(true)
    expect(loadConfig({ env: {}, defaultConfigFile: none, flags: { 'executor.slots': '4' } }).executor.router).toBe(false)
    expect(loadConfig({ env: { GRID_POOL: 'gpu-a', GRID_LABELS: 'rack=r1' }, defaultConfigFile: none }).labels).toEqual({ rack: 'r1', pool: 'gpu-a' })
  })

  it('applies defaults < file < environment < flags', () => {
    const f = file('layers.yaml', 'name: from-file\nregion: file-region\nlogLevel: warn\nlabels: {zone: a}\nmembership:\n  heartbeatInterval: 2s\n')
    const c = loadConfig({ configFile: f, env: { GRID_REGION: 'env-region', GRID_LOG_LEVEL: 'debug' }, flags: { logLevel: 'error' } })
    expect(c.name).toBe('from-file')
    expect(c.region).toBe('env-region')
    expect(c.logLevel).toBe('error')
    expect(c.labels).toEqual({ zone: 'a' })
    expect(c.membership.heartbeatIntervalMs).toBe(2000)
    expect(c.configFile).toBe(f)
  })

  it('follows systemd\'s directories when they are set', () => {
    const c = loadConfig({ env: { STATE_DIRECTORY: '/var/lib/grid', RUNTIME_DIRECTORY: '/run/grid' }, defaultConfigFile: none })
    expect(c.dataDir).toBe('/var/lib/grid')
    expect(c.socket).toBe('/run/grid/gridd.sock')
  })

  it('parses repeatable flags and comma-separated variables', () => {
    const c = loadConfig({
      env: { GRID_CAPABILITIES: 'cuda, nvme', GRID_BOOTSTRAP: '/ip4/10.0.0.1/tcp/7470,/ip4/10.0.0.2/tcp/7470' },
      flags: { labels: ['gpu=a100', 'rack=r1'] },
      defaultConfigFile: none
    })
    expect(c.capabilities).toEqual(['cuda', 'nvme'])
    expect(c.bootstrap).toHaveLength(2)
    expect(c.labels).toEqual({ gpu: 'a100', rack: 'r1' })
  })

  it('reports every violation at once, each naming its key and source', () => {
    const f = file('bad.yaml', 'listen: [not-an-addr]\nheartbeat: 1s\nmembership:\n  heartbeatInterval: 5\n')
    const v = violations(() => loadConfig({ configFile: f, env: { GRID_LOG_LEVEL: 'loud' }, flags: { name: 'bad name!', labels: ['novalue'] } }))
    expect(v).toHaveLength(6)
    expect(v.join('\n')).toContain(`heartbeat (${f}): unknown key`)
    expect(v.join('\n')).toMatch(/listen \(.*bad\.yaml\): \[0\] "not-an-addr" is not a multiaddr/)
    expect(v.join('\n')).toMatch(/membership\.heartbeatInterval \(.*\): expected a duration/)
    expect(v.join('\n')).toContain('logLevel (GRID_LOG_LEVEL): "loud" is not one of fatal, error, warn, info, debug, trace, silent')
    expect(v.join('\n')).toContain('name (flag --name)')
    expect(v.join('\n')).toContain('labels (flag --label): "novalue" is not K=V')
  })

  it('refuses a swarm key together with the insecure lab mode', () => {
    const v = violations(() => loadConfig({ env: {}, flags: { swarmKey: '/tmp/k', insecureNoSwarmKey: true }, defaultConfigFile: none }))
    expect(v[0]).toMatch(/contradicts insecureNoSwarmKey/)
  })

  it('refuses executor.syncLayout link without a task user (tasks could write into the sync cache), takes it with one', () => {
    const v = violations(() => loadConfig({ env: { GRID_SYNC_LAYOUT: 'link' }, defaultConfigFile: none }))
    expect(v[0]).toMatch(/executor\.syncLayout \(GRID_SYNC_LAYOUT\): link needs executor\.taskUser/)
    expect(loadConfig({ env: { GRID_SYNC_LAYOUT: 'link', GRID_TASK_USER: 'nobody' }, defaultConfigFile: none }).executor.syncLayout).toBe('link')
    expect(loadConfig({ env: { GRID_SYNC_LAYOUT: 'auto' }, defaultConfigFile: none }).executor.syncLayout).toBe('auto')
    expect(loadConfig({ env: {}, defaultConfigFile: none }).executor.syncLayout).toBe('copy')
    expect(violations(() => loadConfig({ env: { GRID_SYNC_LAYOUT: 'reflink' }, defaultConfigFile: none }))[0]).toMatch(/executor\.syncLayout/)
  })

  it('turns off the swarm key only when asked, and never generates a key the user named', () => {
    expect(loadConfig({ env: {}, flags: { insecureNoSwarmKey: true }, defaultConfigFile: none }).swarmKey).toBeNull()
    const named = loadConfig({ env: {}, flags: { swarmKey: '/etc/grid/swarm.key' }, defaultConfigFile: none })
    expect(named.swarmKey).toBe('/etc/grid/swarm.key')
    expect(named.swarmKeyGenerate).toBe(false)
  })

  it('names a config file that does not parse or cannot be read', () => {
    expect(violations(() => loadConfig({ configFile: file('broken.yaml', 'listen: [\n'), env: {} }))[0]).toMatch(/not valid YAML/)
    expect(violations(() => loadConfig({ configFile: join(dir, 'missing.yaml'), env: {} }))[0]).toMatch(/cannot be read \(ENOENT\)/)
    expect(violations(() => loadConfig({ configFile: file('list.yaml', '- a\n- b\n'), env: {} }))[0]).toMatch(/must be a YAML map/)
  })

  it('reads "off" for the metrics endpoint and checks HOST:PORT', () => {
    expect(loadConfig({ env: {}, flags: { metricsListen: 'off' }, defaultConfigFile: none }).metricsListen).toBeNull()
    expect(violations(() => loadConfig({ env: {}, flags: { metricsListen: '9464' }, defaultConfigFile: none }))[0]).toMatch(/is not HOST:PORT/)
  })
})
