/**
 * What a job or a workflow keeps of a task's output: its stdout's first JOB_RESULT_STDOUT_MAX_BYTES, as text, and how
 * the task ended. Jobs and workflows read task streams the same way; this is that one way.
 */
import { JOB_RESULT_STDOUT_MAX_BYTES } from '../../proto/index.ts'
import { toGridError } from '../interface/index.ts'
import type { ClientEvent } from '../tasks/index.ts'

/** Text cut to JOB_RESULT_STDOUT_MAX_BYTES. */
export function capped (text: string): string {
  if (text.length * 3 <= JOB_RESULT_STDOUT_MAX_BYTES) return text
  return Buffer.from(text).subarray(0, JOB_RESULT_STDOUT_MAX_BYTES).toString('utf8')
}

/** The first JOB_RESULT_STDOUT_MAX_BYTES of a stream, as text. */
export class Capture {
  private readonly parts: Uint8Array[] = []
  private bytes = 0

  add (d: Uint8Array): void {
    if (this.bytes >= JOB_RESULT_STDOUT_MAX_BYTES) return
    const take = d.byteLength <= JOB_RESULT_STDOUT_MAX_BYTES - this.bytes ? d : d.subarray(0, JOB_RESULT_STDOUT_MAX_BYTES - this.bytes)
    this.parts.push(take)
    this.bytes += take.byteLength
  }

  text (): string {
    return Buffer.concat(this.parts).toString('utf8')
  }
}

export type ExitEvent = Extract<ClientEvent, { type: 'exit' }>

/** How a followed task ended: its exit event, or why there was none (the stream ended or broke first). */
export type Followed =
  | { exit: ExitEvent, stdout: string }
  | { exit: undefined, stdout: string, error: string }

/** Reads a task's stream to its end: stdout kept up to its limit, then the exit. Never throws. */
export async function followTask (events: AsyncIterable<ClientEvent>): Promise<Followed> {
  const out = new Capture()
  try {
    for await (const ev of events) {
      if (ev.type === 'output' && ev.stream === 'stdout') out.add(ev.data)
      else if (ev.type === 'exit') return { exit: ev, stdout: out.text() }
    }
    return { exit: undefined, stdout: out.text(), error: 'the task stream ended without an exit' }
  } catch (err) {
    return { exit: undefined, stdout: out.text(), error: toGridError(err).message }
  }
}

/** What a followed run came to, as jobs and workflows record it (a stream without an exit is a failure saying why). */
export interface RunEnd {
  status: 'completed' | 'cancelled' | 'failed'
  exitCode?: number | null
  attempts?: number
  stdout: string
  node?: string
  nodeName?: string
  error?: string
}

export function runEnd (f: Followed): RunEnd {
  if (f.exit === undefined) return { status: 'failed', error: f.error, stdout: f.stdout }
  const ev = f.exit
  return {
    status: ev.status === 'completed' ? 'completed' : ev.status === 'cancelled' ? 'cancelled' : 'failed',
    exitCode: ev.exitCode,
    attempts: ev.attempts,
    stdout: f.stdout,
    ...(ev.node === null ? {} : { node: ev.node }),
    ...(ev.nodeName === null ? {} : { nodeName: ev.nodeName }),
    ...(ev.status === 'completed' ? {} : { error: exitError(ev) })
  }
}

/** Why a task that did not complete ended, in words. */
export function exitError (exit: ExitEvent): string {
  return exit.error ?? (exit.status === 'timeout' ? 'timed out' : exit.status)
}

/** The stdout of a task that ended, from its executor (best effort: empty when it is gone or takes over 10 s). */
export async function stdoutOf (logs: (signal: AbortSignal) => AsyncIterable<ClientEvent>): Promise<string> {
  const out = new Capture()
  const ac = new AbortController()
  const t = setTimeout(() => { ac.abort() }, 10_000)
  try {
    for await (const ev of logs(ac.signal)) if (ev.type === 'output' && ev.stream === 'stdout') out.add(ev.data)
  } catch { /* its node is gone, or keeps it no longer */ } finally { clearTimeout(t) }
  return out.text()
}
