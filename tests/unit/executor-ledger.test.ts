import { afterEach, describe, expect, it } from 'vitest'
import { ResourceLedger, type ResourceHold } from '../../src/executor/index.ts'
import { gpu, recorder, task, testExecutor, type TestExecutor } from './executor-fixtures.ts'

// listed out of index order on purpose: the picker goes by index, not by list order
const GPUS = [gpu(2, 'GPU-c'), gpu(0, 'GPU-a'), gpu(1, 'GPU-b')]

describe('executor - resource ledger', () => {
  it('hands out the free GPUs with the lowest indexes', () => {
    const ledger = new ResourceLedger(() => GPUS, { slots: 8, memoryBytes: 1 << 30 })
    expect(ledger.take({ cpus: 1, gpus: 2, memory: 0 })?.gpus).toEqual(['GPU-a', 'GPU-b'])
    expect(ledger.take({ cpus: 1, gpus: 1, memory: 0 })?.gpus).toEqual(['GPU-c'])
    expect(ledger.freeGpus).toBe(0)
  })

  it('takes nothing when any part does not fit', () => {
    const ledger = new ResourceLedger(() => GPUS, { slots: 2, memoryBytes: 100 })
    expect(ledger.take({ cpus: 3, gpus: 1, memory: 0 })).toBeUndefined()
    expect(ledger.take({ cpus: 1, gpus: 4, memory: 0 })).toBeUndefined()
    expect(ledger.take({ cpus: 1, gpus: 1, memory: 101 })).toBeUndefined()
    expect({ slots: ledger.freeSlots, gpus: ledger.freeGpus, memory: ledger.freeMemoryBytes }).toEqual({ slots: 2, gpus: 3, memory: 100 })
  })

  it('gives a released GPU out again, lowest index first', () => {
    const ledger = new ResourceLedger(() => GPUS, { slots: 8, memoryBytes: 1 << 30 })
    const a = ledger.take({ cpus: 0, gpus: 1, memory: 0 }) as ResourceHold
    ledger.take({ cpus: 0, gpus: 1, memory: 0 })
    ledger.release(a)
    expect(ledger.take({ cpus: 0, gpus: 1, memory: 0 })?.gpus).toEqual(['GPU-a'])
  })

  it('never holds a GPU twice, whatever the order of takes and releases', () => {
    const gpus = Array.from({ length: 8 }, (_, i) => gpu(i, `GPU-${i}`))
    const ledger = new ResourceLedger(() => gpus, { slots: 64, memoryBytes: 1 << 30 })
    const held: ResourceHold[] = []
    let seed = 7
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    for (let step = 0; step < 2000; step++) {
      if (held.length > 0 && rand(2) === 0) {
        ledger.release(held.splice(rand(held.length), 1)[0] as ResourceHold)
      } else {
        const h = ledger.take({ cpus: 1, gpus: rand(3), memory: 1 << 20 })
        if (h !== undefined) held.push(h)
      }
      const inUse = held.flatMap(h => h.gpus)
      expect(new Set(inUse).size).toBe(inUse.length)
      expect(ledger.freeGpus).toBe(8 - inUse.length)
      expect(ledger.freeSlots).toBe(64 - held.length)
    }
  })

  it('says why something can never be held here', () => {
    const ledger = new ResourceLedger(() => [gpu(0, 'GPU-a')], { slots: 2, memoryBytes: 1 << 20 })
    expect(ledger.cannotEverHold({ cpus: 1, gpus: 1, memory: 0 })).toBeUndefined()
    expect(ledger.cannotEverHold({ cpus: 1, gpus: 2, memory: 0 })).toBe('it has 1 GPU, the task needs 2')
  })
})

describe('executor - GPUs for tasks and warm workers alike', () => {
  let t: TestExecutor | undefined
  afterEach(async () => { await t?.executor.stop(); t = undefined })

  async function gpusOf (id: string, gpus = 1): Promise<string> {
    const w = recorder()
    t?.executor.admit(task(id, { gpus, cpus: 0, command: ['sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"'] }), w)
    expect(await w.result).toMatchObject({ status: 'completed' })
    return w.stdout().trim()
  }

  it('picks the same way for a reservation and a task, and never hands out a held GPU', async () => {
    t = testExecutor({}, GPUS)
    t.executor.start()
    expect(t.executor.reserve({ cpus: 0, gpus: 1, memory: 0 })).toEqual({ gpus: ['GPU-a'] })
    expect(await gpusOf('first')).toBe('GPU-b')
    expect(t.executor.reserve({ cpus: 0, gpus: 1, memory: 0 })).toEqual({ gpus: ['GPU-b'] })
    expect(await gpusOf('second')).toBe('GPU-c')
    expect(t.executor.usage().freeGpus).toBe(1)
  })

  it('lets a task wait for a GPU a worker holds, and start once it is given back', async () => {
    t = testExecutor({}, [gpu(0, 'GPU-a')])
    t.executor.start()
    const held = t.executor.reserve({ cpus: 1, gpus: 1, memory: 0 })
    expect(held).toEqual({ gpus: ['GPU-a'] })
    expect(t.executor.reserve({ cpus: 0, gpus: 1, memory: 0 })).toBeUndefined()
    const w = recorder()
    expect(t.executor.admit(task('waits', { gpus: 1, cpus: 0, command: ['sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"'] }), w)).toEqual({ queued: true })
    t.executor.unreserve({ cpus: 1, gpus: ['GPU-a'], memory: 0 })
    expect(await w.result).toMatchObject({ status: 'completed', gpus: ['GPU-a'] })
    expect(w.stdout().trim()).toBe('GPU-a')
  })

  it('shows a task that asked for no GPU none of them', async () => {
    t = testExecutor({}, GPUS)
    t.executor.start()
    expect(await gpusOf('none', 0)).toBe('')
  })
})
