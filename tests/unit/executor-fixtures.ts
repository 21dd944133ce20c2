/**
 * Executors for unit tests: real spawner, real small processes (/bin/sh, cat, true, sleep), fake GPUs, no network.
 */
import { pino, type Logger } from 'pino'
import type { ExecAspect, TaskEvent, TaskSpec } from '../../proto/index.ts'
import type { GpuInfo } from '../../src/interface/index.ts'
import { Executor, type ExecTask, type ExecutorInit, type Watcher } from '../../src/executor/index.ts'

export function quietLogger (): Logger {
  return pino({ level: 'silent' })
}

export function gpu (index: number, uuid: string): GpuInfo {
  return { index, uuid, name: 'Fake GPU', memoryTotalMiB: 1024, memoryUsedMiB: 0, utilizationPercent: 0 }
}

export function spec (over: Partial<TaskSpec> = {}): TaskSpec {
  return { command: ['true'], cpus: 1, gpus: 0, memory: 0, require: [], labels: {}, priority: 0, retries: 0, retryOnFailure: false, env: {}, strategy: 'least-loaded', ...over }
}

export function task (id: string, over: Partial<TaskSpec> = {}, attempt = 1): ExecTask {
  return { id, attempt, spec: spec(over), origin: 'origin-node', coordinator: 'origin-node' }
}

export interface TestExecutor {
  executor: Executor
  /** every task:state, in order */
  states: Array<{ id: string, state: ExecAspect }>
  /** resolves with the task's final state */
  ended: (id: string) => Promise<ExecAspect>
  /** resolves once the task runs */
  running: (id: string) => Promise<ExecAspect>
}

export function testExecutor (init: Partial<ExecutorInit> = {}, gpus: GpuInfo[] = []): TestExecutor {
  const executor = new Executor({ logger: quietLogger(), gpus: () => gpus }, {
    nodeId: `test-node-${process.pid}-${Math.random().toString(36).slice(2)}`,
    nodeName: 'unit',
    slots: 2,
    memoryBytes: 1 << 30,
    queueLimit: 8,
    killGraceMs: 500,
    maxLogBytes: 1 << 20,
    maxRetainedLogBytes: 8 << 20,
    taskTypes: {},
    baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    ...init
  })
  const states: TestExecutor['states'] = []
  executor.on('task:state', (id, state) => { states.push({ id, state }) })
  const when = async (id: string, ok: (s: ExecAspect) => boolean): Promise<ExecAspect> => await new Promise(resolve => {
    const seen = states.find(e => e.id === id && ok(e.state))
    if (seen !== undefined) { resolve(seen.state); return }
    const check = (tid: string, s: ExecAspect): void => {
      if (tid !== id || !ok(s)) return
      executor.off('task:state', check)
      resolve(s)
    }
    executor.on('task:state', check)
  })
  return {
    executor,
    states,
    ended: async id => await when(id, s => s.status !== 'pending' && s.status !== 'running'),
    running: async id => await when(id, s => s.status === 'running')
  }
}

/** A watcher that keeps what it is told. */
export function recorder (): Watcher & { events: TaskEvent[], stdout: () => string, result: Promise<ExecAspect>, printed: (text: string) => Promise<void> } {
  const events: TaskEvent[] = []
  let resolve: (s: ExecAspect) => void = () => {}
  const result = new Promise<ExecAspect>(r => { resolve = r })
  const waiting: Array<{ text: string, resolve: () => void }> = []
  const stdout = (): string => Buffer.concat(events.flatMap(e => e.k === 'out' && e.s === 1 ? [Buffer.from(e.d)] : [])).toString('utf8')
  return {
    primary: true,
    events,
    result,
    event: ev => {
      events.push(ev)
      for (const w of [...waiting]) if (stdout().includes(w.text)) { waiting.splice(waiting.indexOf(w), 1); w.resolve() }
      return true
    },
    drain: async () => {},
    done: s => { resolve(s) },
    stdout,
    /** resolves once stdout has `text` */
    printed: async text => { if (!stdout().includes(text)) await new Promise<void>(r => { waiting.push({ text, resolve: r }) }) }
  }
}
