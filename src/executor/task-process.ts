/**
 * A task's process: started through the spawner with the task's command, directory, environment (its GPUs) and
 * stdin, inside its own cgroup (its memory limit and CPU quota) where limits are enforced; stopped with TERM, then
 * KILL after the grace period; its timeout. How it ended (killed for memory included) goes to `ended`, once.
 */
import { cannotExec } from './exec-path.ts'
import type { TaskCgroup, TaskCgroups } from './cgroup.ts'
import type { Job } from './job.ts'
import type { ProcessEnd, StopReason } from './outcome.ts'
import type { ProcessHost } from './process-host.ts'

export { cannotExec, isDirectory } from './exec-path.ts'

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

/**
 * Asks the spawner for the task's process (the caller checks `processes.running` first), in a cgroup of its own with
 * its limits when `cgroups` enforces them: the cgroup exists before the process, which joins it before its program
 * runs, and goes when the process has ended.
 */
export function spawnTask (job: Job, processes: ProcessHost, hooks: TaskProcessHooks, cgroups?: TaskCgroups): void {
  const argv = job.argv
  let cgroup: TaskCgroup | undefined
  // limits are what the task named: a memory limit for --memory, a CPU quota for an explicit --cpus; a task that
  // names neither runs without a cgroup (creating and removing one costs more than a short task's whole run)
  const limits = { memoryBytes: job.task.spec.memory, cpus: job.task.spec.cpuLimit === true ? job.task.spec.cpus : 0 }
  if (cgroups?.status().enforced === true && (limits.memoryBytes > 0 || limits.cpus > 0)) {
    // the wrapper's exec would turn a missing program into sh's exit 127: say it as a spawn without a wrapper does
    const missing = cannotExec(argv[0] ?? '', job.env.PATH ?? process.env.PATH ?? '', job.cwd)
    if (missing !== undefined) { hooks.ended({ code: null, signal: null, spawnError: missing }); return }
    try {
      cgroup = cgroups.create(job.task.id, job.task.attempt, limits)
    } catch (err) {
      hooks.ended({ code: null, signal: null, spawnError: { code: 'ECGROUP', message: `cannot create its cgroup: ${(err as Error).message}` } })
      return
    }
  }
  // the cgroup is joined by gridd's shell, before the switch to the task user (process-host.ts) that runs inside it
  const joined = cgroup
  const wrap = joined === undefined ? {} : { wrap: (a: string[]) => joined.wrap(a) }
  const ended = (end: ProcessEnd): void => {
    if (cgroup !== undefined) {
      const oom = end.lostReason === undefined && end.code !== 0 && cgroup.oomKilled()
      cgroup.remove()
      if (oom) end = { ...end, oom: { limitBytes: cgroup.memoryLimitBytes } }
    }
    hooks.ended(end)
  }
  job.child = processes.spawn({ argv, env: job.env, ...(job.cwd === undefined ? {} : { cwd: job.cwd }), ...(job.input === undefined ? {} : { input: job.input }), ...(job.stdin === undefined ? {} : { stdin: 'pipe' as const }), ...wrap }, {
    // an open stdin gets what its client sent so far, then the rest as it comes (stdin-feed.ts)
    drain: () => { job.stdin?.drained() },
    spawned: pid => {
      if (job.stdin !== undefined && job.child !== undefined) job.stdin.attach(job.child)
      hooks.spawned(pid)
      // a cancel or timeout that came before the process existed
      if (job.stopping !== undefined) job.child?.kill('SIGTERM')
    },
    output: hooks.output,
    error: spawnError => { ended({ code: null, signal: null, spawnError }) },
    exit: (code, signal) => { ended({ code, signal }) },
    lost: () => { ended({ code: null, signal: null, lostReason: 'the task spawner of this node died' }) }
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
