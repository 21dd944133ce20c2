import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { NodeEntry, SessionEntry } from '../../proto/index.ts'
import { Cluster, Gridd, waitFor } from '../helpers/cluster.ts'

async function session (n: Gridd, id: string): Promise<SessionEntry | undefined> {
  try {
    return await n.api.get<SessionEntry>(`/sessions/${id}`)
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return undefined
    throw err
  }
}

async function put (n: Gridd, id: string, value: unknown, extra: Record<string, unknown> = {}): Promise<SessionEntry> {
  return await n.api.put<SessionEntry>(`/sessions/${id}`, { value, ...extra })
}

describe('state - replicated registry and sessions on real daemons', () => {
  let c: Cluster
  beforeAll(async () => {
    c = await Cluster.start(4, { args: i => i === 0 ? ['--region', 'eu-west', '--label', 'rack=r7', '--capability', 'nvme'] : [] })
    await c.converged()
  })
  afterAll(async () => { await c?.destroy() })

  it('shows each node\'s registry facts on every node', async () => {
    await waitFor('n1\'s facts on n4', async () => {
      const n1 = (await c.node('n4').nodes()).find(n => n.name === 'n1') as NodeEntry
      return n1.region === 'eu-west' && n1.labels.rack === 'r7' && n1.capabilities.includes('nvme') && n1.addrs.length > 0
    })
  })

  it('converges a write on every node', async () => {
    await put(c.node('n1'), 'converge', { model: 'llama', step: 1 })
    for (const n of c.nodes) await waitFor(`the session on ${n.name}`, async () => (await session(n, 'converge'))?.value)
    for (const n of c.nodes) expect((await session(n, 'converge'))?.value).toEqual({ model: 'llama', step: 1 })
  })

  it('lets the newest write win, wherever it was made, and deletes everywhere', async () => {
    await put(c.node('n2'), 'lww', 'from n2')
    await waitFor('n3 to see it', async () => (await session(c.node('n3'), 'lww'))?.value === 'from n2')
    await put(c.node('n3'), 'lww', 'from n3')
    for (const n of c.nodes) await waitFor(`n3's value on ${n.name}`, async () => (await session(n, 'lww'))?.value === 'from n3')
    await c.node('n4').api.delete('/sessions/lww')
    for (const n of c.nodes) await waitFor(`the deletion on ${n.name}`, async () => (await session(n, 'lww')) === undefined)
  })

  it('expires a session at its TTL on every node', async () => {
    // long enough that every node sees it before it expires, however slow the machine
    const s = await put(c.node('n1'), 'short-lived', 1, { ttl: '8s', owner: 'n2' })
    expect(s.ttlMs).toBe(8000)
    expect(s.ownerName).toBe('n2')
    await Promise.all(c.nodes.map(async n => await waitFor(`the session on ${n.name}`, async () => (await session(n, 'short-lived')) !== undefined)))
    for (const n of c.nodes) await waitFor(`expiry on ${n.name}`, async () => (await session(n, 'short-lived')) === undefined, { timeoutMs: 20_000 })
  })

  it('refuses oversized and malformed session values with a clear error', async () => {
    await expect(put(c.node('n1'), 'big', 'x'.repeat(70 * 1024))).rejects.toMatchObject({ code: 'TOO_LARGE', message: expect.stringMatching(/limit is 65536 bytes/) })
    await expect(c.node('n1').api.put('/sessions/bad', { nope: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(put(c.node('n1'), encodeURIComponent('bad id'), 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/session id "bad id" must be/) })
    await expect(put(c.node('n1'), 'ttl', 1, { ttl: 'soon' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/not a positive duration/) })
    const r = await c.node('n1').ctl(['sessions', 'put', 'x', '{not json'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/the session's value "\{not json" is not JSON/)
    const missing = await c.node('n2').ctl(['sessions', 'get', 'nope'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe('gridctl: no session nope\n')
  })

  it('catches up a node frozen (SIGSTOP) during hundreds of writes, after SIGCONT', async () => {
    const frozen = c.node('n4')
    frozen.signal('SIGSTOP')
    try {
      for (let i = 0; i < 300; i += 30) {
        await Promise.all(Array.from({ length: 30 }, async (_, j) => await put(c.node(j % 2 === 0 ? 'n1' : 'n2'), `frozen-${i + j}`, { i: i + j })))
      }
    } finally {
      frozen.signal('SIGCONT')
    }
    await waitFor('n4 to hold all 300 writes', async () => {
      const list = await frozen.api.get<SessionEntry[]>('/sessions')
      return list.filter(s => s.id.startsWith('frozen-')).length === 300
    }, { timeoutMs: 45_000 })
    expect((await session(frozen, 'frozen-299'))?.value).toEqual({ i: 299 })
  })

  it('keeps its state across kill -9 and a restart, before it sees any peer', async () => {
    const n3 = c.node('n3')
    // a hundred writes it received from others, and its own write after them: a write is acknowledged once it is in
    // the log, and the log append that carries it carries what the node received before (received records are
    // logged at the next flush, so without a write of its own a kill -9 at once may beat the last of them to the log)
    await Promise.all(Array.from({ length: 100 }, async (_, i) => await put(c.node(i % 2 === 0 ? 'n1' : 'n2'), `kept-${i}`, { i })))
    await waitFor('n3 to hold the hundred writes', async () => (await n3.api.get<SessionEntry[]>('/sessions')).filter(s => s.id.startsWith('kept-')).length === 100)
    await put(n3, 'mine', 'written by n3')
    await waitFor('n1 to see n3\'s write', async () => (await session(c.node('n1'), 'mine')) !== undefined)
    await n3.kill()
    const alone = new Gridd({ name: 'n3', root: c.root, swarmKey: c.swarmKey, bootstrap: [] })
    c.nodes[c.nodes.indexOf(n3)] = alone
    await alone.start()
    expect((await session(alone, 'mine'))?.value).toBe('written by n3')
    expect((await session(alone, 'kept-99'))?.value).toEqual({ i: 99 })
    expect((await alone.api.get<SessionEntry[]>('/sessions')).filter(s => s.id.startsWith('kept-'))).toHaveLength(100)
    // and it rejoins
    const r = await alone.ctl(['join', c.node('n1').addrs[0] as string])
    expect(r.code).toBe(0)
    await c.converged()
  })

  it('forgets a dead node everywhere, refusing while it is alive', async () => {
    await c.allSee('n4', 'alive')
    const live = await c.node('n1').ctl(['nodes', 'forget', 'n4'])
    expect(live.code).toBe(1)
    expect(live.stderr).toMatch(/node n4 is alive; only a dead or departed node can be forgotten/)
    await c.node('n4').kill()
    await c.allSee('n4', 'dead')
    const r = await c.node('n1').ctl(['nodes', 'forget', 'n4', '-o', 'json'])
    expect(r.code).toBe(0)
    for (const n of c.running()) await waitFor(`${n.name} to forget n4`, async () => !(await n.nodes()).some(x => x.name === 'n4'))
  })
})

describe('state - a partition heals by merging', () => {
  const a = new Cluster()
  let b: Cluster
  afterAll(async () => { await a.destroy(); await b?.destroy() })

  it('accepts writes on both halves and converges when they are joined', async () => {
    await a.add('a1')
    await a.add('a2')
    b = new Cluster()
    b.swarmKey = a.swarmKey
    await b.add('b1', { swarmKey: a.swarmKey })
    await b.add('b2')
    await a.converged()
    await b.converged()
    expect((await a.node('a1').nodes()).map(n => n.name).sort()).toEqual(['a1', 'a2'])

    await put(a.node('a1'), 'left-side', 'A')
    await put(b.node('b2'), 'right-side', 'B')
    const first = await put(a.node('a2'), 'both', 'written on A first')
    // both halves run on this machine's clock: once it is past the first write's stamp (a hybrid-clock stamp a
    // millisecond or so after its updatedAt), the second write is the newer one
    await waitFor('the clock to pass the first write', () => Date.now() > Date.parse(first.updatedAt) + 5, { intervalMs: 5 })
    await put(b.node('b1'), 'both', 'written on B later')

    const r = await a.node('a1').ctl(['join', b.node('b1').addrs[0] as string])
    expect(r.code).toBe(0)
    const all = [...a.nodes, ...b.nodes]
    for (const n of all) {
      await waitFor(`${n.name} to hold both halves`, async () => (await session(n, 'left-side')) !== undefined && (await session(n, 'right-side')) !== undefined && (await session(n, 'both'))?.value === 'written on B later', { timeoutMs: 45_000 })
    }
    for (const n of all) await waitFor(`${n.name} to see all four nodes`, async () => (await n.nodes()).filter(x => x.state === 'alive').length === 4, { timeoutMs: 45_000 })
  })
})
