/**
 * The synced-tree steps around an attempt (`gridctl run --sync DIR [--fetch GLOB]`): before the offer, what the
 * executor lacks of the tree goes to it (laid out from this node's cache when it runs here), with `sync` progress
 * events for the client; after the end, the files the task wrote come back before the client hears the exit.
 */
import type { Logger } from 'pino'
import type { ExecAspect, TaskOffer } from '../../proto/index.ts'
import type { NodeId } from '../interface/index.ts'
import { layoutSynced } from './admission.ts'
import type { ClientEvent, Coordinated } from './coordinated.ts'
import type { TasksComponents } from './components.ts'

/** How often the client hears how a synced tree's transfer goes (`sync` events). */
const SYNC_PROGRESS_INTERVAL_MS = 250

/**
 * Readies the task's synced tree on `node` before the offer. Returns the laid-out directory when `node` is this one
 * (undefined when the task syncs nothing or runs elsewhere); throws when the tree cannot get there.
 */
export async function readySynced (c: Pick<TasksComponents, 'sync' | 'peerId'>, co: Coordinated, node: NodeId, offer: TaskOffer, nodeName: string): Promise<string | undefined> {
  if (node === c.peerId) return await layoutSynced(c, offer)
  if (co.spec.sync !== undefined && c.sync !== undefined) await c.sync.push(node, co.spec.sync, co.abort.signal, progress(co, node, nodeName))
  return undefined
}

/** `sync` events for the client while a tree goes to `node`: at most every 250 ms, and the last one. */
function progress (co: Coordinated, node: NodeId, nodeName: string): (sent: number, total: number) => void {
  let last = 0
  return (sent, total) => {
    const now = Date.now()
    if (sent < total && now - last < SYNC_PROGRESS_INTERVAL_MS) return
    last = now
    co.sink?.push({ type: 'sync', id: co.id, node, nodeName, sentBytes: sent, totalBytes: total })
  }
}

/**
 * --fetch: brings the files the task wrote to this node's cache, then hands the client the exit (with what came
 * back, or why nothing did) and ends its stream. Returns false when the task fetches nothing (the caller ends it).
 */
export function fetchThenEnd (c: Pick<TasksComponents, 'sync' | 'peerId'>, log: Logger, co: Coordinated, result: ExecAspect, exit: ClientEvent): boolean {
  const fetch = co.spec.sync?.fetch
  if (fetch === undefined || c.sync === undefined || co.sink === undefined || exit.type !== 'exit') return false
  const sink = co.sink
  void c.sync.fetchFrom(result.node, result.node === c.peerId, co.id, result.attempt, fetch)
    .then(f => { exit.fetched = f }, (err: Error) => {
      log.warn({ err, task: co.id, peer: result.node }, 'cannot bring the task\'s --fetch files back')
      exit.fetched = { manifest: null, files: 0, bytes: 0, error: err.message }
    })
    .finally(() => { sink.push(exit); sink.close() })
  return true
}
