/**
 * Fencing a takeover (issue 13): the would-be successor's lease (`task.standby`). A coordinator sure of itself asks
 * nothing; one that stalled lately, or saw its successor cut off, asks and goes on only on a grant; the successor
 * grants only while it sees the coordinator alive and has not taken the task over, and then holds its takeover.
 */
import { EventEmitter } from 'node:events'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { CutOffs } from '../../src/tasks/cut-offs.ts'
import { STANDBY_LEASE_MS, STANDBY_MARGIN_MS, Standby } from '../../src/tasks/standby.ts'
import type { TasksComponents } from '../../src/tasks/components.ts'

interface Answer { granted: boolean, leaseMs?: number, reason?: string }

function standby (opts: { states?: Record<string, string>, answer?: () => Promise<Answer>, coord?: Record<string, unknown> } = {}): { s: Standby, asked: string[], stall: { at: number }, members: EventEmitter, cutOffs: CutOffs } {
  const asked: string[] = []
  const stall = { at: -Infinity }
  const members = new EventEmitter()
  const states = opts.states ?? {}
  const c = {
    peerId: 'coord',
    rpc: {
      handle: () => {},
      request: async (peer: string) => { asked.push(peer); return await (opts.answer ?? (async () => ({ granted: true, leaseMs: STANDBY_LEASE_MS })))() }
    },
    members: Object.defineProperty(Object.assign(members, {
      state: (id: string) => states[id] ?? 'alive',
      view: () => ['coord', 'heir'].map(id => ({ id, state: states[id] ?? 'alive' }))
    }), 'lastStallAt', { get: () => stall.at }),
    nodeRegistry: { get: () => undefined }
  } as unknown as Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'nodeRegistry'>
  const cutOffs = new CutOffs(c.members)
  cutOffs.start()
  const records = { aspects: () => (opts.coord === undefined ? { cancelRequested: false } : { cancelRequested: false, coord: { writer: 'heir', aspect: opts.coord } }) }
  return { s: new Standby(c, records as never, cutOffs, pino({ level: 'silent' }), 'coord'), asked, stall, members, cutOffs }
}

const co = { id: 't1', coord: { spec: {}, origin: 'coord', originName: 'coord', coordinator: 'coord', attempt: 2, createdAt: 0 } } as never

describe('standby lease', () => {
  it('a coordinator sure of itself asks nothing', async () => {
    const { s, asked, cutOffs } = standby()
    expect(await s.hold(co)).toBeUndefined()
    expect(asked).toEqual([])
    cutOffs.stop()
  })

  it('after a stall, or after seeing its successor cut off, it asks, and goes on only on a grant in time', async () => {
    const stalled = standby({ answer: async () => ({ granted: false, reason: 'heir sees coord dead, and may take its tasks over' }) })
    stalled.stall.at = performance.now() - 2_000
    expect(await stalled.s.hold(co)).toContain('heir sees coord dead')
    expect(stalled.asked).toEqual(['heir'])
    const cut = standby()
    cut.members.emit('member:state', { id: 'heir', from: 'alive', to: 'suspect' })
    cut.members.emit('member:state', { id: 'heir', from: 'suspect', to: 'alive' })
    expect(await cut.s.hold(co)).toBeUndefined()
    expect(cut.asked).toEqual(['heir'])
    const slow = standby({ answer: async () => ({ granted: true, leaseMs: 10 }) })
    slow.stall.at = performance.now()
    // a grant whose lease ran out on the way back does not let it go on
    const late = slow.s.hold(co)
    const t0 = performance.now(); while (performance.now() - t0 < 30) { /* the loop is busy: the answer is read late */ }
    expect(await late).toContain('ran out before its answer came')
    for (const x of [stalled, cut, slow]) x.cutOffs.stop()
  })

  it('the successor grants only while it sees the coordinator alive and has not taken the task over, then holds its takeover', () => {
    const { s, cutOffs } = standby({ states: { asker: 'alive' } })
    expect(s.promisedFor('asker')).toBe(0)
    expect(s.grant('t1', 0, 'asker')).toEqual({ granted: true, leaseMs: STANDBY_LEASE_MS })
    expect(s.promisedFor('asker')).toBeGreaterThan(STANDBY_LEASE_MS)
    expect(s.promisedFor('asker')).toBeLessThanOrEqual(STANDBY_LEASE_MS + STANDBY_MARGIN_MS)
    expect(standby({ states: { asker: 'dead' } }).s.grant('t1', 0, 'asker')).toMatchObject({ granted: false, reason: 'coord sees asker dead, and may take its tasks over' })
    const taken = standby({ coord: { spec: {}, origin: 'asker', originName: 'asker', coordinator: 'heir', attempt: 1, createdAt: 0, generation: 1 } })
    expect(taken.s.grant('t1', 0, 'asker')).toMatchObject({ granted: false, reason: 'node heir took task t1 over' })
    cutOffs.stop()
    taken.cutOffs.stop()
  })
})
