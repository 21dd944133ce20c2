/**
 * `gridctl dev`: a local cluster of real gridd on this machine, under ./.grid-dev (README, "A dev cluster on one
 * machine"). This file is only the command table: the work is in src/cli/dev/, loaded when a dev command runs.
 */
import { NotFoundError } from '../../interface/index.ts'
import { UsageError, requirePositionals, type Command, type CommandContext } from '../command.ts'
import { printList } from '../output.ts'
import { DEV_DEFAULT_NODES, DEV_DIR, DEV_MAX_FAKE_GPUS, DEV_MAX_NODES } from '../dev/constants.ts'
import { devRoot, readDevState, type DevState } from '../dev/state.ts'

function count (raw: unknown, flag: string, min: number, max: number, dflt: number): number {
  if (raw === undefined) return dflt
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`)
  return n
}

function stateHere (): DevState {
  const state = readDevState(devRoot(process.cwd()))
  if (state === null) throw new NotFoundError(`no dev cluster in ./${DEV_DIR} (start one with: gridctl dev up)`)
  return state
}

async function printStatus (ctx: CommandContext, state: DevState): Promise<boolean> {
  const { devRows, DEV_COLUMNS } = await import('../dev/status.ts')
  const rows = await devRows(state, ctx.signal)
  printList(ctx.out, ctx.format, rows, DEV_COLUMNS)
  return rows.every(r => r.running)
}

function usageHints (state: DevState, gpus: number): string {
  const first = state.nodes[0]
  const lines = [
    '',
    `From this directory gridctl talks to ${first?.name ?? 'n1'} (elsewhere: GRID_SOCKET=${first?.socket ?? ''} gridctl ...):`,
    '  gridctl nodes                      every node, alive',
    '  gridctl run -- hostname            a task, on the best node',
    ...(gpus > 0 ? ['  gridctl run --gpus 1 -- sh -c \'echo $CUDA_VISIBLE_DEVICES\'   a task on a fake GPU'] : []),
    `  ${`gridctl dev kill ${state.nodes[1]?.name ?? state.nodes[0]?.name ?? 'n1'}`.padEnd(33)}  kill -9 a node, to watch the others find it dead`,
    '  gridctl dev status                 the nodes\' processes; gridctl dev down stops them',
    `Logs: ./${DEV_DIR}/NODE/gridd.log`
  ]
  return lines.join('\n') + '\n'
}

const up: Command = {
  name: 'up',
  summary: `Starts N gridd on this machine under ./${DEV_DIR} (default ${DEV_DEFAULT_NODES}), detached, and waits until they see each other. Already up: says so and exits 0.`,
  usage: 'dev up [--nodes N] [--gpus-fake K] [--gridd PATH]',
  local: true,
  options: { nodes: { type: 'string' }, 'gpus-fake': { type: 'string' }, gridd: { type: 'string' } },
  optionHelp: {
    nodes: `how many nodes, 1..${DEV_MAX_NODES} (default ${DEV_DEFAULT_NODES})`,
    'gpus-fake': `give each node K fake GPUs (a fake nvidia-smi), 0..${DEV_MAX_FAKE_GPUS}, to try GPU placement without GPUs`,
    gridd: 'the gridd to start (default: the one installed with this gridctl)'
  },
  async run (ctx, args) {
    requirePositionals(args, [])
    const nodes = count(args.values.nodes, '--nodes', 1, DEV_MAX_NODES, DEV_DEFAULT_NODES)
    const gpusFake = count(args.values['gpus-fake'], '--gpus-fake', 0, DEV_MAX_FAKE_GPUS, 0)
    const { devUp } = await import('../dev/up.ts')
    const { findGridd } = await import('../dev/find-gridd.ts')
    const gridd = findGridd(args.values.gridd as string | undefined)
    const r = await devUp({
      root: devRoot(process.cwd()),
      nodes,
      gpusFake,
      explicit: { nodes: args.values.nodes !== undefined, gpusFake: args.values['gpus-fake'] !== undefined },
      gridd,
      env: ctx.env,
      err: ctx.err,
      tty: ctx.tty,
      signal: ctx.signal
    })
    const n = r.state.nodes.length
    const gpus = r.state.nodes[0]?.gpus ?? 0
    ctx.err.write(r.already
      ? `a dev cluster of ${n} nodes already runs in ./${DEV_DIR}; left as it is\n`
      : `dev cluster up: ${n} node${n === 1 ? '' : 's'}${gpus > 0 ? ` with ${gpus} fake GPU${gpus === 1 ? '' : 's'} each` : ''} in ./${DEV_DIR}\n`)
    await printStatus(ctx, r.state)
    if (ctx.format === 'table') ctx.out.write(usageHints(r.state, gpus))
    return 0
  }
}

const status: Command = {
  name: 'status',
  summary: 'Each node of the dev cluster here: its process, pid, port, how many nodes it sees alive. Exits 1 unless every node runs.',
  usage: 'dev status',
  local: true,
  async run (ctx, args) {
    requirePositionals(args, [])
    return (await printStatus(ctx, stateHere())) ? 0 : 1
  }
}

const down: Command = {
  name: 'down',
  summary: `Stops the dev cluster here cleanly (SIGTERM by its recorded pids, then waits). Keeps ./${DEV_DIR} (logs, state) unless --purge.`,
  usage: 'dev down [--purge]',
  local: true,
  options: { purge: { type: 'boolean' } },
  optionHelp: { purge: `also remove ./${DEV_DIR}: the nodes' identities, state and logs` },
  async run (ctx, args) {
    requirePositionals(args, [])
    const state = readDevState(devRoot(process.cwd()))
    if (state === null) {
      ctx.err.write(`no dev cluster in ./${DEV_DIR}: nothing to stop\n`)
      return 0
    }
    const { devDown } = await import('../dev/down.ts')
    const rows = await devDown(state, { purge: args.values.purge === true })
    printList(ctx.out, ctx.format, rows, [{ header: 'node', value: r => r.name }, { header: 'pid', value: r => r.pid, right: true }, { header: 'result', value: r => r.result }])
    return 0
  }
}

const kill: Command = {
  name: 'kill',
  summary: 'Kills one node of the dev cluster with SIGKILL (no goodbye), to watch the others find it dead and its tasks fail over.',
  usage: 'dev kill NODE',
  local: true,
  async run (ctx, args) {
    const [name] = requirePositionals(args, ['NODE']) as [string]
    const { devKill } = await import('../dev/down.ts')
    const node = await devKill(stateHere(), name)
    ctx.err.write(`killed ${node.name} (pid ${node.pid}); the others see it suspect, then dead, within seconds: gridctl nodes\n`)
    return 0
  }
}

export const devCommand: Command = {
  name: 'dev',
  summary: `A local cluster on this machine, under ./${DEV_DIR}: up, status, down, kill NODE.`,
  usage: 'dev up|status|down|kill [flags]',
  local: true,
  subcommands: [up, status, down, kill],
  async run (_ctx, args) {
    const sub = args.positionals[0]
    throw new UsageError(sub === undefined ? 'missing subcommand: up, status, down or kill' : `unknown dev subcommand ${sub}`)
  }
}
