import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { heartbeatTopic } from '../../proto/index.ts'
import { Cluster, waitFor } from '../helpers/cluster.ts'
import { fetchMetrics, metricValue } from '../helpers/metrics.ts'
import { Rogue } from '../helpers/rogue.ts'

const TOPIC = heartbeatTopic('grid')
const MAX = Number.MAX_SAFE_INTEGER
/** Short, so the test sees dead members leave the table; long enough that nothing expires while a node restarts. */
const EXPIRY = '8s'

/**
 * Issue 17, item 1 and the membership part of item 4: a member holding the swarm key (the rogue, built like a daemon,
 * so it signs its gossip) forges heartbeats and notices about n2, relays forgeries from a second identity, and floods
 * made-up members; the daemons' views stay true.
 */
describe('forged membership - a key holder cannot rewrite other nodes\' membership', () => {
  let c: Cluster
  let rogue: Rogue
  let second: Rogue
  const metrics = async (name: string): Promise<string> => await fetchMetrics(c.node(name).socket)
  const incOf = async (viewer: string, name: string): Promise<number> => (await c.node(viewer).health()).find(h => h.name === name)?.incarnation as number

  beforeAll(async () => {
    c = await Cluster.start(3, { env: () => ({ GRID_DEAD_MEMBER_EXPIRY: EXPIRY }) })
    await c.converged()
    rogue = await Rogue.start(c.swarmKey)
    rogue.subscribe(TOPIC)
    for (const n of c.nodes) await rogue.connect(n.addrs[0] as string)
    // a second identity that reaches the cluster only through the first
    second = await Rogue.start(c.swarmKey)
    second.subscribe(TOPIC)
    await second.connect(rogue.addrs[0] as string)
    await waitFor('the rogue to be in every node\'s heartbeat mesh', () => rogue.node.services.pubsub.getSubscribers(TOPIC).length >= 4)
    await waitFor('the second identity to reach the rogue\'s topic', () => second.hasTopicPeers(TOPIC))
  }, 120_000)
  afterAll(async () => { await second?.stop(); await rogue?.stop(); await c?.destroy() })

  it('ignores heartbeats and notices forged in n2\'s name at the highest incarnation, also after n2 restarts', async () => {
    const n2 = c.node('n2').id
    const before = await incOf('n1', 'n2')
    await rogue.publish(TOPIC, Rogue.heartbeat({ id: n2, name: 'n2', inc: MAX, state: 'left' }))
    await second.publish(TOPIC, Rogue.heartbeat({ id: n2, name: 'n2', inc: MAX, state: 'left' }))
    await rogue.publish(TOPIC, { t: 'notice', kind: 'dead', id: n2, inc: MAX, by: c.node('n1').id })
    // the same within the incarnation bound (an hour ahead, and n2's own incarnation): only the author rule stops these
    const soon = Math.floor(Date.now() / 1000) + 3600
    await rogue.publish(TOPIC, Rogue.heartbeat({ id: n2, name: 'n2', inc: soon, state: 'left' }))
    await second.publish(TOPIC, Rogue.heartbeat({ id: n2, name: 'n2', inc: soon, state: 'left' }))
    await rogue.publish(TOPIC, { t: 'notice', kind: 'dead', id: n2, inc: before, by: c.node('n1').id })
    // notices the rogue signs as itself, at an incarnation n2 never had
    await rogue.publish(TOPIC, { t: 'notice', kind: 'dead', id: n2, inc: MAX, by: rogue.id })
    await rogue.publish(TOPIC, { t: 'notice', kind: 'suspect', id: n2, inc: MAX, by: rogue.id })
    // and a heartbeat of its own that claims an incarnation far beyond any clock
    await rogue.publish(TOPIC, Rogue.heartbeat({ id: rogue.id, inc: MAX }))
    await waitFor('every node to refuse the forgeries', async () => {
      for (const n of ['n1', 'n3']) {
        const t = await metrics(n)
        if (metricValue(t, 'grid_membership_messages_refused_total', { reason: 'not-author' }) < 4) return false
        if (metricValue(t, 'grid_membership_messages_refused_total', { reason: 'incarnation-ahead' }) < 1) return false
      }
      return true
    })
    // checked at once, not waited for: a left member would leave the table after the test's short expiry and come
    // back with its next heartbeat, which would hide the harm (with the default expiry it lasts a day)
    for (const n of ['n1', 'n3']) {
      const h = (await c.node(n).health()).find(e => e.name === 'n2')
      expect(h?.state).toBe('alive')
      expect(h?.history.map(e => e.state)).toEqual(['alive'])
      expect(h?.incarnation).toBe(before)
    }
    // n2 refuted nothing (no notice named its incarnation), so its incarnation cannot have run up to overflow
    expect(metricValue(await metrics('n2'), 'grid_membership_refutations_total')).toBe(0)
    for (const n of c.nodes) expect(Object.keys(await n.states()).sort()).toEqual(['n1', 'n2', 'n3'])

    const n2node = c.node('n2')
    await n2node.stop()
    await c.allSee('n2', 'left', { except: ['n2'] })
    await n2node.start()
    await c.converged()
    expect(await incOf('n1', 'n2')).toBeGreaterThan(before)
  }, 180_000)

  it('still lets a member suspect n2 in its own name, and n2 refutes it by raising its incarnation by one', async () => {
    // n2 restarted: the rogue dials it again (n2 hears gossip only from authors it is connected to, or registered)
    const n2 = c.node('n2').id
    await rogue.connect(c.node('n2').addrs[0] as string)
    await waitFor('n2 to be in the rogue\'s heartbeat mesh', () => rogue.node.services.pubsub.getSubscribers(TOPIC).some(p => p.toString() === n2))
    const before = await incOf('n1', 'n2')
    await rogue.publish(TOPIC, { t: 'notice', kind: 'suspect', id: n2, inc: before, by: rogue.id })
    await waitFor('n2 to refute', async () => metricValue(await metrics('n2'), 'grid_membership_refutations_total') >= 1)
    await c.allSee('n2', 'alive')
    await waitFor('n1 to see n2\'s raised incarnation', async () => await incOf('n1', 'n2') === before + 1)
  })

  it('leaves no phantom members after floods of made-up ids, and the cluster runs on', async () => {
    // other identities the rogue made up, each signing heartbeats about itself: nobody is connected to them and the
    // registry does not know them
    const others = await Promise.all([0, 1, 2].map(async () => await Rogue.start(c.swarmKey)))
    try {
      for (const o of others) {
        o.subscribe(TOPIC)
        await o.connect(rogue.addrs[0] as string)
      }
      await waitFor('the made-up identities to reach the rogue\'s topic', () => others.every(o => o.hasTopicPeers(TOPIC)))
      await Promise.all(others.map(async (o, i) => {
        await o.flood(TOPIC, Array.from({ length: 300 }, (_, seq) => Rogue.heartbeat({ id: o.id, name: `made-up-${i}`, inc: 1, seq: seq + 1 })))
      }))
      await waitFor('n1 to ignore the made-up identities', async () => metricValue(await metrics('n1'), 'grid_membership_messages_refused_total', { reason: 'unknown-author' }) >= 100)
    } finally {
      await Promise.all(others.map(async o => { await o.stop() }))
    }
    // 20,000 heartbeats with made-up ids, signed by the rogue
    const refusedBefore = metricValue(await metrics('n1'), 'grid_membership_messages_refused_total', { reason: 'not-author' })
    await rogue.flood(TOPIC, Array.from({ length: 20_000 }, (_, i) => Rogue.heartbeat({ id: `12D3KooWphantom${i}`, name: `phantom-${i}`, inc: 1 })))
    // refused one by one, until n1 bans the rogue for them (src/mesh/misbehaviour.ts): then none reach it at all
    await waitFor('n1 to refuse the flood', async () => {
      const t = await metrics('n1')
      const n = metricValue(t, 'grid_membership_messages_refused_total', { reason: 'not-author' }) - refusedBefore
      if (n >= 1000 || (n > 0 && metricValue(t, 'grid_mesh_peer_bans_total', { reason: 'gossip-invalid' }) >= 1)) return true
      throw new Error(`${n} refused so far`)
    }, { timeoutMs: 120_000 })
    await c.converged()
    for (const n of c.nodes) {
      expect(n.exited).toBe(false)
      expect(Object.keys(await n.states()).sort()).toEqual(['n1', 'n2', 'n3'])
      expect((await n.health()).map(h => h.name).sort()).toEqual(['n1', 'n2', 'n3'])
      const t = await metrics(n.name)
      const peers = ['alive', 'suspect', 'dead', 'left'].reduce((sum, state) => sum + metricValue(t, 'grid_membership_peers', { state }), 0)
      expect(peers).toBe(2)
    }
  }, 240_000)

  it('drops a dead member from every table after membership.deadMemberExpiry, and takes it back when it returns', async () => {
    const n3 = c.node('n3')
    await n3.kill()
    await c.allSee('n3', 'dead', { timeoutMs: 30_000 })
    await waitFor('n1 and n2 to drop n3', async () => {
      for (const n of c.running()) if ((await n.health()).some(h => h.name === 'n3')) return false
      return true
    })
    for (const n of c.running()) {
      expect(metricValue(await metrics(n.name), 'grid_membership_members_expired_total')).toBeGreaterThanOrEqual(1)
      expect(n.logEvents().some(e => e.msg === 'member expired from the member table' && e.name === 'n3')).toBe(true)
    }
    await n3.start()
    await c.converged()
  }, 120_000)
})
