import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, Gridd, freePort, waitFor } from '../helpers/cluster.ts'

describe('membership - real daemons on 127.0.0.1', () => {
  let c: Cluster

  beforeAll(async () => {
    c = await Cluster.start(4)
  })
  afterAll(async () => { await c?.destroy() })

  it('shows every node to nodes that know only one peer', async () => {
    await c.converged()
    for (const n of c.nodes) {
      const nodes = await n.nodes()
      expect(nodes.map(x => x.name).sort()).toEqual(['n1', 'n2', 'n3', 'n4'])
      const self = nodes.find(x => x.self)
      expect(self?.id).toBe(n.id)
      expect(self?.addrs.every(a => a.endsWith(`/p2p/${n.id}`))).toBe(true)
      for (const x of nodes) expect(x.load?.cpus).toBeGreaterThan(0)
    }
  })

  it('notices a kill -9 on every other node', async () => {
    const victim = c.node('n4')
    await victim.kill()
    await c.allSee('n4', 'dead', { timeoutMs: 30_000 })
    const h = (await c.node('n1').health()).find(x => x.name === 'n4')
    expect(h?.connected).toBe(false)
    expect(h?.history.at(-1)?.state).toBe('dead')
  })

  it('keeps the peer id across a restart and sees the node alive again', async () => {
    const victim = c.node('n4')
    const before = victim.id
    await victim.start()
    expect(victim.id).toBe(before)
    await c.converged()
  })

  it('notices a frozen node (SIGSTOP) and sees it alive again after SIGCONT', async () => {
    const frozen = c.node('n3')
    frozen.signal('SIGSTOP')
    try {
      await c.allSee('n3', 'dead', { timeoutMs: 40_000, except: ['n3'] })
      const n1 = (await c.node('n1').health()).find(x => x.name === 'n3')
      expect(n1?.history.map(h => h.state)).toContain('suspect')
    } finally {
      frozen.signal('SIGCONT')
    }
    await c.converged()
  })

  it('shows a node stopped with SIGTERM as left, and it exits 0', async () => {
    const leaving = c.node('n2')
    leaving.signal('SIGTERM')
    const exit = await leaving.waitExit()
    expect(exit.code).toBe(0)
    await c.allSee('n2', 'left', { timeoutMs: 20_000 })
    const h = (await c.node('n1').health()).find(x => x.name === 'n2')
    expect(h?.history.at(-1)?.reason).toBe('announced it is leaving')
    expect(leaving.log()).toContain('stopping: leaving the cluster gracefully')
  })

  it('lets a node join through any member, not only the first', async () => {
    const late = await c.add('n5', { bootstrap: [c.node('n3').addrs[0] as string] })
    await waitFor('n5 to see n1 and n4 alive', async () => {
      const s = await late.states()
      return s.n1 === 'alive' && s.n4 === 'alive' && s.n3 === 'alive'
    })
    await c.allSee('n5', 'alive')
  })
})

describe('membership - join through gridctl', () => {
  let c: Cluster
  let loner: Gridd | undefined
  afterAll(async () => { await c?.destroy() })

  it('connects a node started without bootstrap addresses', async () => {
    c = await Cluster.start(2)
    loner = await c.add('loner', { bootstrap: [] })
    await waitFor('the loner to be alone', async () => (await loner?.nodes())?.length === 1)
    const r = await loner.ctl(['join', c.node('n1').addrs[0] as string, '-o', 'json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).connected).toEqual([c.node('n1').id])
    await c.converged()
    const bad = await loner.ctl(['join', '/ip4/127.0.0.1/tcp/1'])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toMatch(/failed: connection refused/)
  })
})

describe('membership - bootstrap peers and whole-cluster restarts', () => {
  let c: Cluster | undefined
  afterAll(async () => { await c?.destroy() })

  it('dials a bootstrap peer that comes up late, though it already knows other members', async () => {
    c = new Cluster()
    const port = await freePort()
    // n1 exists (identity, address) but is down; it has never met the others and has no bootstrap list itself
    const n1 = await c.add('n1', { args: ['--listen', `/ip4/127.0.0.1/tcp/${port}`] })
    const n1Addr = `/ip4/127.0.0.1/tcp/${port}/p2p/${n1.id}`
    await n1.kill()
    const n2 = await c.add('n2', { bootstrap: [] })
    const n3 = await c.add('n3', { bootstrap: [n2.addrs[0] as string, n1Addr] })
    await waitFor('n2 and n3 to see each other alive', async () => (await n2.states()).n3 === 'alive' && (await n3.states()).n2 === 'alive')
    await n1.start()
    // only n3's bootstrap list names n1: n3 must go on dialling it though it is not alone
    await c.converged()
  })

  it('finds itself again after every member was stopped at once and started in another order', async () => {
    await c?.destroy()
    c = new Cluster()
    const ports = [await freePort(), await freePort(), await freePort()]
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i] as number}`]
    const n1 = await c.add('n1', { args: listen(0) })
    const first = `/ip4/127.0.0.1/tcp/${ports[0] as number}/p2p/${n1.id}`
    await c.add('n2', { args: listen(1), bootstrap: [first] })
    await c.add('n3', { args: listen(2), bootstrap: [first] })
    await c.converged()
    for (const n of c.nodes) n.signal('SIGTERM')
    for (const n of c.nodes) expect((await n.waitExit()).code).toBe(0)
    // the nodes that bootstrap through n1 come back first; n1, which has no bootstrap list, last
    await c.node('n3').start()
    await c.node('n2').start()
    await n1.start()
    await c.converged()
  })

  it('is whole again after every member was killed (kill -9) and all were started at once in another order', async () => {
    await c?.destroy()
    c = new Cluster()
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()]
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i] as number}`]
    const n1 = await c.add('n1', { args: listen(0) })
    const first = `/ip4/127.0.0.1/tcp/${ports[0] as number}/p2p/${n1.id}`
    for (let i = 1; i < 4; i++) await c.add(`n${i + 1}`, { args: listen(i), bootstrap: [first] })
    await c.converged()
    // no leave announced: every registry still names every member, and each node dials them while they start
    await Promise.all(c.nodes.map(async n => { await n.kill() }))
    await Promise.all(['n4', 'n2', 'n1', 'n3'].map(async name => { await c?.node(name).start() }))
    await c.converged()
    // each member is connected to every other, not only to the one its bootstrap list names
    for (const n of c.nodes) await waitFor(`${n.name} to be connected to the 3 others`, async () => (await n.status()).connections === 3)
  })
})
