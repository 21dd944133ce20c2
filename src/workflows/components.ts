/**
 * What the workflows module needs from the rest of the daemon, each as narrow as the calls it makes. The composition
 * root (src/daemon.ts) hands in the real objects; unit tests hand in stubs.
 */
import type { Logger } from 'pino'
import type { NodeId } from '../interface/index.ts'
import type { JobService } from '../jobs/index.ts'
import type { Membership } from '../membership/index.ts'
import type { StateStore } from '../state/index.ts'
import type { TaskService } from '../tasks/index.ts'

export interface WorkflowsComponents {
  peerId: NodeId
  /** a plain job's runs are tasks: submitted, followed, cancelled and read through the tasks service */
  tasks: Pick<TaskService, 'submitSpec' | 'eligible' | 'cancel' | 'get' | 'logs'>
  /** a job with items or count is a job of the jobs service */
  jobs: Pick<JobService, 'submit' | 'summary' | 'cancel'>
  /** who is alive (successors) */
  members: Pick<Membership, 'view' | 'state' | 'on' | 'off'>
  store: Pick<StateStore, 'selfId' | 'set' | 'entryOf' | 'lookupAll' | 'groupAll' | 'setCollector' | 'on' | 'off'>
  /** a node's id from a name or id a user gave (undefined when none matches) */
  resolveNode: (nameOrId: string) => NodeId | undefined
  logger: Logger
}

export interface WorkflowsInit {
  nodeName: string
  /** how long a finished workflow's records are kept (as tasks': taskRetentionMs) */
  retentionMs: number
}
