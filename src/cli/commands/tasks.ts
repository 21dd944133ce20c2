import type { TaskRecord } from '../../../proto/index.ts'
import type { TaskStreamEvent } from '../../../proto/task-stream.ts'
import { TASK_STATUS_SET, formatDuration } from '../../interface/index.ts'
import { UsageError, requirePositionals, type Command } from '../command.ts'
import { ago, printList, printObject } from '../output.ts'

const command = (t: TaskRecord): string => {
  const c = t.type !== null ? `[${t.type}]${t.command !== null ? ' ' + t.command.join(' ') : ''}` : (t.command ?? []).join(' ')
  return c.length > 60 ? c.slice(0, 57) + '...' : c
}

export const tasksCommand: Command = {
  name: 'tasks',
  summary: 'Tasks in the cluster (newest first), from the replicated records: any node answers for all.',
  usage: 'tasks [--status STATUS] [--node NODE] [--limit N]',
  options: { status: { type: 'string' }, node: { type: 'string' }, limit: { type: 'string' } },
  optionHelp: { status: `only tasks in this status (${[...TASK_STATUS_SET].join(', ')})`, node: 'only tasks on this node (name or id)', limit: 'at most this many' },
  async run (ctx, args) {
    requirePositionals(args, [])
    const q = new URLSearchParams()
    if (typeof args.values.status === 'string') {
      if (!TASK_STATUS_SET.has(args.values.status)) throw new UsageError(`--status must be one of ${[...TASK_STATUS_SET].join(', ')}`)
      q.set('status', args.values.status)
    }
    if (typeof args.values.node === 'string') q.set('node', args.values.node)
    if (typeof args.values.limit === 'string') {
      if (!/^\d+$/.test(args.values.limit) || Number(args.values.limit) < 1) throw new UsageError(`--limit must be a whole number of 1 or more, got ${JSON.stringify(args.values.limit)}`)
      q.set('limit', args.values.limit)
    }
    const list = await ctx.client.get<TaskRecord[]>(`/tasks${q.size > 0 ? `?${q.toString()}` : ''}`, ctx.signal)
    const now = Date.now()
    printList(ctx.out, ctx.format, list, [
      { header: 'id', value: t => t.id },
      { header: 'status', value: t => t.status },
      { header: 'node', value: t => t.nodeName },
      { header: 'attempts', value: t => t.attempts, right: true },
      { header: 'exit', value: t => t.exitCode, right: true },
      { header: 'age', value: t => ago(now - Date.parse(t.createdAt)), right: true },
      { header: 'duration', value: t => t.durationMs === null ? null : formatDuration(t.durationMs), right: true },
      { header: 'command', value: command },
      { header: 'reason', value: t => t.reason === undefined ? null : (t.reason.length > 70 ? t.reason.slice(0, 67) + '...' : t.reason) }
    ])
    return 0
  }
}

export const taskCommand: Command = {
  name: 'task',
  summary: 'One task\'s record: status, node, attempts, exit code, error, times.',
  usage: 'task ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const t = await ctx.client.get<TaskRecord>(`/tasks/${encodeURIComponent(id)}`, ctx.signal)
    const fields: Array<[string, unknown]> = [
      ['id', t.id],
      ['status', t.status],
      ...(t.reason === undefined ? [] : [['reason', t.reason] as [string, unknown]]),
      ['command', t.command === null ? null : t.command.join(' ')],
      ['type', t.type],
      ['node', t.node === null ? null : `${t.nodeName ?? '?'} (${t.node})`],
      ['origin', `${t.originName} (${t.origin})`],
      ...(t.offeredBy === null || t.offeredBy === undefined ? [] : [['offered by', t.offeredBy] as [string, unknown]]),
      ['attempts', t.attempts],
      ['exit code', t.exitCode],
      ['signal', t.signal],
      ['error', t.error],
      ['resources', `cpus ${t.cpus}, gpus ${t.gpus}${t.gpuIds.length > 0 ? ` (${t.gpuIds.join(',')})` : ''}, memory ${t.memory}`],
      ['priority', t.priority],
      ['session', t.session],
      // names only: a record never holds the values
      ...((t.envNames ?? []).length === 0 ? [] : [['env', (t.envNames ?? []).join(', ')] as [string, unknown]]),
      ['created', t.createdAt],
      ['started', t.startedAt],
      ['finished', t.finishedAt],
      ['duration', t.durationMs === null ? null : formatDuration(t.durationMs)]
    ]
    if (t.result !== undefined) fields.push(['result', JSON.stringify(t.result)])
    if (t.cancelRequested) fields.push(['cancel', 'requested'])
    printObject(ctx.out, ctx.format, fields, t)
    return 0
  }
}

export const logsCommand: Command = {
  name: 'logs',
  summary: 'A task\'s output, from the node that ran it (the last part, if it was large); -f follows it until it ends.',
  usage: 'logs ID [-f]',
  options: { follow: { type: 'boolean', short: 'f' } },
  optionHelp: { follow: 'keep printing output until the task ends' },
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const follow = args.values.follow === true
    for await (const ev of ctx.client.stream<TaskStreamEvent>('GET', `/tasks/${encodeURIComponent(id)}/logs?encoding=base64${follow ? '&follow=1' : ''}`, undefined, ctx.signal)) {
      if (ev.type === 'output') {
        const b = Buffer.from(ev.data, 'base64')
        if (ev.stream === 'stderr') ctx.err.write(b)
        else ctx.out.write(b)
      } else if (ev.type === 'gap') {
        ctx.err.write(`gridctl: [${ev.bytes} earlier bytes of output are no longer kept]\n`)
      }
    }
    return 0
  }
}

export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'Cancels a task wherever it runs (TERM to its process group, KILL after the grace period) and waits until it has ended.',
  usage: 'cancel ID [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  optionHelp: { 'no-wait': 'return once the cancel is on its way' },
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    await ctx.client.post(`/tasks/${encodeURIComponent(id)}/cancel`, undefined, ctx.signal)
    let t: TaskRecord | undefined
    if (args.values['no-wait'] !== true) {
      const deadline = Date.now() + 60_000
      while (Date.now() < deadline && !ctx.signal.aborted) {
        t = await ctx.client.get<TaskRecord>(`/tasks/${encodeURIComponent(id)}`, ctx.signal)
        if (!['pending', 'running'].includes(t.status)) break
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
    const status = t?.status ?? 'cancelling'
    printObject(ctx.out, ctx.format, [['id', id], ['status', status]], { id, status })
    return status === 'cancelled' || status === 'cancelling' ? 0 : 1
  }
}

interface DrainResult { id: string, name: string, drain: boolean, running: number, queued: number }

async function selfId (ctx: Parameters<Command['run']>[0]): Promise<string> {
  return (await ctx.client.get<{ id: string }>('/status', ctx.signal)).id
}

export const drainCommand: Command = {
  name: 'drain',
  summary: 'Stops a node (this one by default) from taking new tasks; --wait returns once its running and queued tasks are done.',
  usage: 'drain [NODE] [--wait]',
  options: { wait: { type: 'boolean' } },
  optionHelp: { wait: 'wait until the node runs nothing, showing progress' },
  async run (ctx, args) {
    if (args.positionals.length > 1) throw new UsageError(`unexpected argument ${args.positionals[1] ?? ''}`)
    const node = args.positionals[0] ?? await selfId(ctx)
    let r = await ctx.client.post<DrainResult>(`/nodes/${encodeURIComponent(node)}/drain`, undefined, ctx.signal)
    if (args.values.wait === true) {
      let last = ''
      while (r.running + r.queued > 0 && !ctx.signal.aborted) {
        const line = `gridctl: draining ${r.name}: ${r.running} running, ${r.queued} queued\n`
        if (line !== last) { ctx.err.write(line); last = line }
        await new Promise(resolve => setTimeout(resolve, 500))
        r = await ctx.client.post<DrainResult>(`/nodes/${encodeURIComponent(node)}/drain`, undefined, ctx.signal)
      }
    }
    printObject(ctx.out, ctx.format, [['node', r.name], ['draining', r.drain], ['running', r.running], ['queued', r.queued]], r)
    return 0
  }
}

export const undrainCommand: Command = {
  name: 'undrain',
  summary: 'Lets a drained node (this one by default) take new tasks again.',
  usage: 'undrain [NODE]',
  async run (ctx, args) {
    if (args.positionals.length > 1) throw new UsageError(`unexpected argument ${args.positionals[1] ?? ''}`)
    const node = args.positionals[0] ?? await selfId(ctx)
    const r = await ctx.client.post<DrainResult>(`/nodes/${encodeURIComponent(node)}/undrain`, undefined, ctx.signal)
    printObject(ctx.out, ctx.format, [['node', r.name], ['draining', r.drain], ['running', r.running], ['queued', r.queued]], r)
    return 0
  }
}
