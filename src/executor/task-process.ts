/**
 * A task's process: started through the spawner with the task's command, directory, environment (its GPUs) and
 * stdin; stopped with TERM, then KILL after the grace period; its timeout. How it ended goes to `ended`, once.
 */
import { statSync } from 'node:fs'
import type { Job } from './job.ts'
import type { ProcessEnd, StopReason } from './outcome.ts'
import type { ProcessHost } from './process-host.ts'

export interface TaskProcessHooks {
  /** it runs, as `pid` */
  spawned: (pid: number) => void
  output: (stream: 1 | 2, data: Buffer) => void
  ended: (end: ProcessEnd) => void
}

/** Sets what the task sees of the node's GPUs: exactly its own (none, when it asked for none, on a node with GPUs). */
export function exposeGpus (job: Job, gpus: string[], nodeHasGpus: boolean): void {
  if (!nodeHasGpus && !(job.task.spec.gpus > 0)) return
  job.env.CUDA_VISIBLE_DEVICES = gpus.join(',')
  job.env.CUDA_DEVICE_ORDER = 'PCI_BUS_ID'
}

/** Asks the spawner for the task's process (the caller checks `processes.running` first). */
export function spawnTask (job: Job, processes: ProcessHost, hooks: TaskProcessHooks): void {
  job.child = processes.spawn({ argv: job.argv, env: job.env, ...(job.cwd === undefined ? {} : { cwd: job.cwd }), ...(job.input === undefined ? {} : { input: job.input }) }, {
    spawned: pid => {
      hooks.spawned(pid)
      // a cancel or timeout that came before the process existed
      if (job.stopping !== undefined) job.child?.kill('SIGTERM')
    },
    output: hooks.output,
    error: spawnError => { hooks.ended({ code: null, signal: null, spawnError }) },
    exit: (code, signal) => { hooks.ended({ code, signal }) },
    lost: () => { hooks.ended({ code: null, signal: null, lostReason: 'the task spawner of this node died' }) }
  })
}

/** Stops it when `timeoutMs` passes (call once it runs). */
export function armTimeout (job: Job, killGraceMs: number): void {
  const ms = job.task.spec.timeoutMs
  if (ms !== undefined) job.timeout = setTimeout(() => { stopTask(job, 'timeout', killGraceMs) }, ms)
}

/** TERM to its process group (once it exists), KILL after the grace period; the first reason given is the one. */
export function stopTask (job: Job, why: StopReason, killGraceMs: number): void {
  const child = job.child
  if (job.stopping !== undefined || child === undefined) return
  job.stopping = why
  clearTimeout(job.timeout)
  if (child.pid !== undefined) child.kill('SIGTERM')
  job.kill = setTimeout(() => { if (!child.ended) child.kill('SIGKILL') }, killGraceMs)
}

/** It ended: no timer may fire for it any more. */
export function clearTaskTimers (job: Job): void {
  clearTimeout(job.timeout)
  clearTimeout(job.kill)
}

/** Can a process start in it? */
export function isDirectory (path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}
