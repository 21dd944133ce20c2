import { JOB_STATUSES } from '../../../proto/job-names.ts'
import type { JobRecord } from '../../../proto/index.ts'
import { UsageError, requirePositionals, type Command } from '../command.ts'
import { ago, printList, printObject } from '../output.ts'

const command = (j: JobRecord): string => {
  const c = j.type !== null ? `[${j.type}]${j.command !== null ? ' ' + j.command.join(' ') : ''}` : (j.command ?? []).join(' ')
  return c.length > 60 ? c.slice(0, 57) + '...' : c
}

export const jobsCommand: Command = {
  name: 'jobs',
  summary: 'Jobs in the cluster (newest first), from the replicated records: any node answers for all.',
  usage: 'jobs [--status STATUS] [--limit N]',
  options: { status: { type: 'string' }, limit: { type: 'string' } },
  optionHelp: { status: `only jobs in this status (${JOB_STATUSES.join(', ')})`, limit: 'at most this many' },
  async run (ctx, args) {
    requirePositionals(args, [])
    const q = new URLSearchParams()
    if (typeof args.values.status === 'string') {
      if (!(JOB_STATUSES as readonly string[]).includes(args.values.status)) throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')}`)
      q.set('status', args.values.status)
    }
    if (typeof args.values.limit === 'string') {
      if (!/^\d+$/.test(args.values.limit) || Number(args.values.limit) < 1) throw new UsageError(`--limit must be a whole number of 1 or more, got ${JSON.stringify(args.values.limit)}`)
      q.set('limit', args.values.limit)
    }
    const list = await ctx.client.get<JobRecord[]>(`/jobs${q.size > 0 ? `?${q.toString()}` : ''}`, ctx.signal)
    const now = Date.now()
    printList(ctx.out, ctx.format, list, [
      { header: 'id', value: j => j.id },
      { header: 'status', value: j => j.status },
      { header: 'strategy', value: j => j.strategy },
      { header: 'aggregate', value: j => j.aggregate },
      { header: 'done', value: j => `${j.succeeded + j.failed + j.cancelled}/${j.total}`, right: true },
      { header: 'failed', value: j => j.failed, right: true },
      { header: 'driver', value: j => j.driverName },
      { header: 'age', value: j => ago(now - Date.parse(j.createdAt)), right: true },
      { header: 'command', value: command }
    ])
    return 0
  }
}

const jobCancelCommand: Command = {
  name: 'cancel',
  summary: 'Cancels a job from any node: every run of it ends; waits until the job has ended.',
  usage: 'job cancel ID [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  optionHelp: { 'no-wait': 'return once the cancel is on its way' },
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    await ctx.client.post(`/jobs/${encodeURIComponent(id)}/cancel`, undefined, ctx.signal)
    let j: JobRecord | undefined
    if (args.values['no-wait'] !== true) {
      const deadline = Date.now() + 60_000
      while (Date.now() < deadline && !ctx.signal.aborted) {
        j = await ctx.client.get<JobRecord>(`/jobs/${encodeURIComponent(id)}?results=0`, ctx.signal)
        if (j.finishedAt !== null) break
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
    const status = j?.finishedAt === null || j === undefined ? 'cancelling' : j.status
    printObject(ctx.out, ctx.format, [['id', id], ['status', status]], { id, status })
    return 0
  }
}

const jobRetryCommand: Command = {
  name: 'retry',
  summary: 'Runs again the items of an ended job that did not succeed, keeping the rest; this node drives it.',
  usage: 'job retry ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const r = await ctx.client.post<{ id: string, retrying: number }>(`/jobs/${encodeURIComponent(id)}/retry`, undefined, ctx.signal)
    printObject(ctx.out, ctx.format, [['id', r.id], ['retrying', r.retrying]], r)
    return 0
  }
}

export const jobCommand: Command = {
  name: 'job',
  summary: 'One job: status, counts, answer and per-item results, from any node.',
  usage: 'job ID | job cancel ID | job retry ID',
  subcommands: [jobCancelCommand, jobRetryCommand],
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const j = await ctx.client.get<JobRecord>(`/jobs/${encodeURIComponent(id)}`, ctx.signal)
    if (ctx.format === 'json') {
      ctx.out.write(JSON.stringify(j, null, 2) + '\n')
    } else {
      printObject(ctx.out, ctx.format, [
        ['id', j.id],
        ['status', j.status],
        ['strategy', j.strategy],
        ['aggregate', j.aggregate],
        ['command', j.command === null ? null : j.command.join(' ')],
        ['type', j.type],
        ['reduce', j.reduce],
        ['total', j.total],
        ['succeeded', j.succeeded],
        ['failed', j.failed],
        ['cancelled', j.cancelled],
        ['running', j.running],
        ['pending', j.pending],
        ['max parallel', j.maxParallel],
        ['origin', j.originName],
        ['driver', j.driverName],
        ['answer', j.answer],
        ['error', j.error],
        ['created', j.createdAt],
        ['finished', j.finishedAt]
      ], j)
      ctx.out.write('\n')
      printList(ctx.out, ctx.format, j.results ?? [], [
        { header: 'index', value: r => r.index, right: true },
        { header: 'item', value: r => { const t = typeof r.item === 'string' ? r.item : JSON.stringify(r.item); return t.length > 40 ? t.slice(0, 37) + '...' : t } },
        { header: 'status', value: r => r.status },
        { header: 'node', value: r => r.nodeName },
        { header: 'exit', value: r => r.exitCode, right: true },
        { header: 'attempts', value: r => r.attempts, right: true },
        { header: 'stdout', value: r => { const t = r.stdout.trim().split('\n', 1)[0] ?? ''; return t.length > 60 ? t.slice(0, 57) + '...' : t } }
      ])
    }
    return 0
  }
}
