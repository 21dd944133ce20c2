/**
 * The start fence (issue 13): which starts ask their coordinator first (queued, a late offer, a coordinator seen
 * suspect or dead lately), which start at once (a fresh offer), and what the answer does.
 */
import { EventEmitter } from 'node:events'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { ExecTask } from '../../src/executor/index.ts'
import { StartFence, OFFER_FRESH_MS, type NotCurrent } from '../../src/tasks/start-fence.ts'
import type { TasksComponents } from '../../src/tasks/components.ts'
import { spec } from './executor-fixtures.ts'

function fence (answer: { current: boolean, reason?: string } | Error, states: Record<string, string> = {}): { f: StartFence, asked: string[], members: EventEmitter, served: (req: { id: string, attempt: number }, peer: string) => unknown } {
  const asked: string[] = []
  const members = new EventEmitter()
  let handler: ((req: { id: string, attempt: number }, ctx: { peer: string }) => unknown) | undefined
  const c = {
    peerId: 'executor',
    rpc: {
      handle: (_m: unknown, h: typeof handler) => { handler = h },
      request: async (peer: string) => { asked.push(peer); if (answer instanceof Error) throw answer; return answer }
    },
    members: Object.assign(members, { state: (id: string) => states[id] ?? 'alive', view: () => [] }),
    store: { syncFrom: async () => {} },
    nodeRegistry: { get: () => undefined }
  } as unknown as Pick<TasksComponents, 'peerId' | 'rpc' | 'members' | 'store' | 'nodeRegistry'>
  const notCurrent: NotCurrent = (id, attempt, executor) => attempt === 2 && executor === 'executor' ? undefined : `attempt ${attempt} given up`
  const f = new StartFence(c, { aspects: () => ({ cancelRequested: false }) } as never, pino({ level: 'silent' }), notCurrent)
  f.start()
  return { f, asked, members, served: (req, peer) => handler?.(req, { peer }) }
}

const offer = (over: Partial<ExecTask> = {}): ExecTask => ({ id: 't1', attempt: 1, spec: spec(), origin: 'coord', coordinator: 'coord', sentAt: Date.now(), ...over })
const fresh = { waited: false, admittedAt: performance.now() }

describe('start fence', () => {
  it('starts a fresh offer from a live coordinator at once', () => {
    const { f, asked } = fence({ current: true })
    expect(f.gate(offer(), fresh)).toBeUndefined()
    expect(asked).toEqual([])
    f.stop()
  })

  it('asks the coordinator before a queued start, a late offer, or one from a coordinator seen suspect lately', async () => {
    const { f, asked, members } = fence({ current: false, reason: 'its coordinator coord is at attempt 2 of it' })
    expect(await f.gate(offer(), { waited: true, admittedAt: performance.now() })).toBe('its coordinator coord is at attempt 2 of it')
    expect(await f.gate(offer({ sentAt: Date.now() - OFFER_FRESH_MS - 1_000 }), fresh)).toContain('attempt 2')
    members.emit('member:state', { id: 'coord', from: 'alive', to: 'suspect' })
    members.emit('member:state', { id: 'coord', from: 'suspect', to: 'alive' })
    expect(await f.gate(offer(), fresh)).toContain('attempt 2')
    expect(asked).toEqual(['coord', 'coord', 'coord'])
    f.stop()
  })

  it('a yes starts it; no answer gives it up', async () => {
    expect(await fence({ current: true }).f.gate(offer(), { waited: true, admittedAt: 0 })).toBeUndefined()
    const why = await fence(new Error('stream closed')).f.gate(offer(), { waited: true, admittedAt: 0 })
    expect(why).toContain('could not confirm it is still current: stream closed')
  })

  it('answers task.confirm from the coordinator side', () => {
    const { f, served } = fence({ current: true })
    expect(served({ id: 't1', attempt: 2 }, 'executor')).toEqual({ current: true })
    expect(served({ id: 't1', attempt: 1 }, 'executor')).toEqual({ current: false, reason: 'attempt 1 given up' })
    f.stop()
  })
})
