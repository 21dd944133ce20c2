import type { NodeEntry } from '../../../proto/index.ts'
import { MEMBER_STATES } from '../../interface/index.ts'
import { UsageError, requirePositionals, type Command } from '../command.ts'
import { ago, bar, cpuText, printList, printObject, type Column } from '../output.ts'
import { healthText } from './health.ts'

const columns: Array<Column<NodeEntry>> = [
  { header: 'name', value: n => n.self ? `${n.name} *` : n.name },
  { header: 'id', value: n => n.id },
  { header: 'state', value: n => n.drain && n.state === 'alive' ? 'alive (draining)' : n.state },
  { header: 'health', value: n => healthText(n, 40) },
  { header: 'region', value: n => n.region },
  { header: 'cpu', value: n => n.load === null ? '-' : `${bar(n.load.cpu, 8)} ${cpuText(n.load.cpu).trimStart()}` },
  { header: 'mem', value: n => n.load === null ? '-' : `${Math.round((1 - n.load.memFreeMiB / Math.max(1, n.load.memTotalMiB)) * 100)}%` },
  { header: 'gpus', value: n => n.load === null ? n.gpus.length : `${n.load.freeGpus}/${n.load.gpus}`, right: true },
  // running + queued on that node, spelled out in the header: "TASKS 0+0" said neither
  { header: 'run+queued', value: n => n.load === null ? '-' : `${n.load.running}+${n.load.queued}`, right: true },
  { header: 'labels', value: n => n.labels },
  { header: 'capabilities', value: n => n.capabilities },
  { header: 'last seen', value: n => ago(n.heartbeatAgeMs), right: true }
]

const getCommand: Command = {
  name: 'get',
  summary: 'One node, by peer id, name or unique id prefix.',
  usage: 'nodes get ID|NAME',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID|NAME'])
    const n = await ctx.client.get<NodeEntry>(`/nodes/${encodeURIComponent(id as string)}`, ctx.signal)
    printObject(ctx.out, ctx.format, [
      ['id', n.id],
      ['name', n.name],
      ['state', n.state],
      ['drain', n.drain],
      ['health', n.health],
      ['health reason', n.healthReason],
      ['health since', n.healthSince],
      ['breaker', n.breaker],
      ['paused', n.paused],
      ['role', n.role],
      ['version', n.version],
      ['addrs', n.addrs],
      ['region', n.region],
      ['labels', n.labels],
      ['capabilities', n.capabilities],
      ['gpus', n.gpus.map(g => `${g.index}:${g.name} (${g.memoryTotalMiB}MiB)`)],
      ['load', n.load === null ? null : `cpu ${cpuText(n.load.cpu).trimStart()}, mem free ${n.load.memFreeMiB}/${n.load.memTotalMiB}MiB, running ${n.load.running}, queued ${n.load.queued}, free slots ${n.load.freeSlots}, free gpus ${n.load.freeGpus}/${n.load.gpus}`],
      ['incarnation', n.incarnation],
      ['last seen', n.lastSeen === null ? null : `${n.lastSeen} (${ago(n.heartbeatAgeMs)} ago)`]
    ], n)
    return 0
  }
}

const forgetCommand: Command = {
  name: 'forget',
  summary: 'Removes a dead or departed node (or any writer of state, by its full peer id) from the cluster\'s records on every node.',
  usage: 'nodes forget ID|NAME',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID|NAME'])
    const r = await ctx.client.delete<{ id: string, name: string, forgotten: boolean }>(`/nodes/${encodeURIComponent(id as string)}`, ctx.signal)
    printObject(ctx.out, ctx.format, [['id', r.id], ['name', r.name], ['forgotten', r.forgotten]], r)
    return 0
  }
}

export const nodesCommand: Command = {
  name: 'nodes',
  summary: 'Every known node with its state (alive, suspect, dead, left), load, labels and capabilities.',
  usage: 'nodes [--state STATE] | nodes get ID|NAME | nodes forget ID|NAME',
  options: { state: { type: 'string' } },
  optionHelp: { state: `only nodes in this state (${MEMBER_STATES.join(', ')})` },
  subcommands: [getCommand, forgetCommand],
  async run (ctx, args) {
    requirePositionals(args, [])
    const state = args.values.state
    if (typeof state === 'string' && !(MEMBER_STATES as readonly string[]).includes(state)) throw new UsageError(`--state must be one of ${MEMBER_STATES.join(', ')}`)
    const nodes = await ctx.client.get<NodeEntry[]>(typeof state === 'string' ? `/nodes?state=${state}` : '/nodes', ctx.signal)
    printList(ctx.out, ctx.format, nodes, columns)
    return 0
  }
}
