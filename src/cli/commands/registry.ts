/**
 * gridctl's commands by name, each loaded only when it runs: a call pays for its own command's modules, not for the
 * other 27 (bench/cli). The order is `gridctl --help`'s, the same as COMMANDS (index.ts), which imports them all for
 * help, completion and tests; tests/unit/gridctl-startup.test.ts keeps the two equal, and keeps run-gridctl.ts from
 * importing any command at its top.
 */
import type { Command } from '../command.ts'

type Loader = () => Promise<Command>

export const COMMAND_LOADERS: ReadonlyArray<readonly [string, Loader]> = [
  ['run', async () => (await import('./run.ts')).runCommand],
  ['distribute', async () => (await import('./distribute.ts')).distributeCommand],
  ['jobs', async () => (await import('./jobs.ts')).jobsCommand],
  ['job', async () => (await import('./jobs.ts')).jobCommand],
  ['workflow', async () => (await import('./workflow.ts')).workflowCommand],
  ['tasks', async () => (await import('./tasks.ts')).tasksCommand],
  ['task', async () => (await import('./tasks.ts')).taskCommand],
  ['logs', async () => (await import('./tasks.ts')).logsCommand],
  ['cancel', async () => (await import('./tasks.ts')).cancelCommand],
  ['status', async () => (await import('./status.ts')).statusCommand],
  ['stats', async () => (await import('./watch.ts')).statsCommand],
  ['watch', async () => (await import('./watch.ts')).watchCommand],
  ['nodes', async () => (await import('./nodes.ts')).nodesCommand],
  ['health', async () => (await import('./health.ts')).healthCommand],
  ['queue', async () => (await import('./queue.ts')).queueCommand],
  ['rebalance', async () => (await import('./rebalance.ts')).rebalanceCommand],
  ['pools', async () => (await import('./pools.ts')).poolsCommand],
  ['discover', async () => (await import('./discover.ts')).discoverCommand],
  ['drain', async () => (await import('./tasks.ts')).drainCommand],
  ['undrain', async () => (await import('./tasks.ts')).undrainCommand],
  ['sessions', async () => (await import('./sessions.ts')).sessionsCommand],
  ['completion', async () => (await import('./completion.ts')).completionCommand],
  ['join', async () => (await import('./join.ts')).joinCommand],
  ['deploy', async () => (await import('./deploy.ts')).deployCommand],
  ['cluster', async () => (await import('./cluster.ts')).clusterCommand],
  ['dev', async () => (await import('./dev.ts')).devCommand],
  ['metrics', async () => (await import('./metrics.ts')).metricsCommand],
  ['keygen', async () => (await import('./keygen.ts')).keygenCommand]
]

/** The command named `name`, loaded; undefined when gridctl has none of that name. */
export async function loadCommand (name: string): Promise<Command | undefined> {
  const entry = COMMAND_LOADERS.find(([n]) => n === name)
  return entry === undefined ? undefined : await entry[1]()
}
