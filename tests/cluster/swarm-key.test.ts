import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Cluster, Gridd, runCtl, waitFor } from '../helpers/cluster.ts'

describe('mesh - the swarm key keeps strangers out', () => {
  const c = new Cluster()
  afterAll(async () => { await c.destroy() })

  it('generates a key (mode 0600) on a first start at the default path', async () => {
    const n1 = await c.add('n1')
    const key = join(n1.dataDir, 'swarm.key')
    expect(statSync(key).mode & 0o777).toBe(0o600)
    const s = await n1.status()
    expect(s.swarmKeyProtected).toBe(true)
    expect(s.swarmKeyFingerprint).toMatch(/^[0-9a-f]{16}$/)
    c.swarmKey = key
    await c.add('n2')
    await c.converged()
  })

  it('never admits a node with another swarm key, and both sides say why in their logs', async () => {
    const other = join(c.root, 'other.key')
    expect((await runCtl(['keygen', other])).code).toBe(0)
    const intruder = await c.add('intruder', { swarmKey: other, bootstrap: [c.node('n1').addrs[0] as string] })
    await waitFor('the intruder to log why it cannot join', () => intruder.logEvents().some(e => e.msg === 'cannot reach bootstrap peer; retrying with backoff (logged once a minute per address)'), { timeoutMs: 30_000 })
    await waitFor('n1 to log a failed handshake', () => c.node('n1').logEvents().some(e => String(e.msg).startsWith('connection handshake failed')), { timeoutMs: 30_000 })
    const reason = String(intruder.logEvents().find(e => String(e.msg).startsWith('cannot reach bootstrap peer'))?.reason)
    expect(reason).toMatch(/swarm key/)
    expect((await intruder.nodes()).map(n => n.name)).toEqual(['intruder'])
    for (const n of [c.node('n1'), c.node('n2')]) expect((await n.nodes()).map(x => x.name).sort()).toEqual(['n1', 'n2'])
    expect((await intruder.status()).swarmKeyFingerprint).not.toBe((await c.node('n1').status()).swarmKeyFingerprint)
    await intruder.kill()
  })

  it('refuses to start when a named key is missing or malformed', async () => {
    const missing = new Gridd({ name: 'missing', root: c.root, swarmKey: join(c.root, 'nope.key'), noWait: true })
    await missing.start()
    expect((await missing.waitExit()).code).toBe(1)
    expect(missing.log()).toMatch(/swarm key .*nope\.key does not exist; copy the cluster's key there, or create one for a new cluster with: gridctl keygen/)

    const badPath = join(c.root, 'bad.key')
    writeFileSync(badPath, '/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n')
    const bad = new Gridd({ name: 'bad', root: c.root, swarmKey: badPath, noWait: true })
    await bad.start()
    expect((await bad.waitExit()).code).toBe(1)
    expect(bad.log()).toMatch(/third line must be 64 hex digits/)
  })

  it('runs without a key only when asked, and such a node cannot join a protected cluster', async () => {
    const lab = await c.add('lab', { swarmKey: undefined, args: ['--insecure-no-swarm-key'], bootstrap: [c.node('n1').addrs[0] as string] })
    const s = await lab.status()
    expect(s.swarmKeyProtected).toBe(false)
    expect(s.swarmKeyFingerprint).toBeNull()
    expect(lab.log()).toMatch(/running WITHOUT a swarm key/)
    await waitFor('the lab node to give up on its bootstrap peer once', () => lab.logEvents().some(e => String(e.msg).startsWith('cannot reach bootstrap peer')), { timeoutMs: 30_000 })
    expect((await c.node('n1').nodes()).map(n => n.name).sort()).toEqual(['n1', 'n2'])
  })
})
