/**
 * map-reduce's reduce: one task, run once, with every result on its stdin as JSON lines
 * `{index, item, status, exitCode, stdout}` in index order; its stdout is the job's answer.
 */
import { TASK_STDIN_CHUNK_MAX_BYTES, type TaskSpec } from '../../proto/index.ts'
import { toGridError } from '../interface/index.ts'
import type { ClientEvent, EventQueue } from '../tasks/index.ts'
import { followTask } from './capture.ts'
import type { JobsComponents } from './components.ts'

export interface ReduceResult { ok: boolean, stdout: string, error?: string }

/** Runs the reduce task `taskId` as `spec`, feeding it `lines` (each a JSON line, newline included). */
export async function runReduce (tasks: JobsComponents['tasks'], spec: TaskSpec, taskId: string, lines: () => Iterable<string>): Promise<ReduceResult> {
  let events: EventQueue<ClientEvent> | undefined
  try {
    events = tasks.submitSpec(spec, taskId, false).events as EventQueue<ClientEvent>
  } catch (err) {
    return { ok: false, stdout: '', error: `the reduce could not start: ${toGridError(err).message}` }
  }
  const feed = feedStdin(tasks, taskId, lines())
  const f = await followTask(events)
  if (f.exit === undefined) return { ok: false, stdout: f.stdout, error: `the reduce failed: ${f.error}` }
  await feed.catch(() => {})
  const exit = f.exit
  return exit.status === 'completed'
    ? { ok: true, stdout: f.stdout }
    : { ok: false, stdout: f.stdout, error: `the reduce ${exit.status}: ${exit.error ?? (exit.exitCode === null ? 'no exit status' : `exit code ${exit.exitCode}`)}` }
}

/** Writes the lines to the task's stdin in chunks of about half the stdin chunk cap, then ends it. */
async function feedStdin (tasks: JobsComponents['tasks'], taskId: string, lines: Iterable<string>): Promise<void> {
  let buf: string[] = []
  let bytes = 0
  const send = async (end: boolean): Promise<boolean> => {
    const data = Buffer.from(buf.join(''))
    buf = []
    bytes = 0
    const r = await tasks.writeStdin(taskId, { data, end })
    return r.open
  }
  for (const line of lines) {
    buf.push(line)
    bytes += Buffer.byteLength(line)
    if (bytes >= TASK_STDIN_CHUNK_MAX_BYTES / 2 && !(await send(false))) return
  }
  await send(true)
}
