/**
 * A peer that keeps misbehaving (bad RPC frames, invalid notifications, invalid gossip) is scored down for gossip at
 * each strike, then disconnected and refused for a while (src/mesh/misbehaviour.ts); the RPC service reports every
 * bad frame as a strike against the peer that sent it.
 */
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { RPC_PROTOCOL } from '../../proto/index.ts'
import { PEER_STRIKE_GOSSIP_SCORE } from '../../src/mesh/constants.ts'
import { PeerConduct } from '../../src/mesh/misbehaviour.ts'
import { waitFor } from '../helpers/cluster.ts'
import { MemoryNetwork } from './rpc-memory-network.ts'

function conduct (): { c: PeerConduct, hungUp: string[], lines: unknown[], clock: { now: number }, registry: Registry } {
  const hungUp: string[] = []
  const lines: unknown[] = []
  const clock = { now: 1_000_000 }
  const registry = new Registry()
  const c = new PeerConduct({ log: { warn: (o: unknown) => { lines.push(o) } } as never, registry, hangUp: async p => { hungUp.push(p) }, now: () => clock.now }, { strikesMax: 5, windowMs: 10_000, banMs: 60_000 })
  return { c, hungUp, lines, clock, registry }
}

describe('mesh - misbehaving peers', () => {
  it('scores a peer down at each strike, then bans it: disconnected, refused, graylisted, one log line', async () => {
    const { c, hungUp, lines, registry } = conduct()
    for (let i = 1; i <= 4; i++) {
      expect(c.strike('rogue', 'rpc-bad-frame')).toBe(false)
      expect(c.gossipScore('rogue')).toBeCloseTo(i * PEER_STRIKE_GOSSIP_SCORE)
    }
    expect(c.isBanned('rogue')).toBe(false)
    expect(c.strike('rogue', 'rpc-bad-frame')).toBe(true)
    expect(c.isBanned('rogue')).toBe(true)
    // gossipsub weighs the application score by 10: -1000 is far below its graylist threshold (-80)
    expect(c.gossipScore('rogue') * 10).toBeLessThan(-80)
    await waitFor('the hang-up', () => hungUp.length === 1)
    expect(hungUp).toEqual(['rogue'])
    // further strikes while banned neither hang up again nor log again
    c.strike('rogue', 'gossip-invalid')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ peer: 'rogue', reason: 'rpc-bad-frame' })
    expect(c.isBanned('honest')).toBe(false)
    expect(c.gossipScore('honest')).toBe(0)
    const m = await registry.getMetricsAsJSON()
    expect(m.find(x => x.name === 'grid_mesh_peer_bans_total')?.values[0]?.value).toBe(1)
    expect(m.find(x => x.name === 'grid_mesh_peers_banned')?.values[0]?.value).toBe(1)
  })

  it('keeps a peer above gossipsub\'s graylist until the strike that bans it (a graylisted peer\'s gossip goes unseen)', () => {
    const real = new PeerConduct({ log: { warn: () => {} } as never, registry: new Registry(), hangUp: async () => {} })
    for (let i = 1; i < 20; i++) {
      real.strike('rogue', 'gossip-invalid')
      expect(real.gossipScore('rogue') * 10).toBeGreaterThanOrEqual(-80)
    }
    expect(real.strike('rogue', 'gossip-invalid')).toBe(true)
  })

  it('forgets strikes older than the window, and lifts a ban when it ends', () => {
    const { c, clock } = conduct()
    for (let i = 0; i < 4; i++) c.strike('slow', 'rpc-bad-frame')
    clock.now += 10_001
    expect(c.gossipScore('slow')).toBe(0)
    expect(c.strike('slow', 'rpc-bad-frame')).toBe(false)
    for (let i = 0; i < 4; i++) c.strike('slow', 'rpc-bad-frame')
    expect(c.isBanned('slow')).toBe(true)
    clock.now += 60_001
    expect(c.isBanned('slow')).toBe(false)
    expect(c.gossipScore('slow')).toBe(0)
  })

  it('counts each garbage RPC stream as a strike against the peer that sent it', async () => {
    const net = new MemoryNetwork()
    const a = await net.node({})
    const b = await net.node({})
    for (let i = 0; i < 3; i++) {
      const raw = await a.dialProtocol(b.peerId, RPC_PROTOCOL)
      const closed = new Promise(resolve => { raw.addEventListener('close', resolve) })
      // an unknown frame tag; a length prefix past any limit; a frame that is not an array
      raw.send([new Uint8Array([3, 0x92, 0x09, 0x01]), new Uint8Array(8).fill(0xff), new Uint8Array([1, 0x01])][i] as Uint8Array)
      await closed
    }
    expect(b.strikes).toEqual([`${a.id} rpc-bad-frame`, `${a.id} rpc-bad-frame`, `${a.id} rpc-bad-frame`])
    expect(a.strikes).toEqual([])
    await net.stop()
  })
})
