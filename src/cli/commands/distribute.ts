import { readFileSync } from 'node:fs'
import { JOB_AGGREGATES, JOB_STRATEGIES } from '../../../proto/job-names.ts'
import type { JobRecord, JobStreamEvent } from '../../../proto/index.ts'
import { parseItems } from '../../jobs/items.ts'
import { UsageError, type Command, type CommandContext } from '../command.ts'
import { followStream } from '../follow-stream.ts'
import { bar, clip, safeText } from '../output.ts'
import { RUN_OPTIONS, RUN_OPTION_HELP, SYNC_OPTIONS, SYNC_OPTION_HELP, submitDetached, taskBody, uploadSync } from './run.ts'

const { payload: _p, 'no-stdin': _n, verbose: _v, strategy: _s, ...runFlags } = RUN_OPTIONS
const { payload: _ph, 'no-stdin': _nh, verbose: _vh, strategy: _sh, ...runHelp } = RUN_OPTION_HELP
// every run gets the tree (each node is sent only what it lacks); --fetch is not offered: the runs would write over
// each other's files in DIR (print results to stdout instead: they are the job's results)
const { fetch: _f, ...syncFlags } = SYNC_OPTIONS
const { fetch: _fh, ...syncHelp } = SYNC_OPTION_HELP

/** Reads all of stdin (for --items -). */
async function readStdin (): Promise<string> {
  const parts: Buffer[] = []
  for await (const d of process.stdin) parts.push(d as Buffer)
  return Buffer.concat(parts).toString('utf8')
}

/** The exit code of a job's final status: 0 completed, 1 failed, 130 cancelled. */
export function jobExitCode (status: string): number {
  return status === 'completed' ? 0 : status === 'cancelled' ? 130 : 1
}

export function jobSummary (j: JobRecord, elapsedMs?: number): string {
  const took = elapsedMs === undefined ? '' : ` in ${(elapsedMs / 1000).toFixed(1)} s`
  return `job ${j.id} ${j.status}: ${j.succeeded} succeeded, ${j.failed} failed, ${j.cancelled} cancelled of ${j.total}${took}${j.status === 'completed' || j.error === null ? '' : ` (${safeText(j.error)})`}`
}

export const distributeCommand: Command = {
  name: 'distribute',
  trailingCommand: true,
  summary: 'Runs one command over the cluster: once per item (or per node with broadcast), gathering the results; exits 0 when the job succeeded.',
  usage: 'distribute [--strategy S] [--items FILE|-] [--count N] [--aggregate A] [--reduce \'SHELL CMD\'] [--max-parallel N] [--sync DIR [--sync-exclude GLOB]... [--sync-max SIZE]] [--detach] [placement and run flags of run] -- CMD [ARGS...] | distribute --type NAME --items FILE ...',
  options: {
    strategy: { type: 'string' },
    items: { type: 'string' },
    count: { type: 'string' },
    aggregate: { type: 'string' },
    reduce: { type: 'string' },
    'max-parallel': { type: 'string' },
    ...runFlags,
    ...syncFlags
  },
  optionHelp: {
    strategy: `${JOB_STRATEGIES.join(', ')} (default least-loaded)`,
    items: 'a file of items (a JSON array, or one item per line), or - for stdin',
    count: 'N runs, items 0 to N-1',
    aggregate: `${JOB_AGGREGATES.join(', ')} (default all-success)`,
    reduce: 'map-reduce: a shell command that gets every result on stdin as JSON lines; its stdout is the answer',
    'max-parallel': 'at most this many runs at once across the cluster (default: as many as fit)',
    ...runHelp,
    ...syncHelp,
    detach: 'print the job id and return at once'
  },
  async run (ctx, args) {
    const v = args.values
    const body = taskBody(v, args.positionals, ctx.env, 'distribute')
    const strategy = typeof v.strategy === 'string' ? v.strategy : 'least-loaded'
    if (!(JOB_STRATEGIES as readonly string[]).includes(strategy)) throw new UsageError(`--strategy must be one of ${JOB_STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`)
    body.strategy = strategy
    if (typeof v.aggregate === 'string') {
      if (!(JOB_AGGREGATES as readonly string[]).includes(v.aggregate)) throw new UsageError(`--aggregate must be one of ${JOB_AGGREGATES.join(', ')}, got ${JSON.stringify(v.aggregate)}`)
      body.aggregate = v.aggregate
    }
    if (typeof v.reduce === 'string') {
      if (strategy !== 'map-reduce') throw new UsageError('--reduce is only for --strategy map-reduce')
      body.reduce = v.reduce
    } else if (strategy === 'map-reduce') throw new UsageError('--strategy map-reduce needs --reduce \'SHELL CMD\'')
    if (typeof v.items === 'string' && typeof v.count === 'string') throw new UsageError('give --items or --count, not both')
    if (strategy === 'broadcast' && (v.items !== undefined || v.count !== undefined)) throw new UsageError('broadcast runs once on every eligible node: it takes no --items and no --count')
    if (typeof v.count === 'string') {
      if (!/^\d+$/.test(v.count) || Number(v.count) < 1) throw new UsageError(`--count must be a whole number of 1 or more, got ${JSON.stringify(v.count)}`)
      body.count = Number(v.count)
    }
    if (typeof v['max-parallel'] === 'string') {
      if (!/^\d+$/.test(v['max-parallel']) || Number(v['max-parallel']) < 1) throw new UsageError(`--max-parallel must be a whole number of 1 or more, got ${JSON.stringify(v['max-parallel'])}`)
      body.maxParallel = Number(v['max-parallel'])
    }
    if (strategy !== 'broadcast' && v.items === undefined && v.count === undefined) throw new UsageError(`the ${strategy} strategy needs --items FILE (or -) or --count N`)
    if (typeof v.items === 'string') {
      const source = v.items === '-' ? 'stdin' : v.items
      let text: string
      try {
        text = v.items === '-' ? await readStdin() : readFileSync(v.items, 'utf8')
      } catch (err) {
        throw new UsageError(`--items ${source}: ${(err as Error).message}`)
      }
      try {
        body.items = parseItems(text, `--items ${source}`)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }
    }
    await uploadSync(ctx, v, body)
    if (v.detach === true) return await submitDetached(ctx, '/jobs', body)
    return await follow(ctx, body)
  }
}

/**
 * Streams the job: a progress bar on a terminal, a line per finished run otherwise, one JSON document with -o json.
 * The bar and -o json print no run as it ends, so they ask for no `result` events (`results: false`: a large job's
 * stream is then a few events); -o json fetches the job with its results once it has ended.
 */
async function follow (ctx: CommandContext, body: Record<string, unknown>): Promise<number> {
  const json = ctx.format === 'json'
  const bar = ctx.tty && !json ? new ProgressBar(ctx) : undefined
  if (json || bar !== undefined) body.results = false
  const started = Date.now()
  return await followStream<JobStreamEvent>(ctx, {
    what: 'job',
    path: '/jobs',
    cancelBase: '/jobs',
    body,
    lastEvent: 'end',
    lookUp: id => `gridctl job ${id}`,
    goesOn: id => `job ${id} goes on in the cluster (a successor drives it if its node died): gridctl job ${id}`,
    cancelPrefix: () => ctx.tty ? '\r\x1b[K' : '',
    onBreak: () => { bar?.clear() }
  }, async (ev, h) => {
    switch (ev.type) {
      case 'accepted':
        h.accepted(ev.id)
        bar?.draw({ done: 0, running: 0, failed: 0, total: ev.total })
        break
      case 'progress': bar?.draw(ev); break
      case 'result':
        if (json || bar !== undefined) break
        ctx.out.write(resultLine(ev) + '\n')
        break
      case 'done': {
        const j = json ? await ctx.client.get<JobRecord>(`/jobs/${encodeURIComponent(ev.job.id)}`, ctx.signal) : ev.job
        bar?.clear()
        if (json) {
          ctx.out.write(JSON.stringify(j, null, 2) + '\n')
        } else {
          ctx.out.write(jobSummary(j, Date.now() - started) + '\n')
          if (j.answer !== null && j.answer !== '') ctx.out.write(j.answer.endsWith('\n') ? j.answer : j.answer + '\n')
        }
        if (j.status === 'failed' && json) ctx.err.write(`gridctl: job ${j.id} failed: ${j.error ?? ''}\n`)
        return jobExitCode(j.status)
      }
    }
    return undefined
  })
}

/** One finished run, on one line, safe for any terminal: index, node, status, exit code, the start of its stdout. */
export function resultLine (r: Extract<JobStreamEvent, { type: 'result' }>): string {
  const out = r.stdout.trim().split('\n', 1)[0] ?? ''
  const shown = out === '' ? '' : `: ${clip(safeText(out), 200)}`
  return `[${r.index}] ${r.nodeName ?? '-'} ${r.status}${r.exitCode === null ? '' : ` exit ${r.exitCode}`}${r.status === 'completed' || r.error === undefined ? '' : ` (${clip(safeText(r.error), 200)})`}${shown}`
}

/** done / total, running, failed, rate and ETA, redrawn in place on one terminal line. */
class ProgressBar {
  private readonly started = Date.now()
  private drawn = false

  constructor (private readonly ctx: CommandContext) {}

  draw (p: { done: number, running: number, failed: number, total: number }): void {
    const secs = (Date.now() - this.started) / 1000
    const rate = secs > 0 ? p.done / secs : 0
    const eta = rate > 0 && p.done < p.total ? `, ETA ${formatSecs((p.total - p.done) / rate)}` : ''
    const line = `${bar(p.total === 0 ? 0 : p.done / p.total, 30)} ${p.done}/${p.total} done, ${p.running} running, ${p.failed} failed, ${rate.toFixed(1)}/s${eta}`
    this.ctx.out.write(`\r\x1b[K${clip(line, this.ctx.columns?.())}`)
    this.drawn = true
  }

  clear (): void {
    if (this.drawn) this.ctx.out.write('\r\x1b[K')
    this.drawn = false
  }
}

function formatSecs (s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}
