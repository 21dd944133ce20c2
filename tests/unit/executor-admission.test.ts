import { afterEach, describe, expect, it } from 'vitest'
import { AdmissionQueue } from '../../src/executor/index.ts'
import { UnavailableError, UnsatisfiableError } from '../../src/interface/index.ts'
import { gpu, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

const SLEEP = ['sleep', '30']

describe('executor - admission queue', () => {
  it('hands items out highest priority first, in arrival order within a priority', () => {
    const q = new AdmissionQueue<{ name: string, priority: number }>(10)
    for (const [name, priority] of [['a', 1], ['b', 5], ['c', 5], ['d', 3], ['e', 1]] as const) q.push({ name, priority })
    const order: string[] = []
    q.drain(() => true, item => { order.push(item.name) })
    expect(order).toEqual(['b', 'c', 'd', 'a', 'e'])
    expect(q.length).toBe(0)
  })

  it('leaves what does not fit in place, and lets what fits behind it go first', () => {
    const q = new AdmissionQueue<{ name: string, priority: number, size: number }>(10)
    q.push({ name: 'big', priority: 9, size: 4 })
    q.push({ name: 'small', priority: 1, size: 1 })
    const started: string[] = []
    q.drain(i => i.size <= 2, i => { started.push(i.name) })
    expect(started).toEqual(['small'])
    expect(q.length).toBe(1)
    expect(q.shift()?.name).toBe('big')
  })

  it('says when it is full', () => {
    const q = new AdmissionQueue<{ priority: number }>(2)
    q.push({ priority: 0 })
    expect(q.full).toBe(false)
    q.push({ priority: 0 })
    expect(q.full).toBe(true)
  })
})

describe('executor - admission', () => {
  let t: TestExecutor | undefined
  afterEach(async () => { await t?.executor.stop(); t = undefined })

  it('starts a task that fits now, and queues one that does not', async () => {
    t = testExecutor({ slots: 1 })
    t.executor.start()
    expect(t.executor.admit(task('blocker', { command: SLEEP }))).toEqual({ queued: false })
    expect(t.executor.admit(task('next'))).toEqual({ queued: true })
    expect(t.executor.usage()).toMatchObject({ running: 1, queued: 1, freeSlots: 0 })
    // a queued task is recorded as pending on this node at once
    expect(t.states.find(s => s.id === 'next')?.state).toMatchObject({ status: 'pending', nodeName: 'unit' })
    await t.running('blocker')
    t.executor.cancel('blocker')
    expect(await t.ended('next')).toMatchObject({ status: 'completed', exitCode: 0 })
  })

  it('says why a queued task waits: how many are ahead and which resource it lacks, and drops the reason once it runs', async () => {
    t = testExecutor({ slots: 1 })
    t.executor.start()
    t.executor.admit(task('blocker', { command: SLEEP }))
    t.executor.admit(task('second'))
    t.executor.admit(task('third'))
    expect(t.executor.get('second')?.state.reason).toBe('queued on unit (1 running); waiting for 1 CPU slot (0 of 1 free)')
    expect(t.executor.get('third')?.state.reason).toBe('queued behind 1 task on unit (1 running); waiting for 1 CPU slot (0 of 1 free)')
    await t.running('blocker')
    t.executor.cancel('blocker')
    expect(await t.ended('third')).toMatchObject({ status: 'completed' })
    expect(t.executor.get('third')?.state.reason).toBeUndefined()
  })

  it('records a waiting task\'s new place once the queue moves, without rewriting every queued record at each start', async () => {
    t = testExecutor({ slots: 1 })
    t.executor.start()
    t.executor.admit(task('blocker', { command: SLEEP }))
    t.executor.admit(task('second', { command: SLEEP }))
    for (let i = 0; i < 6; i++) t.executor.admit(task(`q${i}`))
    expect(t.executor.get('q0')?.state.reason).toBe('queued behind 1 task on unit (1 running); waiting for 1 CPU slot (0 of 1 free)')
    await t.running('blocker')
    const before = t.states.length
    t.executor.cancel('blocker')
    await t.running('second')
    // the start itself recorded the blocker's end and second's start, not 6 new places
    expect(t.states.slice(before).filter(s => s.id.startsWith('q')).length).toBe(0)
    const deadline = Date.now() + 10_000
    while (t.executor.get('q0')?.state.reason !== 'queued on unit (1 running); waiting for 1 CPU slot (0 of 1 free)') {
      if (Date.now() > deadline) throw new Error(`q0's reason stayed ${t.executor.get('q0')?.state.reason ?? 'unset'}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    expect(t.executor.get('q5')?.state.reason).toBe('queued behind 5 tasks on unit (1 running); waiting for 1 CPU slot (0 of 1 free)')
    t.executor.cancel('second')
  })

  it('starts queued tasks by priority, in arrival order within a priority', async () => {
    t = testExecutor({ slots: 1 })
    t.executor.start()
    t.executor.admit(task('blocker', { command: SLEEP }))
    for (const [id, priority] of [['low', 1], ['high-1', 5], ['high-2', 5], ['mid', 3]] as const) {
      expect(t.executor.admit(task(id, { priority }))).toEqual({ queued: true })
    }
    await t.running('blocker')
    t.executor.cancel('blocker')
    await t.ended('low')
    const started = t.states.filter(s => s.state.status === 'running').map(s => s.id)
    expect(started).toEqual(['blocker', 'high-1', 'high-2', 'mid', 'low'])
  })

  it('lets a smaller task start past a bigger one that waits', async () => {
    t = testExecutor({ slots: 2 })
    t.executor.start()
    t.executor.admit(task('one-slot', { command: SLEEP }))
    expect(t.executor.admit(task('two-slots', { cpus: 2, priority: 9 }))).toEqual({ queued: true })
    expect(t.executor.admit(task('small', { cpus: 1 }))).toEqual({ queued: false })
    expect(await t.ended('small')).toMatchObject({ status: 'completed' })
    expect(t.executor.get('two-slots')?.state.status).toBe('pending')
  })

  it('refuses a task when the queue is full, unless it fits now', async () => {
    t = testExecutor({ slots: 1, queueLimit: 1 })
    t.executor.start()
    t.executor.admit(task('blocker', { command: SLEEP }))
    t.executor.admit(task('waits'))
    expect(() => t?.executor.admit(task('refused'))).toThrow(UnavailableError)
    expect(() => t?.executor.admit(task('refused'))).toThrow(/queue is full \(1 tasks\)/)
    // needs no slot: fits now, full queue or not
    expect(t.executor.admit(task('no-cpu', { cpus: 0 }))).toEqual({ queued: false })
    expect(await t.ended('no-cpu')).toMatchObject({ status: 'completed' })
  })

  it('refuses every task while draining, and takes them again after', async () => {
    t = testExecutor()
    t.executor.start()
    t.executor.setDraining(true)
    expect(() => t?.executor.admit(task('a'))).toThrow(UnavailableError)
    expect(() => t?.executor.admit(task('a'))).toThrow(/is draining/)
    t.executor.setDraining(false)
    t.executor.admit(task('a'))
    expect(await t.ended('a')).toMatchObject({ status: 'completed' })
  })

  it('refuses what can never run here as unsatisfiable, saying why', () => {
    t = testExecutor({ slots: 2, memoryBytes: 64 << 20 }, [gpu(0, 'GPU-0'), gpu(1, 'GPU-1')])
    const refuse = (over: Parameters<typeof task>[1]): unknown => {
      try { t?.executor.admit(task('never', over)) } catch (err) { return err }
      return undefined
    }
    expect(refuse({ gpus: 3 })).toBeInstanceOf(UnsatisfiableError)
    expect((refuse({ gpus: 3 }) as Error).message).toMatch(/it has 2 GPUs, the task needs 3/)
    expect((refuse({ cpus: 3 }) as Error).message).toMatch(/it has 2 CPU slots, the task needs 3/)
    expect((refuse({ memory: 128 << 20 }) as Error).message).toMatch(/it has 64 MiB for tasks, the task needs 128 MiB/)
    expect((refuse({ command: undefined, type: 'nope' }) as Error).message).toMatch(/it has no task type nope \(types: none\)/)
  })

  it('takes the same attempt offered twice as one task', async () => {
    t = testExecutor()
    t.executor.start()
    t.executor.admit(task('once', { command: SLEEP }))
    await t.running('once')
    expect(t.executor.admit(task('once', { command: SLEEP }))).toEqual({ queued: false })
    expect(t.executor.usage().running).toBe(1)
  })

  it('on stop, reports queued and running tasks lost, so they run elsewhere', async () => {
    t = testExecutor({ slots: 1 })
    t.executor.start()
    t.executor.admit(task('running', { command: SLEEP }))
    t.executor.admit(task('queued'))
    await t.running('running')
    await t.executor.stop()
    expect(t.executor.get('queued')?.state).toMatchObject({ status: 'failed', lost: true, error: 'executor unit stopped before the task started' })
    expect(t.executor.get('running')?.state).toMatchObject({ status: 'failed', lost: true, error: 'executor unit stopped while the task ran' })
    expect(() => t?.executor.admit(task('late'))).toThrow(/is stopping/)
    t = undefined
  })
})
