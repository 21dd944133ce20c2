import type { StatsResponse, WorkflowRecord } from '../../../proto/index.ts'
import { formatBytes, formatDurationExact, parseDuration } from '../../interface/index.ts'
import { UsageError, requirePositionals, type Command, type CommandContext } from '../command.ts'
import { bar, clip, cpuText, printObject, safeText } from '../output.ts'

const rate = (x: number | null): string => x === null ? '-' : x.toFixed(1)

/** Parts of a summary line, joined on one line while they fit `width`, else continued on the next. */
function fit (parts: string[], width: number | undefined): string[] {
  const out: string[] = []
  for (const p of parts) {
    const last = out[out.length - 1]
    if (last !== undefined && (width === undefined || last.length + 3 + p.length <= width)) out[out.length - 1] = `${last}   ${p}`
    else out.push(p)
  }
  return out
}

/**
 * The dashboard's lines for one snapshot (no colours: they survive any terminal and any log). With a `width` (the
 * terminal's columns) the summary lines break between their parts and table rows are cut to it, so that nothing wraps.
 */
export function renderStats (s: StatsResponse, opts: { header?: string, width?: number } = {}): string[] {
  const lines: string[] = []
  if (opts.header !== undefined) lines.push(opts.header)
  lines.push(`nodes ${s.nodes.total}: ${s.nodes.alive} alive, ${s.nodes.suspect} suspect, ${s.nodes.dead} dead, ${s.nodes.left} left${s.nodes.draining > 0 ? `, ${s.nodes.draining} draining` : ''}`)
  lines.push(...fit([`slots ${s.slots.free}/${s.slots.total} free`, `gpus ${s.gpus.free}/${s.gpus.total} free (util ${s.gpus.utilizationPercent}%, ${formatBytes(s.gpus.memoryUsedBytes)}/${formatBytes(s.gpus.memoryTotalBytes)})`], opts.width))
  lines.push(...fit([`tasks ${s.tasks.running} running, ${s.tasks.queued} queued`, `${rate(s.tasks.donePerSecond)} done/s, ${rate(s.tasks.failedPerSecond)} failed/s`, `(${s.tasks.done} done, ${s.tasks.failed} failed)`, `sessions ${s.sessions} (${s.workers} warm workers)`], opts.width))
  lines.push('')
  const rows = s.perNode.map(n => [
    safeText(n.name),
    n.drain && n.state === 'alive' ? 'draining' : n.state,
    `${bar(n.cpu)} ${cpuText(n.cpu)}`,
    `${bar(n.memUsed)} ${String(Math.round(n.memUsed * 100)).padStart(3)}%`,
    n.gpus === 0 ? '-' : `${bar(n.gpuUtilizationPercent / 100)} ${n.gpus - n.freeGpus}/${n.gpus}`,
    `${n.slots - n.freeSlots}/${n.slots}`,
    `${n.running}+${n.queued}`
  ])
  const header = ['NODE', 'STATE', 'CPU', 'MEM', 'GPU USE', 'SLOTS', 'RUN+QUEUED']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] as string).length)))
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()
  lines.push(fmt(header))
  for (const r of rows) lines.push(fmt(r))
  return lines.map(l => clip(l, opts.width))
}

const mib = (b: number): string => `${Math.round(b / 1048576 * 10) / 10} MiB`

export const statsCommand: Command = {
  name: 'stats',
  summary: 'The cluster\'s figures once, summed over its nodes: nodes by state, slots, GPUs, tasks, throughput, sessions.',
  usage: 'stats',
  async run (ctx, args) {
    requirePositionals(args, [])
    const s = await ctx.client.get<StatsResponse>('/stats', ctx.signal)
    const cache = s.syncCache === undefined ? [] : [`sync cache ${mib(s.syncCache.bytes)} of ${mib(s.syncCache.limitBytes)} (${s.syncCache.blobs} blobs, this node)`]
    if (ctx.format === 'table') {
      ctx.out.write([...renderStats(s), ...cache].join('\n') + '\n')
      return 0
    }
    printObject(ctx.out, ctx.format, [
      ['nodes', `${s.nodes.total} (${s.nodes.alive} alive, ${s.nodes.suspect} suspect, ${s.nodes.dead} dead, ${s.nodes.left} left, ${s.nodes.draining} draining)`],
      ['slots', `${s.slots.free}/${s.slots.total} free`],
      ['gpus', `${s.gpus.free}/${s.gpus.total} free, utilisation ${s.gpus.utilizationPercent}%`],
      ['tasks', `${s.tasks.running} running, ${s.tasks.queued} queued, ${s.tasks.done} done, ${s.tasks.failed} failed`],
      ['throughput', `${rate(s.tasks.donePerSecond)} done/s, ${rate(s.tasks.failedPerSecond)} failed/s`],
      ['sessions', `${s.sessions} (${s.workers} with warm workers)`],
      ...(s.syncCache === undefined ? [] : [['sync cache', cache[0] as string] as [string, string]])
    ], s)
    return 0
  }
}

export const watchCommand: Command = {
  name: 'watch',
  summary: 'A live view of the cluster: nodes with load bars, GPU use, tasks, throughput; q or Ctrl-C quits.',
  usage: 'watch [--interval DURATION] [--count N]',
  options: { interval: { type: 'string' }, count: { type: 'string' } },
  optionHelp: { interval: 'time between refreshes (default 1s)', count: 'stop after this many refreshes' },
  async run (ctx, args) {
    requirePositionals(args, [])
    const intervalMs = typeof args.values.interval === 'string' ? parseDuration(args.values.interval) : 1000
    if (intervalMs === undefined || intervalMs < 100) throw new UsageError('--interval must be a duration of at least 100ms (as in 500ms or 2s)')
    const count = typeof args.values.count === 'string' ? Number(args.values.count) : Infinity
    if (!Number.isFinite(count) && count !== Infinity) throw new UsageError('--count must be a number')
    return await watch(ctx, intervalMs, count)
  }
}

/** The workflows not ended (running or paused), one line each: id, name, status, jobs done, the jobs running. */
export function workflowLines (list: WorkflowRecord[], width?: number): string[] {
  const open = list.filter(w => w.status === 'running' || w.status === 'paused')
  if (open.length === 0) return []
  const lines = ['', `workflows: ${open.length} not ended`]
  for (const w of open.slice(0, WATCH_WORKFLOWS_MAX)) {
    const done = w.jobs.filter(j => j.status === 'succeeded').length
    const running = w.jobs.filter(j => j.status === 'running').map(j => j.name)
    const line = `  ${w.id} ${safeText(w.name)} ${w.status} ${done}/${w.jobs.length} done${running.length > 0 ? `, running ${running.join(' ')}` : ''}`
    lines.push(width === undefined ? line : clip(line, width))
  }
  return lines
}

/** Most workflows `watch` lists. */
const WATCH_WORKFLOWS_MAX = 10

async function watch (ctx: CommandContext, intervalMs: number, count: number): Promise<number> {
  const tty = ctx.tty
  const quit = new AbortController()
  const onKey = (d: Buffer): void => {
    const k = d.toString('utf8')
    if (k === 'q' || k === 'Q' || k === '\u0003') quit.abort()
  }
  const stdin = process.stdin
  const raw = tty && stdin.isTTY === true
  if (raw) {
    stdin.setRawMode(true)
    stdin.resume()
    stdin.on('data', onKey)
    ctx.out.write('\u001b[?25l\u001b[2J')
  }
  ctx.signal.addEventListener('abort', () => { quit.abort() }, { once: true })
  let frames = 0
  try {
    while (!quit.signal.aborted && frames < count) {
      let lines: string[]
      try {
        const s = await ctx.client.get<StatsResponse>('/stats', quit.signal)
        // on a terminal, its width now (it may have been resized): a wrapped line would break the redraw
        const width = tty ? (ctx.columns?.() ?? undefined) : undefined
        lines = renderStats(s, { header: `grid watch · ${s.at.slice(0, 19).replace('T', ' ')}Z · every ${formatDurationExact(intervalMs)}${raw ? ' · q quits' : ''}`, ...(width === undefined ? {} : { width }) })
        // a daemon of an earlier release has no workflows: the rest of the view stays
        const open = await Promise.all(['running', 'paused'].map(async st => await ctx.client.get<WorkflowRecord[]>(`/workflows?status=${st}&limit=${WATCH_WORKFLOWS_MAX}`, quit.signal).catch(() => [])))
        lines.push(...workflowLines(open.flat(), width))
      } catch (err) {
        if (quit.signal.aborted) break
        lines = [`grid watch: ${(err as Error).message}`]
      }
      if (raw) ctx.out.write('\u001b[H' + lines.map(l => l + '\u001b[K').join('\n') + '\n\u001b[J')
      else ctx.out.write((frames > 0 ? '\n' : '') + lines.join('\n') + '\n')
      frames++
      if (frames >= count) break
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, intervalMs)
        quit.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
      })
    }
  } finally {
    if (raw) {
      stdin.off('data', onKey)
      stdin.setRawMode(false)
      stdin.pause()
      ctx.out.write('\u001b[?25h')
    }
  }
  return 0
}
