/**
 * How a task's process ended, as the task's status: exit code, signal, a spawn that failed, the kernel's kill for
 * memory, a stop the executor asked for (timeout, cancel, shutdown) or a spawner that died; and the shell's exit
 * code for a finished task.
 */
import { constants as osConstants } from 'node:os'
import type { ExecAspect } from '../../proto/index.ts'
import { formatDurationExact } from '../interface/index.ts'
import { oomReason } from './cgroup-limits.ts'

/** Why the executor is stopping a task, when it is. */
export type StopReason = 'timeout' | 'cancelled' | 'shutdown'

/** What is known about how the process ended. */
export interface ProcessEnd {
  code: number | null
  signal: NodeJS.Signals | null
  /** it could not be started */
  spawnError?: { code: string, message: string }
  /** it went away with the node's spawner: the attempt is lost, not failed */
  lostReason?: string
  /** the kernel killed it (or a process of it) for going over its memory limit */
  oom?: { limitBytes: number }
}

/** The task the process belonged to, as far as its outcome goes. */
export interface OutcomeContext {
  /** the command, for error messages */
  command: string
  nodeName: string
  timeoutMs?: number
  stopping?: StopReason
}

/** The status patch for a task whose process ended. */
export function outcomeOf (task: OutcomeContext, end: ProcessEnd): Partial<ExecAspect> {
  const patch: Partial<ExecAspect> = { exitCode: end.code, signal: end.signal }
  if (end.lostReason !== undefined) {
    patch.status = 'failed'
    patch.lost = true
    patch.error = end.lostReason
  } else if (end.spawnError !== undefined) {
    const notFound = end.spawnError.code === 'ENOENT'
    patch.status = 'failed'
    patch.exitCode = notFound ? 127 : 126
    patch.error = `cannot start ${task.command}: ${notFound ? 'command not found' : end.spawnError.message}`
  } else if (end.oom !== undefined) {
    patch.status = 'failed'
    patch.oom = true
    patch.error = oomReason(end.oom.limitBytes)
  } else if (task.stopping === 'timeout') {
    patch.status = 'timeout'
    patch.error = `timed out after ${formatDurationExact(task.timeoutMs ?? 0)}`
  } else if (task.stopping === 'cancelled') {
    patch.status = 'cancelled'
    patch.error = 'cancelled'
  } else if (task.stopping === 'shutdown') {
    patch.status = 'failed'
    patch.lost = true
    patch.error = `executor ${task.nodeName} stopped while the task ran`
  } else if (end.code === 0) {
    patch.status = 'completed'
  } else {
    patch.status = 'failed'
    patch.error = end.code !== null ? `exited with code ${end.code}` : `killed by ${end.signal ?? 'a signal'}`
  }
  return patch
}

/** A typed task's result: its stdout as JSON when it is JSON, else the text. */
export function parseResult (text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

/** The shell's convention for a process killed by a signal: 128 + the signal's number. */
export function exitCodeOf (state: Pick<ExecAspect, 'exitCode' | 'signal' | 'status'>): number {
  if (state.status === 'timeout') return 124
  if (state.status === 'cancelled') return 130
  if (typeof state.exitCode === 'number') return state.exitCode
  const n = state.signal === null || state.signal === undefined ? undefined : osConstants.signals[state.signal as NodeJS.Signals]
  return n === undefined ? 1 : 128 + n
}
