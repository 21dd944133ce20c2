/**
 * What the jobs module needs from the rest of the daemon, each as narrow as the calls it makes. The composition root
 * (src/daemon.ts) hands in the real objects; unit tests hand in stubs.
 */
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { NodeId } from '../interface/index.ts'
import type { Membership } from '../membership/index.ts'
import type { StateStore } from '../state/index.ts'
import type { TaskService, WorkerService } from '../tasks/index.ts'

export interface JobsComponents {
  peerId: NodeId
  /** runs are tasks: submitted, followed, cancelled and read through the tasks service */
  tasks: Pick<TaskService, 'submitSpec' | 'eligible' | 'cancel' | 'get' | 'logs' | 'writeStdin'>
  /** who is alive (successors), and each node's load (how many runs fit) */
  members: Pick<Membership, 'view' | 'state' | 'on' | 'off'>
  store: Pick<StateStore, 'selfId' | 'set' | 'setMany' | 'entryOf' | 'lookupAll' | 'groupAll' | 'setCollector' | 'on' | 'off'>
  /** a node's id from a name or id a user gave (undefined when none matches) */
  resolveNode: (nameOrId: string) => NodeId | undefined
  /** a node's name, for records */
  nameOf: (id: NodeId) => string
  /** warm workers: a job of a worker type sends its items to them as batched requests */
  workers?: Pick<WorkerService, 'isWorkerType' | 'cannotServe' | 'call' | 'hostCount'>
  logger: Logger
  registry: Registry
}

export interface JobsInit {
  nodeName: string
  /** how long a finished job's records are kept (as tasks': taskRetentionMs) */
  retentionMs: number
}
