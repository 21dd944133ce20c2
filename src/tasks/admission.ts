/**
 * Admission of an offered task into this node's executor, for the local path (coordinator.ts) and the RPC path
 * (executor-side.ts) alike: one place decides whether an offer that must start now may queue.
 */
import type { TaskOffer } from '../../proto/index.ts'
import { ConflictError, UnavailableError, type NodeId } from '../interface/index.ts'
import type { Watcher } from '../executor/index.ts'
import type { TasksComponents } from './components.ts'
import { isFinalStatus, supersededBy, type TaskRecords } from './records.ts'

/**
 * Admits an offer on this node's executor. An offer marked `startNow` (a session's owner, asked while another node
 * could start the task at once) is refused rather than queued when it cannot start now.
 */
export function admitOffer (c: Pick<TasksComponents, 'executor' | 'health'>, offer: TaskOffer, watcher: Watcher, offeredBy?: NodeId, syncDir?: string): { queued: boolean, reason?: string } {
  // a half-open breaker lets one trial through; the others go to the next candidate (a re-offer of a task it has is no new trial)
  if (c.health !== undefined && c.executor.get?.(offer.id) === undefined && !c.health.admitTrial()) {
    throw new UnavailableError('its circuit breaker is half-open and a trial task is already under way')
  }
  if (offer.startNow === true) {
    const u = c.executor.usage()
    const s = offer.spec
    if (u.queued > 0 || u.freeSlots < s.cpus || u.freeGpus < s.gpus || u.freeMemoryBytes < s.memory) {
      const busy = `${u.running} running, ${u.queued} queued, ${u.freeSlots} slot${u.freeSlots === 1 ? '' : 's'} free`
      throw new UnavailableError(`full (${busy})`, { details: { full: true } })
    }
  }
  const { queued } = c.executor.admit({ id: offer.id, spec: offer.spec, attempt: offer.attempt, origin: offer.origin, coordinator: offer.coordinator, ...(offeredBy === undefined ? {} : { offeredBy }), ...(syncDir === undefined ? {} : { syncDir }), ...(offer.sentAt === undefined ? {} : { sentAt: offer.sentAt }) }, watcher)
  // a task that waits in the queue says why (what is ahead of it, which resource it lacks)
  const reason = queued ? c.executor.get?.(offer.id)?.state.reason : undefined
  return reason === undefined ? { queued } : { queued, reason }
}

/** A synced task's fresh tree on this node (laid out from the cache, which the coordinator filled); else undefined. */
export async function layoutSynced (c: Pick<TasksComponents, 'sync'>, offer: TaskOffer): Promise<string | undefined> {
  if (offer.spec.sync === undefined) return undefined
  if (c.sync === undefined) throw new UnavailableError('this node cannot run synced tasks (no sync cache)')
  return await c.sync.layout(offer.id, offer.spec.sync)
}

/**
 * Refuses (CONFLICT) an offer from a coordinator another node took the task over from (the records name a later
 * generation), and one of another attempt of a task this node still runs: either would run the task twice at once.
 * An offer of the attempt it runs attaches to it (the executor's admit).
 */
export function refuseSuperseded (c: Pick<TasksComponents, 'executor' | 'nodeRegistry'>, records: Pick<TaskRecords, 'aspects'>, offer: TaskOffer): void {
  const by = supersededBy(records.aspects(offer.id), offer.coordinator, offer.generation ?? 0)
  if (by !== undefined) {
    throw new ConflictError(`task ${offer.id} is now coordinated by ${c.nodeRegistry.get(by)?.value.name ?? by}, which took it over from the node that offered it`, { details: { supersededBy: by } })
  }
  const job = c.executor.get?.(offer.id)?.state
  if (job !== undefined && !isFinalStatus(job.status) && job.attempt !== offer.attempt) {
    throw new ConflictError(`this node still runs attempt ${job.attempt} of task ${offer.id}: it takes no other attempt of it (${offer.attempt}) meanwhile`, { details: { attempt: job.attempt } })
  }
}
