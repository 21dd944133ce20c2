/**
 * One coordinator per task (issue 13): what a coordinator does around a takeover. Before a retry it catches up with
 * the node that would take the task over from it, so a takeover already made is seen; once another node took the
 * task over, it stops driving and only tells its client how the task ended, from the records.
 */
import type { Logger } from 'pino'
import type { ExecAspect } from '../../proto/index.ts'
import { exitCodeOf } from '../executor/index.ts'
import { delay } from '../util/index.ts'
import type { TasksComponents } from './components.ts'
import type { Coordinated } from './coordinated.ts'
import { isFinalStatus, statusOf, type TaskRecords } from './records.ts'
import { successor } from './successor.ts'

/** Before a retry, the coordinator catches up with the task's would-be successor for at most this long. */
const RETRY_CATCH_UP_MS = 2_000
/** A coordinator superseded by a takeover reads the records this often to tell its client how the task ended. */
const HANDED_OVER_POLL_MS = 500

/** Syncs the records from the node that would take task `id` over from this one (at most RETRY_CATCH_UP_MS). */
export async function catchUpWithSuccessor (c: Pick<TasksComponents, 'peerId' | 'members' | 'store'>, log: Logger, id: string): Promise<void> {
  const self = c.peerId
  const peer = successor(id, c.members.view().filter(v => v.state === 'alive' && v.id !== self).map(v => v.id))
  if (peer === undefined) return
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([c.store.syncFrom(peer), new Promise<void>(resolve => { timer = setTimeout(resolve, RETRY_CATCH_UP_MS) })])
  } catch (err) {
    log.debug({ err, task: id, peer }, 'catching up before a retry failed')
  } finally {
    clearTimeout(timer)
  }
}

/** Tells a handed-over task's client how it ended (taken over by `byName`), from the records, once they say so. */
export async function followRecordsToEnd (records: TaskRecords, co: Coordinated, byName: string, running: () => boolean): Promise<void> {
  co.sink?.push({ type: 'waiting', id: co.id, reason: `node ${byName} took the task over; its end follows`, delayMs: HANDED_OVER_POLL_MS })
  while (running()) {
    const a = records.aspects(co.id)
    const status = statusOf(a)
    if (isFinalStatus(status)) {
      const c = a.coord?.aspect
      const e = a.exec?.aspect
      const viaCoord = c?.final !== undefined
      co.sink?.push({
        type: 'exit',
        id: co.id,
        status: status as ExecAspect['status'],
        exitCode: viaCoord && c.exitCode !== undefined ? c.exitCode : (e?.exitCode ?? null),
        code: viaCoord ? (status === 'completed' ? 0 : status === 'cancelled' ? 130 : 1) : (e === undefined ? 1 : exitCodeOf(e)),
        signal: viaCoord ? null : (e?.signal ?? null),
        error: (viaCoord ? c.error : e?.error) ?? null,
        node: e?.node ?? null,
        nodeName: e?.nodeName ?? null,
        attempts: c?.attempt ?? co.coord.attempt
      })
      co.sink?.close()
      return
    }
    await delay(HANDED_OVER_POLL_MS)
  }
  co.sink?.close()
}
