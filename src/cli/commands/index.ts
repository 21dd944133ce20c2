import type { Command } from '../command.ts'
import { clusterCommand } from './cluster.ts'
import { completionCommand } from './completion.ts'
import { deployCommand } from './deploy.ts'
import { devCommand } from './dev.ts'
import { healthCommand } from './health.ts'
import { joinCommand } from './join.ts'
import { keygenCommand } from './keygen.ts'
import { metricsCommand } from './metrics.ts'
import { nodesCommand } from './nodes.ts'
import { queueCommand } from './queue.ts'
import { rebalanceCommand } from './rebalance.ts'
import { poolsCommand } from './pools.ts'
import { discoverCommand } from './discover.ts'
import { runCommand } from './run.ts'
import { distributeCommand } from './distribute.ts'
import { jobCommand, jobsCommand } from './jobs.ts'
import { workflowCommand } from './workflow.ts'
import { cancelCommand, drainCommand, logsCommand, taskCommand, tasksCommand, undrainCommand } from './tasks.ts'
import { sessionsCommand } from './sessions.ts'
import { statusCommand } from './status.ts'
import { statsCommand, watchCommand } from './watch.ts'

/** Every gridctl command, in the order `gridctl --help` lists them. */
export const COMMANDS: Command[] = [
  runCommand,
  distributeCommand,
  jobsCommand,
  jobCommand,
  workflowCommand,
  tasksCommand,
  taskCommand,
  logsCommand,
  cancelCommand,
  statusCommand,
  statsCommand,
  watchCommand,
  nodesCommand,
  healthCommand,
  queueCommand,
  rebalanceCommand,
  poolsCommand,
  discoverCommand,
  drainCommand,
  undrainCommand,
  sessionsCommand,
  completionCommand,
  joinCommand,
  deployCommand,
  clusterCommand,
  devCommand,
  metricsCommand,
  keygenCommand
]
