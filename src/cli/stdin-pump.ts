/**
 * gridctl run's stdin: what the caller's stdin holds goes to the task, piece by piece, through POST
 * /v1/tasks/ID/stdin, one piece at a time: each is answered once the task's executor took it, so a task that reads
 * slowly holds back the caller's pipe. EOF sends `end: true`; a task that takes no more (`open: false`: it ended, or
 * a later attempt runs with an empty stdin) or the run's end stops the reading.
 */
import type { Readable } from 'node:stream'
import type { ApiClient } from './client.ts'

/** The caller's directory, sent as the task's default cwd; a directory removed under the caller gives its last name. */
export function callerDirectory (env: NodeJS.ProcessEnv): string | undefined {
  try {
    return process.cwd()
  } catch {
    return env.PWD !== undefined && env.PWD.startsWith('/') ? env.PWD : undefined
  }
}

/** Streams `input` to task `id`'s stdin until EOF, `open: false` or `signal`; a failure goes to `failed`, once. */
export async function pumpStdin (client: ApiClient, id: string, input: Readable, signal: AbortSignal, failed: (err: Error) => void): Promise<void> {
  const path = `/tasks/${encodeURIComponent(id)}/stdin`
  try {
    for await (const chunk of input) {
      if (signal.aborted) return
      const data = (typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer).toString('base64')
      const r = await client.post<{ open: boolean }>(path, { data, encoding: 'base64' }, signal)
      if (!r.open) return
    }
    if (!signal.aborted) await client.post(path, { end: true }, signal)
  } catch (err) {
    if (!signal.aborted) failed(err as Error)
  } finally {
    input.destroy()
  }
}
