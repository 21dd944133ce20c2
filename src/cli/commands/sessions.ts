import type { SessionEntry, SessionWorkerInfo } from '../../../proto/index.ts'
import { formatDuration } from '../../interface/index.ts'
import { UsageError, requirePositionals, type Command } from '../command.ts'
import { ago, printList, printObject } from '../output.ts'

const worker = (s: SessionEntry): SessionWorkerInfo | null => (s.worker ?? null) as SessionWorkerInfo | null

function fields (s: SessionEntry): Array<[string, unknown]> {
  return [
    ['id', s.id],
    ['value', JSON.stringify(s.value)],
    ['owner', s.owner === null ? null : `${s.ownerName ?? '?'} (${s.owner})`],
    ['ttl', s.ttlMs === null ? 'none' : formatDuration(s.ttlMs)],
    ['expires', s.expiresAt],
    ['worker', worker(s) === null ? null : `${worker(s)?.type ?? ''} pid ${worker(s)?.pid ?? ''} on ${worker(s)?.nodeName ?? ''}`],
    ['gpus', worker(s)?.gpus ?? null],
    ['served', worker(s)?.served ?? null],
    ['idle', worker(s) === null ? null : ago(Date.now() - (worker(s)?.lastUsedAt ?? 0))],
    ['created', s.createdAt],
    ['updated', s.updatedAt]
  ]
}

const ls: Command = {
  name: 'ls',
  summary: 'Every live session in the cluster.',
  usage: 'sessions ls',
  async run (ctx, args) {
    requirePositionals(args, [])
    const list = await ctx.client.get<SessionEntry[]>('/sessions', ctx.signal)
    const now = Date.now()
    printList(ctx.out, ctx.format, list, [
      { header: 'id', value: s => s.id },
      { header: 'owner', value: s => s.ownerName ?? s.owner },
      { header: 'worker pid', value: s => worker(s)?.pid, right: true },
      { header: 'gpus', value: s => worker(s)?.gpus.join(',') },
      { header: 'served', value: s => worker(s)?.served, right: true },
      { header: 'idle', value: s => worker(s) === null ? null : ago(now - (worker(s)?.lastUsedAt ?? now)), right: true },
      { header: 'ttl', value: s => s.ttlMs === null ? '-' : formatDuration(s.ttlMs) },
      { header: 'updated', value: s => s.updatedAt },
      { header: 'value', value: s => { const t = JSON.stringify(s.value); return t.length > 60 ? t.slice(0, 57) + '...' : t } }
    ])
    return 0
  }
}

const get: Command = {
  name: 'get',
  summary: 'One session; exits 1 when it does not exist.',
  usage: 'sessions get ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const s = await ctx.client.get<SessionEntry>(`/sessions/${encodeURIComponent(id)}`, ctx.signal)
    printObject(ctx.out, ctx.format, fields(s), s)
    return 0
  }
}

const put: Command = {
  name: 'put',
  summary: 'Creates or replaces a session with a JSON value (at most 64 KiB), visible on every node.',
  usage: 'sessions put ID JSON [--ttl DURATION] [--owner NODE]',
  options: { ttl: { type: 'string' }, owner: { type: 'string' } },
  optionHelp: { ttl: 'expire on every node after this long (as in 30s, 15m, 2h)', owner: 'node (name or id) that owns the session' },
  async run (ctx, args) {
    const [id, json] = requirePositionals(args, ['ID', 'JSON']) as [string, string]
    let value: unknown
    try {
      value = JSON.parse(json)
    } catch (err) {
      throw new UsageError(`the session's value ${JSON.stringify(json.length > 40 ? json.slice(0, 37) + '...' : json)} is not JSON (${(err as Error).message}); quote it for the shell, as in '{"a":1}' or '"text"'`)
    }
    const body: Record<string, unknown> = { value }
    if (typeof args.values.ttl === 'string') body.ttl = args.values.ttl
    if (typeof args.values.owner === 'string') body.owner = args.values.owner
    const s = await ctx.client.put<SessionEntry>(`/sessions/${encodeURIComponent(id)}`, body, ctx.signal)
    printObject(ctx.out, ctx.format, fields(s), s)
    return 0
  }
}

const rm: Command = {
  name: 'rm',
  summary: 'Deletes a session on every node; exits 1 when it does not exist.',
  usage: 'sessions rm ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const r = await ctx.client.delete<{ id: string, deleted: boolean }>(`/sessions/${encodeURIComponent(id)}`, ctx.signal)
    printObject(ctx.out, ctx.format, [['id', r.id], ['deleted', r.deleted]], r)
    return 0
  }
}

const close: Command = {
  name: 'close',
  summary: 'Ends the session\'s warm worker wherever it runs (the session stays; its next request starts a new one).',
  usage: 'sessions close ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const r = await ctx.client.post<{ id: string, closed: number, node: string | null }>(`/sessions/${encodeURIComponent(id)}/close`, undefined, ctx.signal)
    printObject(ctx.out, ctx.format, [['id', r.id], ['workers closed', r.closed], ['node', r.node]], r)
    return 0
  }
}

export const sessionsCommand: Command = {
  name: 'sessions',
  summary: 'The replicated session store: ls, get, put, rm, close (end its warm worker).',
  usage: 'sessions ls | get ID | put ID JSON [--ttl D] [--owner NODE] | rm ID | close ID',
  subcommands: [ls, get, put, rm, close],
  async run (ctx, args) {
    if (args.positionals.length === 0) return await ls.run(ctx, args)
    throw new UsageError(`unknown sessions subcommand ${args.positionals[0] ?? ''}`)
  }
}
