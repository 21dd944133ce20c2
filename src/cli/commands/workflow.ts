import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { WORKFLOW_STATUSES } from '../../../proto/workflow-names.ts'
import type { WorkflowJobRecord, WorkflowRecord, WorkflowStreamEvent } from '../../../proto/index.ts'
import { UsageError, requirePositionals, type Command, type CommandContext } from '../command.ts'
import { followStream } from '../follow-stream.ts'
import { ago, printList, printObject, safeText } from '../output.ts'
import { logsCommand } from './tasks.ts'

/** The exit code of a workflow's end: 0 succeeded, 1 failed, 130 cancelled (as run and distribute). */
export function workflowExitCode (status: string): number {
  return status === 'succeeded' ? 0 : status === 'cancelled' ? 130 : 1
}

/** `gridctl workflow status ID -o json`: exactly the issue's document. */
export function workflowJson (w: WorkflowRecord): unknown {
  return {
    id: w.id,
    name: w.name,
    status: w.status,
    jobs: w.jobs.map(j => ({ name: j.name, status: j.status, needs: j.needs, node: j.node, nodeName: j.nodeName, attempts: j.attempts, exitCode: j.exitCode, startedAt: j.startedAt, endedAt: j.endedAt }))
  }
}

/**
 * A workflow file that is a JSON object, parsed as YAML would (YAML is a superset of JSON), else undefined (then the
 * YAML parser reads it, and says what is wrong). One difference is kept out: a key given twice, which JSON.parse takes
 * the last of and YAML rejects, goes to the YAML parser.
 */
export function parseJsonObject (text: string): Record<string, unknown> | undefined {
  if (!/^\s*\{/.test(text)) return undefined
  let v: unknown
  try { v = JSON.parse(text) } catch { return undefined }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || hasDuplicateKey(text)) return undefined
  return v as Record<string, unknown>
}

/** Whether an object of this (valid) JSON text names a key twice. */
function hasDuplicateKey (text: string): boolean {
  const open: Array<Set<string> | null> = []
  let atKey = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (ch === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      const keys = open[open.length - 1]
      if (atKey && keys !== undefined && keys !== null) {
        const k = JSON.parse(text.slice(i, j + 1)) as string
        if (keys.has(k)) return true
        keys.add(k)
        atKey = false
      }
      i = j
    } else if (ch === '{') { open.push(new Set()); atKey = true } else if (ch === '[') { open.push(null); atKey = false } else if (ch === '}' || ch === ']') { open.pop(); atKey = false } else if (ch === ',') atKey = open[open.length - 1] !== null && open.length > 0
  }
  return false
}

/** The workflow file (YAML or JSON) with --param K=V over its params: the body of POST /v1/workflows. */
export function workflowBody (file: string, params: string[], detach: boolean): Record<string, unknown> {
  let text: string
  try { text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8') } catch (err) { throw new UsageError(`cannot read ${file}: ${(err as Error).message}`) }
  let content: unknown = parseJsonObject(text)
  if (content === undefined) {
    // the YAML parser (72 modules, about as long as the rest of gridctl's start) is loaded only for a file that is
    // not a JSON object: bench/workflows and generated workflows are JSON
    const { parse: parseYaml } = createRequire(import.meta.url)('yaml') as typeof import('yaml')
    try { content = parseYaml(text) } catch (err) { throw new UsageError(`${file} is neither YAML nor JSON: ${(err as Error).message}`) }
  }
  if (typeof content !== 'object' || content === null || Array.isArray(content)) throw new UsageError(`${file} must hold a workflow: an object with name and jobs`)
  const body = { ...(content as Record<string, unknown>) }
  const given: Record<string, string> = {}
  for (const p of params) {
    const eq = p.indexOf('=')
    if (eq < 1) throw new UsageError(`--param takes NAME=VALUE, got ${JSON.stringify(p)}`)
    given[p.slice(0, eq)] = p.slice(eq + 1)
  }
  const defaults = body.params
  if (Object.keys(given).length > 0) body.params = { ...(typeof defaults === 'object' && defaults !== null && !Array.isArray(defaults) ? defaults : {}), ...given }
  if (detach) body.detach = true
  return body
}

/**
 * Each job's `sync: DIR` (relative to the workflow file's directory) hashed and uploaded as `gridctl run --sync` does,
 * each directory once, and replaced by the uploaded tree; bad input (no such directory, a link out of it) exits 2.
 */
async function uploadJobTrees (ctx: CommandContext, file: string, body: Record<string, unknown>): Promise<void> {
  const jobs = body.jobs
  if (jobs === null || typeof jobs !== 'object' || Array.isArray(jobs)) return
  const base = file === '-' ? process.cwd() : dirname(resolve(file))
  const uploaded = new Map<string, unknown>()
  for (const j of Object.values(jobs as Record<string, unknown>)) {
    if (j === null || typeof j !== 'object' || typeof (j as { sync?: unknown }).sync !== 'string') continue
    const job = j as { sync: string }
    const dir = resolve(base, job.sync)
    let tree = uploaded.get(dir)
    if (tree === undefined) {
      // loaded only when a job syncs: hashing and the manifest's schema are not every command's start-up cost
      const { uploadTree } = await import('../sync-client.ts')
      tree = (await uploadTree(ctx.client, dir, { hashCache: true, err: ctx.err as NodeJS.WritableStream & { isTTY?: boolean }, signal: ctx.signal })).body
      uploaded.set(dir, tree)
    }
    (job as { sync: unknown }).sync = tree
  }
}

const duration = (j: WorkflowJobRecord, now: number): string => {
  if (j.startedAt === null) return ''
  const ms = (j.endedAt === null ? now : Date.parse(j.endedAt)) - Date.parse(j.startedAt)
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : ago(ms)
}

/** The DAG as layers (a job's layer is one more than its deepest need's), each job with its status. */
export function drawDag (jobs: WorkflowJobRecord[]): string[] {
  const byName = new Map(jobs.map(j => [j.name, j]))
  const depth = new Map<string, number>()
  const depthOf = (n: string, seen = new Set<string>()): number => {
    const d = depth.get(n)
    if (d !== undefined) return d
    if (seen.has(n)) return 0
    seen.add(n)
    const needs = byName.get(n)?.needs ?? []
    const v = needs.length === 0 ? 0 : 1 + Math.max(...needs.map(m => depthOf(m, seen)))
    depth.set(n, v)
    return v
  }
  const layers: string[][] = []
  for (const j of jobs) (layers[depthOf(j.name)] ??= []).push(`${j.name} [${j.status}]`)
  return layers.map((l, i) => `${i === 0 ? '   ' : '-> '}${l.join('  ')}`)
}

function printStatus (ctx: CommandContext, w: WorkflowRecord): void {
  if (ctx.format === 'json') { ctx.out.write(JSON.stringify(workflowJson(w), null, 2) + '\n'); return }
  printObject(ctx.out, ctx.format, [['id', w.id], ['name', w.name], ['status', w.status], ['driver', w.driverName ?? null], ['error', w.error ?? null]], w)
  ctx.out.write('\n')
  if (ctx.format === 'table') { for (const line of drawDag(w.jobs)) ctx.out.write(safeText(line) + '\n'); ctx.out.write('\n') }
  const now = Date.now()
  printList(ctx.out, ctx.format, w.jobs, [
    { header: 'job', value: j => j.name },
    { header: 'status', value: j => j.status },
    { header: 'node', value: j => j.nodeName },
    { header: 'attempts', value: j => j.attempts, right: true },
    { header: 'exit', value: j => j.exitCode, right: true },
    { header: 'duration', value: j => duration(j, now), right: true },
    { header: 'needs', value: j => j.needs.join(',') }
  ])
}

const jobLine = (j: WorkflowJobRecord): string =>
  `[${j.name}] ${j.status}${j.nodeName === null ? '' : ` on ${j.nodeName}`}${j.attempts > 1 ? ` (${j.attempts} attempts)` : ''}${j.exitCode === null || j.status === 'running' ? '' : ` exit ${j.exitCode}`}${j.error === null || j.error === undefined || j.status === 'succeeded' ? '' : ` (${safeText(j.error).slice(0, 200)})`}`

const runSub: Command = {
  name: 'run',
  summary: 'Runs a workflow file (YAML or JSON): streams its jobs\' state changes; exits 0 when it succeeded.',
  usage: 'workflow run FILE [--param K=V]... [--detach]',
  options: { param: { type: 'string', multiple: true }, detach: { type: 'boolean' } },
  optionHelp: { param: 'a value for ${{ params.K }} (over the file\'s params)', detach: 'print the workflow id and return at once' },
  async run (ctx, args) {
    const [file] = requirePositionals(args, ['FILE']) as [string]
    const body = workflowBody(file, (args.values.param as string[] | undefined) ?? [], args.values.detach === true)
    await uploadJobTrees(ctx, file, body)
    if (args.values.detach === true) {
      const r = await ctx.client.post<{ id: string }>('/workflows', body, ctx.signal)
      if (ctx.format === 'json') ctx.out.write(JSON.stringify(r) + '\n')
      else ctx.out.write(r.id + '\n')
      return 0
    }
    const json = ctx.format === 'json'
    return await followStream<WorkflowStreamEvent>(ctx, {
      what: 'workflow',
      path: '/workflows',
      cancelBase: '/workflows',
      body,
      lastEvent: 'end',
      lookUp: id => `gridctl workflow status ${id}`,
      goesOn: id => `workflow ${id} goes on in the cluster (a successor drives it if its node died): gridctl workflow status ${id}`
    }, (ev, h) => {
      if (ev.type === 'accepted') {
        h.accepted(ev.id)
        if (!json) ctx.out.write(`workflow ${ev.id} (${safeText(ev.name)}): ${ev.jobs.length} jobs\n`)
      } else if (ev.type === 'job') {
        if (!json) ctx.out.write(jobLine(ev) + '\n')
      } else if (ev.type === 'done') {
        const w = ev.workflow
        if (json) ctx.out.write(JSON.stringify(workflowJson(w), null, 2) + '\n')
        else ctx.out.write(`workflow ${w.id} ${w.status}${w.error === null || w.error === undefined ? '' : ` (${safeText(w.error)})`}\n`)
        return workflowExitCode(w.status)
      }
      return undefined
    })
  }
}

const lsSub: Command = {
  name: 'ls',
  summary: 'Workflows in the cluster (newest first), from the replicated records: any node answers for all.',
  usage: 'workflow ls [--status STATUS]',
  options: { status: { type: 'string' } },
  optionHelp: { status: `only workflows in this status (${WORKFLOW_STATUSES.join(', ')})` },
  async run (ctx, args) {
    requirePositionals(args, [])
    const s = args.values.status
    if (typeof s === 'string' && !(WORKFLOW_STATUSES as readonly string[]).includes(s)) throw new UsageError(`--status must be one of ${WORKFLOW_STATUSES.join(', ')}`)
    const list = await ctx.client.get<WorkflowRecord[]>(`/workflows${typeof s === 'string' ? `?status=${s}` : ''}`, ctx.signal)
    const now = Date.now()
    printList(ctx.out, ctx.format, list, [
      { header: 'id', value: w => w.id },
      { header: 'name', value: w => w.name },
      { header: 'status', value: w => w.status },
      { header: 'done', value: w => `${w.jobs.filter(j => j.status === 'succeeded').length}/${w.jobs.length}`, right: true },
      { header: 'running', value: w => w.jobs.filter(j => j.status === 'running').length, right: true },
      { header: 'driver', value: w => w.driverName ?? null },
      { header: 'age', value: w => w.createdAt === undefined ? '' : ago(now - Date.parse(w.createdAt)), right: true }
    ], list.map(workflowJson))
    return 0
  }
}

const statusSub: Command = {
  name: 'status',
  summary: 'One workflow: its jobs with status, node, attempts and duration, and the DAG drawn; any node answers.',
  usage: 'workflow status ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    printStatus(ctx, await ctx.client.get<WorkflowRecord>(`/workflows/${encodeURIComponent(id)}`, ctx.signal))
    return 0
  }
}

const action = (name: 'pause' | 'resume' | 'cancel', summary: string): Command => ({
  name,
  summary,
  usage: `workflow ${name} ID`,
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const r = await ctx.client.post<{ id: string, status: string }>(`/workflows/${encodeURIComponent(id)}/${name}`, undefined, ctx.signal)
    printObject(ctx.out, ctx.format, [['id', r.id], ['status', r.status]], { id: r.id, status: r.status })
    return 0
  }
})

const retrySub: Command = {
  name: 'retry',
  summary: 'Runs a failed or cancelled workflow again under its id: what succeeded is kept, the rest runs; this node drives it.',
  usage: 'workflow retry ID',
  async run (ctx, args) {
    const [id] = requirePositionals(args, ['ID']) as [string]
    const r = await ctx.client.post<{ id: string, retrying: string[] }>(`/workflows/${encodeURIComponent(id)}/retry`, undefined, ctx.signal)
    printObject(ctx.out, ctx.format, [['id', r.id], ['retrying', r.retrying.join(', ')]], r)
    return 0
  }
}

const logsSub: Command = {
  name: 'logs',
  summary: 'The output of one job of a workflow (its latest run\'s task; a distribute job\'s answer); -f follows it.',
  usage: 'workflow logs ID JOB [-f]',
  options: { follow: { type: 'boolean', short: 'f' } },
  optionHelp: { follow: 'wait for the job to start, and print its output until it ends' },
  async run (ctx, args) {
    const [id, job] = requirePositionals(args, ['ID', 'JOB']) as [string, string]
    const follow = args.values.follow === true
    for (;;) {
      const w = await ctx.client.get<WorkflowRecord>(`/workflows/${encodeURIComponent(id)}`, ctx.signal)
      const j = w.jobs.find(x => x.name === job)
      if (j === undefined) throw new UsageError(`workflow ${id} has no job ${job} (its jobs: ${w.jobs.map(x => x.name).join(', ')})`)
      if (j.taskId !== null && j.taskId !== undefined) return await logsCommand.run(ctx, { values: { follow }, positionals: [j.taskId] })
      if (j.jobId !== null && j.jobId !== undefined && j.status !== 'running') {
        const r = await ctx.client.get<{ stdout: string }>(`/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/stdout`, ctx.signal)
        ctx.out.write(r.stdout === '' ? '' : r.stdout + '\n')
        ctx.err.write(`gridctl: ${job} is distribute job ${j.jobId}: its runs in gridctl job ${j.jobId}\n`)
        return 0
      }
      const ended = w.status !== 'running' && w.status !== 'paused'
      if (!follow || ended) throw new UsageError(`job ${job} of workflow ${id} has no output to show (it is ${j.status})${ended ? '' : '; -f waits for it'}`)
      if (ctx.signal.aborted) return 130
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
}

export const workflowCommand: Command = {
  name: 'workflow',
  summary: 'Workflows: DAGs of jobs, driven from any node and taken over when their node dies.',
  usage: 'workflow run FILE [--param K=V]... [--detach] | workflow ls | workflow status ID | workflow pause|resume|cancel|retry ID | workflow logs ID JOB [-f]',
  subcommands: [
    runSub, lsSub, statusSub,
    action('pause', 'No new job of the workflow starts (running jobs go on) until resume.'),
    action('resume', 'New jobs of a paused workflow start again.'),
    action('cancel', 'Cancels a workflow from any node: its running jobs are cancelled wherever they run.'),
    retrySub, logsSub
  ],
  async run () {
    throw new UsageError('give a subcommand: run, ls, status, pause, resume, cancel, retry or logs')
  }
}
