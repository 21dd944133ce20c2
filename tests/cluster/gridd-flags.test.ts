import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Gridd, freePort, tempDir } from '../helpers/cluster.ts'
import { rmSync } from 'node:fs'

const root = tempDir()
afterAll(() => { rmSync(root, { recursive: true, force: true }) })

async function runGridd (name: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, out: string }> {
  const g = new Gridd({ name, root, args, env, noWait: true })
  await g.start()
  const exit = await g.waitExit(20_000)
  g.dispose()
  return { code: exit.code, out: g.log() }
}

describe('gridd - bad flags and configuration fail clearly', () => {
  it('exits 2 with its usage on an unknown flag', async () => {
    const r = await runGridd('unknown', ['--frobnicate'])
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/Unknown option '--frobnicate'/)
    expect(r.out).toMatch(/Usage: gridd \[flags\]/)
  })

  it('exits 2 listing every bad value at once, from flags, environment and file', async () => {
    const cfg = join(root, 'bad.yaml')
    writeFileSync(cfg, 'bootstrap: [nonsense]\nfrobs: 3\n')
    const r = await runGridd('bad', ['--config', cfg, '--heartbeat-interval', 'soon', '--label', 'novalue'], { GRID_LOG_LEVEL: 'loud' })
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/invalid configuration:/)
    for (const want of [
      /bootstrap \(.*bad\.yaml\): \[0\] "nonsense" is not a multiaddr/,
      /frobs \(.*bad\.yaml\): unknown key/,
      /membership\.heartbeatInterval \(flag --heartbeat-interval\): "soon" is not a duration/,
      /labels \(flag --label\): "novalue" is not K=V/,
      /logLevel \(GRID_LOG_LEVEL\): "loud" is not one of/
    ]) expect(r.out).toMatch(want)
  })

  it('prints help and its version with exit 0', async () => {
    const help = await runGridd('help', ['--help'])
    expect(help.code).toBe(0)
    expect(help.out).toMatch(/--bootstrap VALUE/)
    expect(help.out).toMatch(/GRID_DATA_DIR/)
    const v = await runGridd('version', ['--version'])
    expect(v.code).toBe(0)
    expect(v.out).toMatch(/^gridd \d+\.\d+\.\d+/)
  })

  it('refuses a second daemon on the same data directory, naming the first', async () => {
    const first = new Gridd({ name: 'shared', root })
    await first.start()
    try {
      const second = new Gridd({ name: 'shared', root, args: ['--socket', join(root, 'other.sock')], noWait: true })
      await second.start()
      expect((await second.waitExit()).code).toBe(1)
      expect(second.log()).toMatch(new RegExp(`another gridd \\(pid ${first.pid}\\) is using the data directory`))
      second.dispose()
      expect((await first.status()).name).toBe('shared')
    } finally {
      await first.stop()
      first.dispose()
    }
  })

  it('exits 1 with the reason when it cannot listen', async () => {
    const r = await runGridd('noport', ['--listen', '/ip4/203.0.113.1/tcp/1'])
    expect(r.code).toBe(1)
    expect(r.out).toMatch(/cannot start: cannot listen on \/ip4\/203\.0\.113\.1\/tcp\/1: 203\.0\.113\.1 is not an address of this machine/)
  })

  it('says which port is in use and what to pass when a second daemon takes the same port, without a stack', async () => {
    const port = await freePort()
    const first = new Gridd({ name: 'port-a', root, args: ['--listen', `/ip4/127.0.0.1/tcp/${port}`] })
    await first.start()
    try {
      const r = await runGridd('port-b', ['--listen', `/ip4/127.0.0.1/tcp/${port}`])
      expect(r.code).toBe(1)
      expect(r.out).toContain(`gridd: cannot start: error [PORT_IN_USE]: port ${port} is in use: another process listens on /ip4/127.0.0.1/tcp/${port} — ` +
        'stop what holds it, or pass --listen /ip4/127.0.0.1/tcp/PORT with a free PORT')
      expect(r.out).not.toMatch(/UnsupportedListenAddressesError|setupListenHandle|\n\s+at /)
      // one log event with the code and the hint (the rollback's line names the code only)
      const events = r.out.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
      expect(events.filter(e => e.msg === 'gridd could not start')).toEqual([expect.objectContaining({ code: 'PORT_IN_USE', hint: expect.stringMatching(/^stop what holds it, or pass --listen/) })])
    } finally {
      await first.stop()
      first.dispose()
    }
  })
})
