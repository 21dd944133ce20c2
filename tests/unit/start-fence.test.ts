/**
 * The start fence (issue 13): which starts ask their coordinator first (queued, a late offer, a coordinator seen
 * suspect or dead lately), which start at once (a fresh offer), and what the answer does.
 */
import { EventEmitter } from 'node:events'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { ExecTask } from '../../src/executor/index.ts'
import { StartFence, CONFIRM_ASKS, CONFIRM_LEASE_MS, OFFER_FRESH_MS, type NotCurrent } from '../../src/tasks/start-fence.ts'
import { CutOffs } from '../../src/tasks/cut-offs.ts'
import type { TasksComponents } from '../../src/tasks/components.ts'
import { spec } from './executor-fixtures.ts'

interface Fenced { f: StartFence, asked: string[], members: EventEmitter, cutOffs: CutOffs, stall: { at: number }, served: (req: { id: string, attempt: number }, peer: string) => unknown }

function fence (answer: { current: boolean, reason?: string } | Error | (() => Promise<{ current: boolean }>), states: Record<string, string> = {}): Fenced {
  const asked: string[] = []
  const members = new EventEmitter()
  const stall = { at: -Infinity }
  let handler: ((req: { id: string, attempt: number }, ctx: { peer: string }) => unknown) | undefined
  const c = {
    peerId: 'executor',
    rpc: {
      handle: (_m: unknown, h: typeof handler) => { handler = h },
      request: async (peer: string) => { asked.push(peer); if (answer instanceof Error) throw answer; return typeof answer === 'function' ? await answer() : answer }
    },
    members: Object.defineProperty(Object.assign(members, { state: (id: string) => states[id] ?? 'alive', view: () => [] }), 'lastStallAt', { get: () => stall.at }),
    store: { syncFrom: async () => {} },
    nodeRegistry: { get: () => undefined }
  } as unknown as Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'store' | 'nodeRegistry'>
  const notCurrent: NotCurrent = (id, attempt, executor) => attempt === 2 && executor === 'executor' ? undefined : `attempt ${attempt} given up`
  const cutOffs = new CutOffs(c.members)
  cutOffs.start()
  const f = new StartFence(c, { aspects: () => ({ cancelRequested: false }) } as never, cutOffs, pino({ level: 'silent' }), notCurrent)
  return { f, asked, members, cutOffs, stall, served: async (req, peer) => await handler?.(req, { peer }) }
}

const offer = (over: Partial<ExecTask> = {}): ExecTask => ({ id: 't1', attempt: 1, spec: spec(), origin: 'coord', coordinator: 'coord', sentAt: Date.now(), ...over })
const fresh = { waited: false, admittedAt: performance.now() }

describe('start fence', () => {
  it('starts a fresh offer from a live coordinator at once', () => {
    const { asked, f, cutOffs } = fence({ current: true })
    expect(f.gate(offer(), fresh)).toBeUndefined()
    expect(asked).toEqual([])
    cutOffs.stop()
  })

  it('asks the coordinator before a queued start, a late offer, or one from a coordinator seen suspect lately', async () => {
    const { f, asked, members, cutOffs } = fence({ current: false, reason: 'its coordinator coord is at attempt 2 of it' })
    expect(await f.gate(offer(), { waited: true, admittedAt: performance.now() })).toBe('its coordinator coord is at attempt 2 of it')
    expect(await f.gate(offer({ sentAt: Date.now() - OFFER_FRESH_MS - 1_000 }), fresh)).toContain('attempt 2')
    members.emit('member:state', { id: 'coord', from: 'alive', to: 'suspect' })
    members.emit('member:state', { id: 'coord', from: 'suspect', to: 'alive' })
    expect(await f.gate(offer(), fresh)).toContain('attempt 2')
    expect(asked).toEqual(['coord', 'coord', 'coord'])
    cutOffs.stop()
  })

  it('a yes starts it; no answer gives it up', async () => {
    expect(await fence({ current: true }).f.gate(offer(), { waited: true, admittedAt: 0 })).toBeUndefined()
    const why = await fence(new Error('stream closed')).f.gate(offer(), { waited: true, admittedAt: 0 })
    expect(why).toContain('could not confirm it is still current: stream closed')
  })

  it('answers task.confirm from the coordinator side', async () => {
    const { served, cutOffs } = fence({ current: true })
    expect(await served({ id: 't1', attempt: 2 }, 'executor')).toEqual({ current: true })
    expect(await served({ id: 't1', attempt: 1 }, 'executor')).toEqual({ current: false, reason: 'attempt 1 given up' })
    cutOffs.stop()
  })

  it('asks before a start around a stall of its own event loop (LocalHealth\'s sampler)', async () => {
    const { f, asked, stall, cutOffs } = fence({ current: true })
    const admittedAt = performance.now()
    stall.at = admittedAt - 1_000
    expect(await f.gate(offer(), { waited: false, admittedAt })).toBeUndefined()
    expect(asked).toEqual(['coord'])
    cutOffs.stop()
  })

  it('a yes that comes after its lease is asked again, and never starts it when every yes comes late', async () => {
    // issue 13: a starved executor heard yes while its coordinator saw it only suspect, and started seconds later,
    // after the coordinator had given the attempt up and run it elsewhere
    let late = true
    const slow = async (): Promise<{ current: boolean }> => {
      if (late) await new Promise(resolve => setTimeout(resolve, CONFIRM_LEASE_MS + 100))
      return { current: true }
    }
    const once = fence(async () => { const r = await slow(); late = false; return r })
    expect(await once.f.gate(offer(), { waited: true, admittedAt: 0 })).toBeUndefined()
    expect(once.asked).toEqual(['coord', 'coord'])
    late = true
    const always = fence(slow)
    const why = await always.f.gate(offer(), { waited: true, admittedAt: 0 })
    expect(why).toContain(`came after its lease of ${CONFIRM_LEASE_MS} ms`)
    expect(always.asked).toHaveLength(CONFIRM_ASKS)
    once.cutOffs.stop()
    always.cutOffs.stop()
  }, 20_000)
})
