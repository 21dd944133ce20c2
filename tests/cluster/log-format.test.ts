/**
 * gridd's log for people and for machines, on real daemons: readable lines on a terminal (or with --log-format
 * pretty), one JSON object per line elsewhere (or with --log-format json / logFormat: json), and no secret in either.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, Gridd, waitFor } from '../helpers/cluster.ts'

const SECRET = 'l0g-s3cret-value-qq'
/** A readable line: time, level, node, component, message (colour codes, if any, taken out first). */
const READABLE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): (\S+)(?: ([a-z-]+))?: (.+)$/
const plain = (text: string): string[] => text.replace(/\x1b\[[0-9;]*m/g, '').split(/\r?\n/).filter(l => l.trim() !== '')
const isJsonObject = (l: string): boolean => { try { return typeof JSON.parse(l) === 'object' } catch { return false } }

describe('logs - readable on a terminal, JSON elsewhere', () => {
  let c: Cluster
  let n1: Gridd, n2: Gridd, n3: Gridd
  beforeAll(async () => {
    c = new Cluster()
    n1 = await c.add('n1')
    n2 = await c.add('n2', { args: ['--log-format', 'pretty'] })
    n3 = await c.add('n3', { terminal: true, env: { NO_COLOR: '' } })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('prints readable lines with --log-format pretty: time, level, node, component, message and the fields', async () => {
    await waitFor('n2 to log that it joined', () => n2.log().includes('joined through bootstrap peer'))
    const lines = plain(n2.log())
    expect(lines.filter(isJsonObject)).toEqual([])
    const joined = lines.find(l => l.includes('joined through bootstrap peer')) as string
    const m = READABLE.exec(joined)
    expect(m?.slice(1, 5)).toEqual(['INFO', 'n2', 'mesh', expect.stringMatching(/^joined through bootstrap peer \{"addr":"\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+","peer":"12D3KooW\w+"\}$/)])
    // every event is one line of this shape (an error's stack stays inside its field)
    expect(lines.filter(l => !READABLE.test(l))).toEqual([])
  })

  it('prints readable, coloured lines on a terminal without being asked', () => {
    const raw = n3.log()
    expect(raw).toMatch(/\x1b\[32mINFO\x1b\[39m/)
    const lines = plain(raw)
    expect(lines.filter(isJsonObject)).toEqual([])
    expect(lines.find(l => l.includes('mesh started'))).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: n3 mesh: mesh started \{"peerId":"12D3KooW/)
  })

  it('stays one JSON object per line when stdout is not a terminal', () => {
    const lines = plain(n1.log())
    expect(lines.length).toBeGreaterThan(5)
    expect(lines.filter(l => !isJsonObject(l))).toEqual([])
    expect(n1.logEvents().find(e => e.msg === 'mesh started')).toMatchObject({ node: 'n1', component: 'mesh', level: 30 })
  })

  it('keeps the swarm key and a task\'s env values out of both formats', async () => {
    for (const [from, to] of [['n1', 'n2'], ['n2', 'n3'], ['n3', 'n1']] as const) {
      const r = await c.node(from).ctl(['run', '--node', to, '--env', `LOG_SECRET=${SECRET}`, '--', 'sh', '-c', 'echo ${#LOG_SECRET}'])
      expect(r.stdout).toBe(`${SECRET.length}\n`)
    }
    const key = readFileSync(c.swarmKey, 'utf8').trim().split('\n').at(-1) as string
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    for (const n of c.nodes) {
      expect(n.log(), n.name).not.toContain(SECRET)
      expect(n.log(), n.name).not.toContain(key)
    }
  })
})

describe('logs - the format can be chosen', () => {
  let c: Cluster
  beforeAll(() => { c = new Cluster() })
  afterAll(async () => { await c?.destroy() })

  it('writes JSON on a terminal with logFormat: json in the config file, plain lines with NO_COLOR, and refuses an unknown format', async () => {
    const cfg = join(c.root, 'json.yaml')
    writeFileSync(cfg, 'logFormat: json\n')
    const n = await c.add('j1', { terminal: true, args: ['--config', cfg] })
    await waitFor('j1 to log that its mesh started', () => n.log().includes('mesh started'))
    const lines = plain(n.log())
    expect(lines.filter(l => !isJsonObject(l))).toEqual([])
    // NO_COLOR: readable, without colours
    const nc = await c.add('nc', { terminal: true, env: { NO_COLOR: '1' } })
    await waitFor('nc to log that its mesh started', () => nc.log().includes('mesh started'))
    expect(nc.log()).not.toMatch(/\x1b\[/)
    expect(plain(nc.log()).find(l => l.includes('mesh started'))).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: nc mesh: mesh started /)
    const bad = new Gridd({ name: 'bad', root: c.root, args: ['--log-format', 'fancy'], noWait: true })
    await bad.start()
    expect((await bad.waitExit()).code).toBe(2)
    expect(bad.log()).toMatch(/logFormat \(flag --log-format\): "fancy" is not one of pretty, json/)
    bad.dispose()
  })
})
