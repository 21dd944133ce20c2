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
    await waitFor('n1 to log a failed handshake', () => c.node('n1').logEvents().some(e => e.code === 'SWARM_KEY_MISMATCH'), { timeoutMs: 30_000 })
    await waitFor('the intruder to log a failed handshake', () => intruder.logEvents().some(e => e.code === 'SWARM_KEY_MISMATCH'), { timeoutMs: 30_000 })
    const reason = String(intruder.logEvents().find(e => String(e.msg).startsWith('cannot reach bootstrap peer'))?.reason)
    expect(reason).toMatch(/swarm key/)
    // each side names the peer's address, the cause and the next step, with its own fingerprint to compare
    for (const n of [c.node('n1'), intruder]) {
      const fp = (await n.status()).swarmKeyFingerprint as string
      const events = n.logEvents().filter(e => e.code === 'SWARM_KEY_MISMATCH')
      expect(events[0], n.name).toMatchObject({
        // the side that accepts the connection waits for a handshake that never makes sense: a timeout, which a peer
        // too loaded to finish in time would also give, so its line names that cause too
        msg: /timeout|timed out|aborted/i.test(String(events[0]?.error))
          ? 'a peer at /ip4/127.0.0.1 uses a different swarm key, is not a grid node, or did not finish its handshake in time (logged once a minute per address)'
          : 'a peer at /ip4/127.0.0.1 uses a different swarm key, or is not a grid node (logged once a minute per address)',
        swarmKey: fp,
        hint: `compare the swarm key fingerprint \`gridctl status\` prints on both nodes, copy the cluster's swarm.key to the node that differs and restart it (this node's fingerprint: ${fp})`
      })
      // at most one line a minute per address, however often the intruder redials
      const times = events.map(e => Date.parse(String(e.time)))
      for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number), n.name).toBeGreaterThanOrEqual(59_000)
    }
    expect((await intruder.nodes()).map(n => n.name)).toEqual(['intruder'])
    for (const n of [c.node('n1'), c.node('n2')]) expect((await n.nodes()).map(x => x.name).sort()).toEqual(['n1', 'n2'])
    expect((await intruder.status()).swarmKeyFingerprint).not.toBe((await c.node('n1').status()).swarmKeyFingerprint)
    await intruder.kill()
  })

  it('refuses to start when a named key is missing or malformed', async () => {
    const missing = new Gridd({ name: 'missing', root: c.root, swarmKey: join(c.root, 'nope.key'), noWait: true })
    await missing.start()
    expect((await missing.waitExit()).code).toBe(1)
    const key = join(c.root, 'nope.key')
    // on stderr, the cause and the next step, with the code
    expect(missing.log()).toContain(`gridd: cannot start: error [NO_SWARM_KEY]: no swarm key at ${key} (--swarm-key, GRID_SWARM_KEY or swarmKey names it, so none is generated) — ` +
      `copy the cluster's swarm key there from any member (its data dir's swarm.key), or create one for a new cluster with \`gridctl keygen ${key}\``)
    // and in the log, one event with the code and the hint
    expect(missing.logEvents().filter(e => e.msg === 'gridd could not start')).toEqual([expect.objectContaining({ level: 60, code: 'NO_SWARM_KEY', hint: expect.stringContaining(`gridctl keygen ${key}`) })])

    const badPath = join(c.root, 'bad.key')
    writeFileSync(badPath, '/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n')
    const bad = new Gridd({ name: 'bad', root: c.root, swarmKey: badPath, noWait: true })
    await bad.start()
    expect((await bad.waitExit()).code).toBe(1)
    expect(bad.log()).toMatch(/gridd: cannot start: error \[SWARM_KEY\]: swarm key .*bad\.key: third line must be 64 hex digits — replace the file with the cluster's swarm key/)
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
