/**
 * The coordinator against stub components: no daemons, no network. Peers are scripted through a stub RPC that
 * admits, refuses (full) or dies; the replicated store is an in-memory map of one writer's entries.
 */
import pino from 'pino'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { ExecAspect, TaskEvent, TaskOffer, TaskSpec } from '../../proto/index.ts'
import { NotFoundError, PeerUnreachableError, UnavailableError, type LoadReport, type MemberState, type MemberView } from '../../src/interface/index.ts'
import type { NodeRegistry } from '../../src/state/index.ts'
import type { TasksComponents } from '../../src/tasks/components.ts'
import { admitOffer } from '../../src/tasks/admission.ts'
import { Coordinator, type ClientEvent } from '../../src/tasks/coordinator.ts'
import { DispatchLedger } from '../../src/tasks/dispatch-ledger.ts'
import { EventQueue } from '../../src/tasks/event-queue.ts'
import { TaskRecords } from '../../src/tasks/records.ts'
import { taskMetrics } from '../../src/tasks/task-metrics.ts'

type Behaviour = 'accept' | 'full' | 'die' | 'lost-answer' | 'lost-answer-ran'

function load (over: Partial<LoadReport> = {}): LoadReport {
  return { cpu: 0, cpus: 2, memTotalMiB: 4096, memFreeMiB: 4000, running: 0, queued: 0, slots: 2, freeSlots: 2, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0, ...over }
}

function member (id: string, state: MemberState = 'alive'): MemberView {
  return { id, name: id, state, selfState: 'alive', incarnation: 1, lastSeen: Date.now(), load: load(), since: 0, history: [] }
}

function spec (over: Partial<TaskSpec> = {}): TaskSpec {
  return { command: ['true'], cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, priority: 50, retries: 3, retryOnFailure: false, env: {}, strategy: 'least-loaded', ...over }
}

function harness (peers: Record<string, Behaviour>, standby: { hold: (co: { id: string }) => Promise<string | undefined> } = { hold: async () => undefined }) {
  const behaviour = { ...peers }
  const states = new Map<string, MemberState>(Object.keys(peers).map(p => [p, 'alive']))
  const entries = new Map<string, { key: string, value: unknown, writer: string, stamp: [number, number] }>()
  let tick = 0
  const store = {
    selfId: 'self',
    set: (collection: string, key: string, value: unknown) => {
      const stamp: [number, number] = [Date.now(), tick++]
      if (collection === 'tasks') entries.set(key, { key, value, writer: 'self', stamp })
      return stamp
    },
    entryOf: (_w: string, collection: string, key: string) => (collection === 'tasks' ? entries.get(key) : undefined),
    lookupAll: (collection: string, key: string) => (collection === 'tasks' && entries.has(key) ? [entries.get(key)] : []),
    groupAll: () => new Map([...entries].map(([k, e]) => [k, [e]])),
    setCollector: () => {},
    on: () => {},
    off: () => {}
  }
  const sessions = new Map<string, { value: unknown, owner: string | null }>()
  const offers: Array<{ node: string, offer: TaskOffer }> = []
  const cancels: string[] = []
  const attaches: string[] = []
  const c = {
    peerId: 'self',
    rpc: {
      handle: () => {},
      request: async (node: string, method: { name: string }, data: unknown, opts: { onEvent?: (e: TaskEvent) => void }) => {
        if (method.name === 'task.cancel') { cancels.push(node); return { found: true, status: 'cancelled' } }
        const b0 = behaviour[node]
        if (method.name === 'task.attach' && (b0 === 'lost-answer' || b0 === 'lost-answer-ran')) {
          const { id, attempt } = data as { id: string, attempt: number }
          attaches.push(node)
          // the offer never landed there, or it did and the attempt ran
          if (b0 === 'lost-answer') throw new NotFoundError(`this node has no attempt ${attempt} of task ${id}`)
          const now = Date.now()
          return { attempt, node, nodeName: node, status: 'completed', exitCode: 0, queuedAt: now, startedAt: now, finishedAt: now } satisfies ExecAspect
        }
        const offer = data as TaskOffer
        offers.push({ node, offer })
        const b = behaviour[node]
        if (b === 'full') throw new UnavailableError('full (2 running, 0 queued, 0 slots free)', { details: { full: true } })
        // the stream broke before the coordinator heard whether it admitted the offer
        if (b === 'lost-answer' || b === 'lost-answer-ran') throw new PeerUnreachableError(`stream to ${node} closed`)
        opts.onEvent?.({ k: 'admitted', queued: false, node, nodeName: node })
        if (b === 'die') {
          states.set(node, 'dead')
          throw new PeerUnreachableError(`connection to ${node} closed`)
        }
        const now = Date.now()
        const result: ExecAspect = { attempt: offer.attempt, node, nodeName: node, status: 'completed', exitCode: 0, queuedAt: now, startedAt: now, finishedAt: now }
        return result
      }
    },
    members: {
      view: () => [...states].map(([id, s]) => member(id, s)),
      state: (id: string) => states.get(id),
      on: () => {},
      off: () => {},
      setSelfState: () => {}
    },
    store,
    nodeRegistry: { get: () => undefined } as unknown as NodeRegistry,
    sessions: {
      get: (id: string) => { const s = sessions.get(id); return s === undefined ? undefined : { id, ...s, createdAt: '', updatedAt: '', ttlMs: null, expiresAt: null, writer: 'self' } },
      put: (id: string, value: unknown, o: { owner?: string | null } = {}) => { sessions.set(id, { value, owner: o.owner ?? null }); return undefined as never }
    },
    executor: {},
    logger: pino({ level: 'silent' }),
    registry: new Registry()
  } as unknown as TasksComponents
  const records = new TaskRecords(store as unknown as ConstructorParameters<typeof TaskRecords>[0])
  const metrics = taskMetrics(c.registry, { running: () => 0, queued: () => 0, coordinating: () => 0 })
  const coordinator = new Coordinator(c, { nodeName: 'self', region: '', retentionMs: 60_000 }, records, metrics, c.logger, standby)
  coordinator.running = true

  async function submit (s: TaskSpec): Promise<ClientEvent[]> {
    const id = `t${Math.random().toString(36).slice(2)}`
    const co = coordinator.track(id, { spec: s, origin: 'self', originName: 'self', coordinator: 'self', attempt: 1, createdAt: Date.now() })
    co.sink = new EventQueue<ClientEvent>()
    await coordinator.drive(co)
    const events: ClientEvent[] = []
    for await (const ev of co.sink) events.push(ev)
    return events
  }
  return { submit, sessions, offers, cancels, attaches, states, behaviour, records, coordinator, metrics }
}

const exitOf = (events: ClientEvent[]): Extract<ClientEvent, { type: 'exit' }> => events.find(e => e.type === 'exit') as Extract<ClientEvent, { type: 'exit' }>

describe('tasks - coordinator', () => {
  it('re-attaches to an executor whose death was declared and refuted a moment later, instead of running the task again', async () => {
    // found by the chaos harness: after a partition healed, a stale "declared dead" notice reached a node that had just
    // taken the task over; it retried at once, and the task ran twice
    const h = harness({ a: 'accept' })
    h.states.set('a', 'dead')
    setTimeout(() => { h.states.set('a', 'alive') }, 300)
    const co = h.coordinator.track('t-flap', { spec: spec(), origin: 'self', originName: 'self', coordinator: 'self', attempt: 1, createdAt: Date.now() })
    const outcome = await h.coordinator.reattach(co, 'a')
    expect(outcome).toMatchObject({ kind: 'done', result: { status: 'completed', node: 'a' } })
  })

  it('gives the next candidate a new attempt, and asks the first to drop it, when an offer failed on the way', async () => {
    // found by the chaos harness: a starved node admitted an offer whose answer never came; the next candidate ran the
    // same attempt, the starved node's copy was stolen later, and the two executions of attempt 1 left it pending
    const h = harness({ a: 'lost-answer', b: 'accept' })
    const events = await h.submit(spec({ strategy: 'round-robin', node: undefined }))
    const byNode = h.offers.map(o => [o.node, o.offer.attempt])
    expect(byNode.filter(([n]) => n === 'b').at(-1)?.[1]).toBeGreaterThan(byNode.find(([n]) => n === 'a')?.[1] as number)
    expect(h.cancels).toContain('a')
    // first it asked a whether it had the attempt (it had not)
    expect(h.attaches).toEqual(['a'])
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'b' })
  })

  it('re-attaches to an offer that failed on the way but was admitted, and runs no other attempt (issue 13)', async () => {
    // found by the chaos harness: the coordinator gave such an offer up at once, and the executor ran it beside the next
    const h = harness({ a: 'lost-answer-ran', b: 'accept' })
    const events = await h.submit(spec({ strategy: 'round-robin', node: undefined }))
    expect(h.offers.map(o => o.node)).toEqual(['a'])
    expect(h.attaches).toEqual(['a'])
    expect(h.cancels).toEqual([])
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'a', attempts: 1 })
  })

  it('offers nothing while its would-be successor does not let it go on, then runs the first attempt (issue 13)', async () => {
    // found by the chaos harness: a coordinator woken from SIGSTOP retried at once, while its successor, still seeing
    // it dead, took the task over a moment later and ran the same attempt again
    let refusals = 0
    const offersAtGrant: number[] = []
    const h = harness({ a: 'accept' }, {
      hold: async () => {
        if (refusals < 2) { refusals++; return 'its would-be successor b did not confirm it may go on: b sees self dead' }
        offersAtGrant.push(h.offers.length)
        return undefined
      }
    })
    const events = await h.submit(spec({ node: 'a' }))
    expect(offersAtGrant).toEqual([0])
    expect(events.filter(e => e.type === 'waiting').map(e => (e as { reason: string }).reason)).toEqual([
      'its would-be successor b did not confirm it may go on: b sees self dead',
      'its would-be successor b did not confirm it may go on: b sees self dead'
    ])
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'a', attempts: 1 })
  })

  it('stops driving a task taken over while its would-be successor held it back, and offers nothing', async () => {
    const h = harness({ a: 'accept' }, {
      hold: async co => {
        // the successor took it over meanwhile: the records say so with a later generation
        h.records.writeCoord(co.id, { spec: spec(), origin: 'self', originName: 'self', coordinator: 'b', attempt: 1, createdAt: Date.now(), generation: 1 })
        return 'its would-be successor b did not confirm it may go on: node b took it over'
      }
    })
    const co = h.coordinator.track('t-taken', { spec: spec({ node: 'a' }), origin: 'self', originName: 'self', coordinator: 'self', attempt: 1, createdAt: Date.now() })
    await h.coordinator.drive(co)
    expect(h.offers).toEqual([])
    expect((await h.metrics.handedOver.get()).values[0]?.value).toBe(1)
  })

  it('gives up re-attaching to an executor that stays dead, so the task runs again', async () => {
    const h = harness({ a: 'accept' })
    h.states.set('a', 'dead')
    const co = h.coordinator.track('t-dead', { spec: spec(), origin: 'self', originName: 'self', coordinator: 'self', attempt: 1, createdAt: Date.now() })
    expect(await h.coordinator.reattach(co, 'a')).toMatchObject({ kind: 'retry', reason: 'node a died while the task ran' })
  })

  it('offers the task to the next candidate when one refuses, and the exit names the node that ran it', async () => {
    const h = harness({ a: 'full', b: 'full', c: 'accept' })
    const events = await h.submit(spec({ strategy: 'round-robin' }))
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'c', attempts: 1 })
    expect(h.offers.map(o => o.node).at(-1)).toBe('c')
  })

  it('gives a session with no owner the node that accepted its task, not the first candidate', async () => {
    const h = harness({ a: 'full', b: 'full', c: 'accept' })
    const events = await h.submit(spec({ strategy: 'affinity', session: 's' }))
    expect(h.sessions.get('s')?.owner).toBe('c')
    expect(events.filter(e => e.type === 'rehomed')).toMatchObject([{ type: 'rehomed', session: 's', from: null, to: 'c', reason: 'no-owner' }])
  })

  it('keeps a session on its owner while it accepts, asking it to start the task now', async () => {
    const h = harness({ a: 'accept', b: 'accept', c: 'accept' })
    h.sessions.set('s', { value: null, owner: 'b' })
    for (let i = 0; i < 5; i++) {
      const events = await h.submit(spec({ strategy: 'affinity', session: 's' }))
      expect(exitOf(events).nodeName).toBe('b')
      expect(events.some(e => e.type === 'rehomed')).toBe(false)
    }
    expect(h.offers.every(o => o.node === 'b' && o.offer.startNow === true)).toBe(true)
  })

  it('moves a session whose owner is full to the node that accepts, saying so', async () => {
    const h = harness({ a: 'accept', b: 'full', c: 'accept' })
    h.sessions.set('s', { value: null, owner: 'b' })
    const events = await h.submit(spec({ strategy: 'affinity', session: 's' }))
    const moved = events.find(e => e.type === 'rehomed')
    expect(moved).toMatchObject({ from: 'b', reason: 'full' })
    expect(moved?.type === 'rehomed' && moved.message).toContain('its owner b cannot start it now')
    expect(h.sessions.get('s')?.owner).toBe(exitOf(events).node)
    expect(exitOf(events).node).not.toBe('b')
  })

  it('retries on another node when the executor dies, counting the attempt', async () => {
    const h = harness({ a: 'die', b: 'accept' })
    // a is the freer node, so it is chosen first
    const events = await h.submit(spec({ strategy: 'round-robin', retries: 2 }))
    const retry = events.find(e => e.type === 'retry')
    expect(retry).toMatchObject({ attempt: 2 })
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'b', attempts: 2 })
    expect(h.offers.map(o => o.offer.attempt)).toEqual([1, 2])
  })

  it('gives up when the attempts run out', async () => {
    const h = harness({ a: 'die' })
    const events = await h.submit(spec({ retries: 0 }))
    expect(exitOf(events)).toMatchObject({ status: 'failed', code: 1, attempts: 1 })
    expect(exitOf(events).error).toMatch(/^gave up after 1 attempt: node a died while the task ran/)
  })

  it('waits while no node can run the task, and places it once one comes back', async () => {
    const h = harness({ a: 'accept' })
    h.states.set('a', 'suspect')
    setTimeout(() => { h.states.set('a', 'alive') }, 300)
    const events = await h.submit(spec())
    expect(events.find(e => e.type === 'waiting')).toMatchObject({ reason: 'no node can run it now: the only node that can run it, a, is suspect' })
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'a', attempts: 1 })
  })

  it('says why it waits, in the stream and in the record, while every node refuses it, and forgets the reason once placed', async () => {
    const h = harness({ a: 'full' })
    let whileWaiting: string | undefined
    setTimeout(() => { whileWaiting = h.records.list()[0]?.reason; h.behaviour.a = 'accept' }, 150)
    const events = await h.submit(spec())
    expect(events.find(e => e.type === 'waiting')).toMatchObject({ reason: 'every node that can run it refused it now: full (2 running, 0 queued, 0 slots free)' })
    expect(whileWaiting).toBe('every node that can run it refused it now: full (2 running, 0 queued, 0 slots free)')
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'a' })
    expect(h.records.own(h.records.list()[0]?.id ?? '').coord?.reason).toBeUndefined()
  })

  it('forgets a dispatch once the task has ended, so the next routing sees the node free', async () => {
    const h = harness({ a: 'accept' })
    await h.submit(spec())
    expect(h.coordinator.ledger.outstanding('a')).toBe(0)
  })
})

describe('tasks - secrets in a task\'s environment', () => {
  it('writes the names of its env into the coordinator aspect, never the values, and offers the values to the executor', async () => {
    const h = harness({ a: 'die', b: 'accept' })
    // a dies mid-task: the retry rewrites the coordinator aspect, and the second offer still carries the values
    const events = await h.submit(spec({ strategy: 'round-robin', retries: 2, env: { SECRET_TOKEN: 's3cr3t-value-xyz', MODE: 'fast' } }))
    expect(exitOf(events)).toMatchObject({ status: 'completed', attempts: 2 })
    const id = h.records.list()[0]?.id ?? ''
    const coord = h.records.own(id).coord
    expect(coord?.attempt).toBe(2)
    expect(coord?.spec.envNames).toEqual(['SECRET_TOKEN', 'MODE'])
    expect(coord?.spec.env).toBeUndefined()
    expect(JSON.stringify(h.records.own(id))).not.toContain('s3cr3t-value-xyz')
    expect(h.records.get(id)?.envNames).toEqual(['SECRET_TOKEN', 'MODE'])
    expect(h.offers.map(o => o.offer.spec.env.SECRET_TOKEN)).toEqual(['s3cr3t-value-xyz', 's3cr3t-value-xyz'])
  })

  it('fails a task taken over from its record when it had env values and must be placed, naming the variables', async () => {
    const h = harness({ a: 'accept' })
    const { env: _values, ...rest } = spec({ env: { SECRET_TOKEN: 'x', MODE: 'y' } })
    const co = h.coordinator.track('t-orphan', { spec: { ...rest, envNames: ['SECRET_TOKEN', 'MODE'] }, origin: 'gone', originName: 'n1', coordinator: 'self', attempt: 1, createdAt: Date.now() })
    co.sink = new EventQueue<ClientEvent>()
    await h.coordinator.drive(co)
    const events: ClientEvent[] = []
    for await (const ev of co.sink) events.push(ev)
    expect(exitOf(events)).toMatchObject({ status: 'failed', code: 1 })
    expect(exitOf(events).error).toBe('cannot place it: its environment (SECRET_TOKEN, MODE) was held only by its origin n1, which died; resubmit it')
    expect(h.offers).toEqual([])
  })

  it('places a task taken over from its record as before when it had no env', async () => {
    const h = harness({ a: 'accept' })
    const { env: _none, ...rest } = spec()
    const co = h.coordinator.track('t-plain', { spec: rest, origin: 'gone', originName: 'n1', coordinator: 'self', attempt: 1, createdAt: Date.now() })
    co.sink = new EventQueue<ClientEvent>()
    await h.coordinator.drive(co)
    const events: ClientEvent[] = []
    for await (const ev of co.sink) events.push(ev)
    expect(exitOf(events)).toMatchObject({ status: 'completed', nodeName: 'a' })
    expect(h.offers[0]?.offer.spec.env).toEqual({})
  })
})

describe('tasks - dispatch ledger', () => {
  it('counts what was sent after the last report and has not ended', () => {
    let now = 1_000
    const l = new DispatchLedger(() => now)
    l.sent('a', 't1')
    now = 1_100
    l.sent('a', 't2')
    expect(l.unreported('a', 0)).toBe(2)
    // a report received at 1,500 includes both
    expect(l.unreported('a', 1_500)).toBe(0)
    expect(l.outstanding('a')).toBe(2)
    l.ended('t1')
    expect(l.outstanding('a')).toBe(1)
    // a retry's new offer elsewhere replaces the old one
    l.sent('b', 't2')
    expect(l.outstanding('a')).toBe(0)
    expect(l.unreported('b', 0)).toBe(1)
  })
})

describe('tasks - admitting an offer', () => {
  const offer = (startNow: boolean): TaskOffer => ({ id: 't1', spec: spec(), attempt: 1, origin: 'o', coordinator: 'o', ...(startNow ? { startNow } : {}) })
  const executor = (freeSlots: number, queued = 0) => ({
    usage: () => ({ running: 2 - freeSlots, queued, freeSlots, freeGpus: 0, freeMemoryBytes: 1 << 30, done: 0, failed: 0 }),
    admit: () => ({ queued: freeSlots === 0 })
  })
  const watcher = { primary: true, event: () => true, drain: async () => {}, done: () => {} }

  it('refuses an offer that must start now when the node is full, with a code the origin can act on', () => {
    const c = { executor: executor(0) } as unknown as Pick<TasksComponents, 'executor'>
    expect(() => admitOffer(c, offer(true), watcher)).toThrow(expect.objectContaining({ code: 'UNAVAILABLE', details: { full: true } }))
    // without startNow the same node queues it
    expect(admitOffer(c, offer(false), watcher)).toEqual({ queued: true })
  })

  it('refuses to start now behind a queue, and accepts when a slot is free', () => {
    expect(() => admitOffer({ executor: executor(1, 1) } as unknown as Pick<TasksComponents, 'executor'>, offer(true), watcher)).toThrow(/full \(1 running, 1 queued/)
    expect(admitOffer({ executor: executor(1) } as unknown as Pick<TasksComponents, 'executor'>, offer(true), watcher)).toEqual({ queued: false })
  })
})
