import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { heartbeatTopic, type SessionEntry } from '../../proto/index.ts'
import { Cluster, waitFor } from '../helpers/cluster.ts'
import { fetchMetrics, metricValue } from '../helpers/metrics.ts'
import { Rogue } from '../helpers/rogue.ts'

/** A session value as the sessions collection holds it. */
function session (value: unknown): Record<string, unknown> {
  return { value, owner: null, createdAt: Date.now(), updatedAt: Date.now(), ttlMs: null }
}

function yUpdate (build: (doc: Y.Doc) => void): Uint8Array {
  const doc = new Y.Doc()
  build(doc)
  return Y.encodeStateAsUpdate(doc)
}

describe('a member that sends garbage is dropped, and the daemons run on', () => {
  let c: Cluster
  let rogue: Rogue
  const metrics = async (name: string): Promise<string> => await fetchMetrics(c.node(name).socket)

  beforeAll(async () => {
    c = await Cluster.start(2)
    await c.converged()
    rogue = await Rogue.start(c.swarmKey)
    // the rogue answers catch-up requests with broken updates
    await rogue.answerRpc('state.sync', { updates: [{ w: 'x', g: 0, u: new Uint8Array([9, 9, 9, 9]) }], gens: {}, more: false })
    rogue.subscribe(heartbeatTopic('grid'))
    await rogue.connect(c.node('n1').addrs[0] as string)
    await waitFor('the rogue to be in n1\'s heartbeat topic mesh', () => rogue.hasTopicPeers(heartbeatTopic('grid')))
  })
  afterAll(async () => { await rogue?.stop(); await c?.destroy() })

  it('drops malformed state pushes, and takes state updates only from their writer', async () => {
    const n1 = c.node('n1').id
    await rogue.rpcNotify(n1, 'state.push', [
      { w: 1, g: 'x' },
      rogue.signed(yUpdate(d => d.getMap('sessions').set('spoof', { value: session('spoofed'), stamp: [Date.now(), 0] })), { w: c.node('n2').id }),
      // signed by the rogue as itself, but not plain entries
      rogue.signed(new Uint8Array([1, 2, 3, 250, 251, 252])),
      rogue.signed(yUpdate(d => d.getText('evil').insert(0, 'x'))),
      rogue.signed(yUpdate(d => d.getMap('sessions').set('nested', new Y.Map()))),
      rogue.signed(yUpdate(d => d.getMap('sessions').set('no-stamp', { value: session('x') }))),
      // half named, half one-letter: neither form
      rogue.signed(yUpdate(d => d.getMap('sessions').set('mixed-envelope', { value: session('x'), h: [Date.now(), 0] }))),
      // well-formed, but not signed
      { w: rogue.id, g: rogue.gen, u: yUpdate(d => d.getMap('sessions').set('unsigned', { value: session('x'), stamp: [Date.now(), 0] })) }
    ])
    await waitFor('n1 to count the rejections', async () => {
      const t = await metrics('n1')
      return metricValue(t, 'grid_state_updates_rejected_total', { reason: 'not-writer' }) >= 1 &&
        metricValue(t, 'grid_state_updates_rejected_total', { reason: 'bad-update' }) >= 5 &&
        metricValue(t, 'grid_state_updates_rejected_total', { reason: 'unsigned' }) >= 1 &&
        metricValue(t, 'grid_mesh_rpc_invalid_frames_total') >= 1
    })
    expect(metricValue(await metrics('n2'), 'grid_state_updates_rejected_total')).toBe(0)
    const sessions = (await c.node('n1').api.get<SessionEntry[]>('/sessions')).map(s => s.id)
    expect(sessions).not.toContain('spoof')
    expect(sessions).not.toContain('no-stamp')
    expect(sessions).not.toContain('mixed-envelope')
    expect(sessions).not.toContain('unsigned')
    expect(c.node('n1').logEvents().some(e => e.msg === 'dropped an invalid state update from a peer (logged once a minute per peer and reason)')).toBe(true)
  })

  it('reads a writer\'s entry in the previous release\'s one-letter form, as a node restarted on old data relays it', async () => {
    // (the rogue's refused pushes above left a gap in its records: n1 asks it for them, and its broken catch-up
    // answers are refused as unsigned; what counts here is that the entry itself is not refused)
    const refusals = async (): Promise<number[]> => { const t = await metrics('n1'); return ['bad-update', 'bad-signature', 'future-stamp'].map(reason => metricValue(t, 'grid_state_updates_rejected_total', { reason })) }
    const rejected = await refusals()
    await rogue.pushOwnEntry(c.node('n1').id, 'sessions', 'legacy-entry', session('from the old release'), { legacy: true })
    await waitFor('n1 to show the legacy entry', async () => (await c.node('n1').api.get<SessionEntry[]>('/sessions')).some(s => s.id === 'legacy-entry'))
    const entry = (await c.node('n1').api.get<SessionEntry[]>('/sessions')).find(s => s.id === 'legacy-entry')
    expect(entry?.value).toBe('from the old release')
    expect(await refusals()).toEqual(rejected)
  })

  it('drops a peer\'s broken catch-up answers, also after the peer half-closed a stream it opened', async () => {
    // the rogue closed its side of the stream it pushed on: n1 must not send catch-up requests there (they would
    // never be answered), but open a fresh stream; anti-entropy picks the rogue at random among n1's 2 peers
    const before = metricValue(await metrics('n1'), 'grid_state_updates_rejected_total', { reason: 'unsigned' })
    await waitFor('n1 to reject the rogue\'s sync answer', async () => {
      const t = await metrics('n1')
      if (metricValue(t, 'grid_state_updates_rejected_total', { reason: 'unsigned' }) > before) return true
      throw new Error(`catch-ups so far: ${t.split('\n').filter(l => l.startsWith('grid_state_syncs_total')).join('; ')}`)
    }, { timeoutMs: 90_000 })
    expect(metricValue(await metrics('n1'), 'grid_state_syncs_total', { outcome: 'TIMEOUT' })).toBe(0)
  }, 120_000)

  it('shrugs off forged membership messages: one in another node\'s name is refused, garbage is dropped', async () => {
    const load = { cpu: 0, cpus: 1, memTotalMiB: 1, memFreeMiB: 1, running: 0, queued: 0, slots: 1, freeSlots: 1, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }
    const before = (await c.node('n1').health()).find(h => h.name === 'n2')?.incarnation as number
    await rogue.publish(heartbeatTopic('grid'), { t: 'hb', id: c.node('n2').id, name: 'n2', inc: 1, seq: 1, state: 'left', load, ver: 'x', ts: 0 })
    await rogue.publish(heartbeatTopic('grid'), { t: 'hb', id: rogue.id, name: 'x'.repeat(500) })
    await waitFor('n1 to count the malformed one', async () => metricValue(await metrics('n1'), 'grid_membership_invalid_messages_total') >= 1)
    expect((await c.node('n1').states()).n2).toBe('alive')
    await rogue.publish(heartbeatTopic('grid'), { t: 'notice', kind: 'dead', id: c.node('n2').id, inc: before, by: c.node('n1').id })
    // both speak for another node than their signer (the rogue): n1 refuses them and relays neither
    await waitFor('n1 to refuse the forgeries', async () => metricValue(await metrics('n1'), 'grid_membership_messages_refused_total', { reason: 'not-author' }) >= 2)
    await c.allSee('n2', 'alive')
    expect((await c.node('n1').health()).find(h => h.name === 'n2')?.incarnation).toBe(before)
    expect(metricValue(await metrics('n2'), 'grid_membership_refutations_total')).toBe(0)
  })

  it('rejects a heartbeat and ignores a registry entry whose node name carries escape sequences', async () => {
    const load = { cpu: 0, cpus: 1, memTotalMiB: 1, memFreeMiB: 1, running: 0, queued: 0, slots: 1, freeSlots: 1, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }
    const evil = 'gpu1\u001b]0;owned\u0007\u001b[2J'
    const invalidBefore = metricValue(await metrics('n1'), 'grid_membership_invalid_messages_total')
    await rogue.publish(heartbeatTopic('grid'), { t: 'hb', id: rogue.id, name: evil, inc: 1, seq: 1, state: 'alive', load, ver: 'x', ts: Date.now() })
    await waitFor('n1 to count the heartbeat as invalid', async () => metricValue(await metrics('n1'), 'grid_membership_invalid_messages_total') > invalidBefore)
    await rogue.pushOwnEntry(c.node('n1').id, 'registry', rogue.id, {
      name: evil, addrs: [], region: 'default', labels: {}, capabilities: ['cuda'], gpus: [], version: 'x', drain: false, joinedAt: Date.now(), updatedAt: Date.now()
    })
    await waitFor('n1 to count the registry entry as invalid', async () => metricValue(await metrics('n1'), 'grid_state_registry_entries_invalid_total') >= 1)
    expect(c.node('n1').logEvents().some(e => e.msg === 'ignored an invalid registry entry from a peer (logged once a minute per peer)')).toBe(true)
    const out = (await c.node('n1').ctl(['nodes'])).stdout
    expect(out).not.toContain('\u001b')
    expect(out).not.toContain('owned')
  })

  it('answers gridctl while a local client holds more half-sent requests than the socket\'s connection cap', async () => {
    const held: Socket[] = []
    try {
      // the daemon's cap is 512: the oldest half-sent requests make room for newer ones, gridctl's among them
      for (let i = 0; i < 600; i++) {
        held.push(await new Promise<Socket>((resolve, reject) => {
          const s = connect(c.node('n1').socket)
          s.on('error', () => {})
          s.once('connect', () => { s.write('GET /v1/status HTTP/1.1\r\nHost: gr'); resolve(s) })
          s.once('error', reject)
        }))
      }
      const r = await c.node('n1').ctl(['status'])
      expect(r.code).toBe(0)
      expect(metricValue(await metrics('n1'), 'grid_control_connections_shed_total', { reason: 'evicted' })).toBeGreaterThanOrEqual(1)
    } finally {
      for (const s of held) s.destroy()
    }
  })

  it('resets a stream that carries garbage frames, and answers bad requests with typed errors', async () => {
    const id = c.node('n1').id
    expect(await rogue.rpcGarbage(id, new Uint8Array([5, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1]))).toMatch(/reset|closed/)
    // a length prefix of 100 MB: over the frame limit
    expect(await rogue.rpcGarbage(id, new Uint8Array([0x80, 0xc2, 0xd7, 0x2f, 1, 2, 3]))).toMatch(/reset|closed/)
    expect(await rogue.rpcRequest(id, 'no.such.method', {})).toMatchObject({ type: 'error', error: { code: 'NOT_FOUND' } })
    expect(await rogue.rpcRequest(id, 'member.probe', { target: 5 })).toMatchObject({ type: 'error', error: { code: 'PROTOCOL' } })
    expect(metricValue(await metrics('n1'), 'grid_mesh_rpc_invalid_frames_total')).toBeGreaterThanOrEqual(2)
  })

  it('keeps working for everyone else', async () => {
    await c.node('n1').api.put('/sessions/after-garbage', { value: 'ok' })
    await waitFor('n2 to see the write', async () => (await c.node('n2').api.get<SessionEntry[]>('/sessions')).some(s => s.id === 'after-garbage'))
    for (const n of c.nodes) {
      expect(n.exited).toBe(false)
      expect((await n.states()).n1).toBe('alive')
      expect((await n.states()).n2).toBe('alive')
    }
  })
})
