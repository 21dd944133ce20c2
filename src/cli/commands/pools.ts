import type { PoolDetail, PoolEntry } from '../../../proto/index.ts'
import { requirePositionals, type Command } from '../command.ts'
import { printList, printObject } from '../output.ts'

const getCommand: Command = {
  name: 'get',
  summary: 'One pool: what its nodes hold, and its nodes with their state and health.',
  usage: 'pools get NAME',
  async run (ctx, args) {
    const [name] = requirePositionals(args, ['NAME'])
    const p = await ctx.client.get<PoolDetail>(`/pools/${encodeURIComponent(name as string)}`, ctx.signal)
    printObject(ctx.out, ctx.format, [
      ['name', p.name],
      ['nodes', `${p.alive}/${p.nodes} alive`],
      ['slots', `${p.freeSlots}/${p.slots} free`],
      ['gpus', `${p.freeGpus}/${p.gpus} free`],
      ['running', p.running],
      ['queued', p.queued],
      ['health', `${p.healthy} healthy, ${p.degraded} degraded, ${p.unavailable} unavailable`],
      ['members', p.members.map(m => `${m.name} (${m.state}, ${m.health}${m.role === 'router' ? ', router' : ''})`)]
    ], p)
    return 0
  }
}

export const poolsCommand: Command = {
  name: 'pools',
  summary: 'Node pools (gridd --pool NAME; others are in default): nodes alive/total, slots, GPUs, running, queued, nodes by health.',
  usage: 'pools | pools get NAME',
  subcommands: [getCommand],
  async run (ctx, args) {
    requirePositionals(args, [])
    const rows = await ctx.client.get<PoolEntry[]>('/pools', ctx.signal)
    printList(ctx.out, ctx.format, rows, [
      { header: 'pool', value: p => p.name },
      { header: 'nodes', value: p => `${p.alive}/${p.nodes}`, right: true },
      { header: 'slots free', value: p => `${p.freeSlots}/${p.slots}`, right: true },
      { header: 'gpus free', value: p => `${p.freeGpus}/${p.gpus}`, right: true },
      { header: 'running', value: p => p.running, right: true },
      { header: 'queued', value: p => p.queued, right: true },
      { header: 'healthy/degraded/unavailable', value: p => `${p.healthy}/${p.degraded}/${p.unavailable}`, right: true }
    ])
    return 0
  }
}
