/** Task records through a daemon's API, for tests that follow tasks to their end. */
import type { TaskRecord } from '../../proto/index.ts'
import { waitFor, type Gridd } from './cluster.ts'

const FINAL = new Set(['completed', 'failed', 'timeout', 'cancelled'])

export async function task (n: Gridd, id: string): Promise<TaskRecord> {
  return await n.api.get<TaskRecord>(`/tasks/${id}`)
}

/** Waits until the task's record on `n` is final, and returns it. */
export async function finished (n: Gridd, id: string, timeoutMs = 60_000): Promise<TaskRecord> {
  return await waitFor(`task ${id} to end`, async () => {
    const t = await task(n, id)
    return FINAL.has(t.status) ? t : undefined
  }, { timeoutMs })
}
