import type { TaskStreamEvent } from '../../../proto/task-stream.ts'
import { parseDuration, parseSize } from '../../interface/index.ts'
import { UsageError, type Command, type CommandContext, type ParsedArgs } from '../command.ts'
import { followStream } from '../follow-stream.ts'
import { printObject } from '../output.ts'
import { callerDirectory, pumpStdin } from '../stdin-pump.ts'
import type { uploadTree } from '../sync-client.ts'
import { SYNC_PROGRESS_MIN_BYTES } from '../../sync/constants.ts'

const kv = (list: string[], flag: string): Record<string, string> => Object.fromEntries(list.map(x => {
  const i = x.indexOf('=')
  if (i <= 0) throw new UsageError(`${flag} ${JSON.stringify(x)} is not K=V`)
  return [x.slice(0, i), x.slice(i + 1)]
}))

const num = (v: unknown, flag: string, integer: boolean): number | undefined => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new UsageError(`${flag} must be a ${integer ? 'whole ' : ''}number >= 0, got ${JSON.stringify(v)}`)
  return n
}

/** The flags `run` shares with `distribute` (placement, resources, retries, env, cwd). */
export const RUN_OPTIONS = {
  node: { type: 'string' },
  strategy: { type: 'string' },
  session: { type: 'string' },
  gpus: { type: 'string' },
  cpus: { type: 'string' },
  memory: { type: 'string' },
  require: { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
  region: { type: 'string' },
  pool: { type: 'string' },
  priority: { type: 'string' },
  timeout: { type: 'string' },
  retries: { type: 'string' },
  'retry-on-failure': { type: 'boolean' },
  env: { type: 'string', multiple: true },
  cwd: { type: 'string' },
  'no-stdin': { type: 'boolean' },
  type: { type: 'string' },
  payload: { type: 'string' },
  detach: { type: 'boolean', short: 'd' },
  verbose: { type: 'boolean', short: 'v' }
} satisfies NonNullable<Command['options']>

export const RUN_OPTION_HELP: Record<string, string> = {
  node: 'run on this node (name or id)',
  strategy: 'least-loaded (default), round-robin, random, capability, region, affinity (default with --session)',
  session: 'the session whose owner node should run it',
  gpus: 'GPUs, exclusively (CUDA_VISIBLE_DEVICES is set to them)',
  cpus: 'CPU slots (default 1)',
  memory: 'memory to reserve, as in 512MiB or 8G',
  require: 'a capability the node must offer (repeatable)',
  label: 'K=V label the node must have (repeatable)',
  region: 'the region the node must be in',
  pool: 'the pool the node must be in (gridd --pool; nodes without one are in default)',
  priority: '0-100, higher first (default 50)',
  timeout: 'stop it after this long (TERM, then KILL), as in 30s or 2h; exit 124',
  retries: 'times to run it again elsewhere if its node dies (default 3)',
  'retry-on-failure': 'also retry when the program itself fails',
  env: 'K=V environment variable (repeatable)',
  cwd: 'working directory on the node (default: this directory when it exists there, else the task\'s scratch directory)',
  'no-stdin': 'do not send stdin to the task (it reads EOF at once); stdin from a terminal is never sent',
  type: 'a task type from the nodes\' configuration (its JSON payload goes to stdin)',
  payload: 'JSON for a typed task',
  detach: 'print the task id and return at once',
  verbose: 'say where it runs and report retries'
}

/** The flags for shipping a directory with the task (run; distribute takes all but --fetch). */
export const SYNC_OPTIONS = {
  sync: { type: 'string' },
  'sync-exclude': { type: 'string', multiple: true },
  'sync-max': { type: 'string' },
  fetch: { type: 'string', multiple: true }
} satisfies NonNullable<Command['options']>

export const SYNC_OPTION_HELP: Record<string, string> = {
  sync: 'ship this directory with the task: it runs in a fresh copy of it (only files the node lacks are sent)',
  'sync-exclude': 'leave these out of --sync (gitignore syntax, repeatable; .gridignore or .gitignore are read too)',
  'sync-max': 'refuse a --sync tree larger than this (default 2GiB)',
  fetch: 'after the task, copy the files it wrote that match this (relative to the --sync DIR, globs allowed) back into DIR (repeatable)'
}

/** The POST /v1/tasks body those flags say (and the command line after --). */
export function taskBody (v: ParsedArgs['values'], positionals: string[], env: NodeJS.ProcessEnv, command = 'run'): Record<string, unknown> {
  const body: Record<string, unknown> = {}
  if (typeof v.type === 'string') {
    body.type = v.type
    if (positionals.length > 0) body.command = positionals
    if (typeof v.payload === 'string') {
      try { body.payload = JSON.parse(v.payload) } catch (err) { throw new UsageError(`--payload is not JSON (${(err as Error).message})`) }
    }
  } else {
    if (positionals.length === 0) throw new UsageError(`missing command: gridctl ${command} [flags] -- CMD ARGS...`)
    if (v.payload !== undefined) throw new UsageError('--payload needs --type')
    body.command = positionals
  }
  for (const k of ['node', 'strategy', 'session', 'region', 'cwd'] as const) if (typeof v[k] === 'string') body[k] = v[k]
  const cpus = num(v.cpus, '--cpus', false)
  if (cpus !== undefined) body.cpus = cpus
  const gpus = num(v.gpus, '--gpus', true)
  if (gpus !== undefined) body.gpus = gpus
  const priority = num(v.priority, '--priority', true)
  if (priority !== undefined) body.priority = priority
  const retries = num(v.retries, '--retries', true)
  if (retries !== undefined) body.retries = retries
  if (typeof v.memory === 'string') {
    const bytes = parseSize(v.memory)
    if (bytes === undefined) throw new UsageError(`--memory ${JSON.stringify(v.memory)} is not a size (as in 512MiB or 8G)`)
    body.memory = bytes
  }
  if (typeof v.timeout === 'string') {
    if (parseDuration(v.timeout) === undefined) throw new UsageError(`--timeout ${JSON.stringify(v.timeout)} is not a duration (as in 30s, 10m, 2h)`)
    body.timeout = v.timeout
  }
  if (v['retry-on-failure'] === true) body.retryOnFailure = true
  if (Array.isArray(v.require)) body.require = v.require
  if (Array.isArray(v.label)) body.labels = kv(v.label as string[], '--label')
  // --pool NAME: only that pool's nodes (the label pool=NAME; nodes without one are in default)
  if (typeof v.pool === 'string') body.labels = { ...(body.labels as Record<string, string> | undefined), pool: v.pool }
  if (Array.isArray(v.env)) body.env = kv(v.env as string[], '--env')
  // where it runs unless --cwd says: this directory, when the node has it (as Slurm does)
  const here = typeof v.cwd === 'string' ? undefined : callerDirectory(env)
  if (here !== undefined) body.cwdDefault = here
  return body
}

export const runCommand: Command = {
  name: 'run',
  trailingCommand: true,
  summary: 'Runs a command (or a configured task type) on the best node of the cluster, streaming its output; exits with its exit code.',
  usage: 'run [--node N] [--strategy S] [--session ID] [--gpus N] [--cpus N] [--memory SIZE] [--require CAP]... [--label K=V]... [--region R] [--pool NAME] [--priority P] [--timeout D] [--retries N] [--retry-on-failure] [--env K=V]... [--cwd DIR] [--sync DIR [--sync-exclude GLOB]... [--sync-max SIZE] [--fetch PATH]...] [--no-stdin] [--detach] -- CMD ARGS... | run --type NAME [--payload JSON] [...]',
  options: { ...RUN_OPTIONS, ...SYNC_OPTIONS },
  optionHelp: { ...RUN_OPTION_HELP, ...SYNC_OPTION_HELP },
  async run (ctx, args) {
    const v = args.values
    const body = taskBody(v, args.positionals, ctx.env)
    const fetch = Array.isArray(v.fetch) ? v.fetch as string[] : []
    if (fetch.length > 0 && v.detach === true) throw new UsageError('--fetch cannot be used with --detach (the files come back when the task ends)')
    const synced = await uploadSync(ctx, v, body)
    // stdin streams to the task (as with ssh or docker run -i) unless --no-stdin, a typed task (its payload is its
    // stdin), --detach, or a terminal (reading one would steal the shell's keys, and stop a background job)
    const sendStdin = v['no-stdin'] !== true && v.type === undefined && v.detach !== true && process.stdin.isTTY !== true
    if (sendStdin) body.stdin = true

    if (v.detach === true) return await submitDetached(ctx, '/tasks', body)

    // stops sending stdin when the task has ended
    const stdinDone = new AbortController()
    const verbose = v.verbose === true
    const json = ctx.format === 'json'
    let sawOutput = false
    let waited = false // "waiting for a node" is said once, or at every look with -v
    try {
      return await followStream<TaskStreamEvent>(ctx, {
        what: 'task',
        path: '/tasks',
        cancelBase: '/tasks',
        body: { ...body, encoding: 'base64' },
        lastEvent: 'exit status',
        lookUp: id => `gridctl task ${id}`,
        goesOn: id => `task ${id} goes on in the cluster (a task outlives the daemon it was started through): follow it with gridctl logs ${id} -f, or gridctl task ${id}, once a daemon answers`
      }, async (ev, h) => {
        if (json && ev.type !== 'output') ctx.err.write(JSON.stringify(ev) + '\n')
        switch (ev.type) {
          case 'accepted':
            h.accepted(ev.id)
            if (sendStdin) void pumpStdin(ctx.client, ev.id, process.stdin, stdinDone.signal, err => { ctx.err.write(`gridctl: the task's stdin stopped: ${err.message}\n`) })
            break
          case 'sync': {
            // a large tree on its way to the node: progress on a terminal
            const tty = (ctx.err as { isTTY?: boolean }).isTTY === true
            if (!tty || ev.totalBytes < SYNC_PROGRESS_MIN_BYTES) break
            ctx.err.write(`\rgridctl: sending the tree to ${ev.nodeName}: ${(ev.sentBytes / 1048576).toFixed(1)} of ${(ev.totalBytes / 1048576).toFixed(1)} MiB${ev.sentBytes >= ev.totalBytes ? '\n' : ''}`)
            break
          }
          case 'placed': if (verbose) ctx.err.write(`gridctl: task ${ev.id} ${ev.attempt > 1 ? `(attempt ${ev.attempt}) ` : ''}placed on ${ev.nodeName}${ev.queued ? ` (${ev.reason ?? 'queued there'})` : ''}${ev.passed === undefined ? '' : `; passed by ${ev.passed.map(p => `${p.name} (${p.reason})`).join(', ')}`}\n`); break
          case 'rehomed': if (verbose) ctx.err.write(`gridctl: session ${ev.session} moved ${ev.fromName === null ? '' : `from ${ev.fromName} `}to ${ev.toName}: ${ev.message}\n`); break
          case 'output': {
            sawOutput = true
            const bytes = Buffer.from(ev.data, 'base64')
            if (ev.stream === 'stderr') ctx.err.write(bytes)
            else ctx.out.write(bytes)
            break
          }
          case 'gap': ctx.err.write(`gridctl: [${ev.bytes} bytes of output skipped: this client fell behind]\n`); break
          case 'retry': ctx.err.write(`gridctl: task ${ev.id}: ${ev.reason}; running it again (attempt ${ev.attempt})\n`); break
          case 'waiting': if (!verbose && waited) break; waited = true; ctx.err.write(ev.delayMs > 0 ? `gridctl: task ${ev.id}: ${ev.reason}; waiting for one (next look in ${Math.round(ev.delayMs / 100) / 10} s)\n` : `gridctl: task ${ev.id}: ${ev.reason}\n`); break
          case 'exit': {
            // a warm worker answers with a result rather than output: print it as JSON
            if (!sawOutput && ev.result !== undefined) ctx.out.write(JSON.stringify(ev.result) + '\n')
            if (ev.status !== 'completed' && ev.error !== null) ctx.err.write(`gridctl: task ${ev.id} ${ev.status}: ${ev.error}\n`)
            if (synced !== undefined && ev.fetched !== undefined) {
              if (ev.fetched.error !== undefined) { ctx.err.write(`gridctl: --fetch: the task's files could not be brought back: ${ev.fetched.error}\n`); return ev.code === 0 ? 1 : ev.code }
              if (ev.fetched.manifest === null) ctx.err.write(`gridctl: --fetch: the task wrote no file matching ${fetch.join(', ')}\n`)
              else {
                const { writeFetched } = await import('../sync-client.ts')
                const w = await writeFetched(ctx.client, synced.root, ev.fetched.manifest, ctx.signal)
                if (verbose) ctx.err.write(`gridctl: --fetch: ${w.written} files written to ${synced.root} (${w.unchanged} unchanged)\n`)
              }
            }
            return ev.code
          }
        }
        return undefined
      })
    } finally {
      stdinDone.abort()
    }
  }
}

/**
 * --sync: DIR hashed (bad input exits 2 here, before anything is sent), what the daemon lacks uploaded, and the
 * body's `sync` set (the task runs in the tree, so the caller's directory is not its cwd). Undefined without --sync.
 */
export async function uploadSync (ctx: CommandContext, v: ParsedArgs['values'], body: Record<string, unknown>): Promise<Awaited<ReturnType<typeof uploadTree>> | undefined> {
  const fetch = Array.isArray(v.fetch) ? v.fetch as string[] : []
  if (fetch.length > 0 && typeof v.sync !== 'string') throw new UsageError('--fetch needs --sync DIR (its paths are relative to DIR)')
  if (typeof v.sync !== 'string') return undefined
  let maxBytes: number | undefined
  if (typeof v['sync-max'] === 'string') {
    maxBytes = parseSize(v['sync-max'])
    if (maxBytes === undefined) throw new UsageError(`--sync-max ${JSON.stringify(v['sync-max'])} is not a size (as in 500MiB or 4G)`)
  }
  // loaded only for --sync: hashing and the manifest's schema are not every run's start-up cost
  const { uploadTree } = await import('../sync-client.ts')
  const synced = await uploadTree(ctx.client, v.sync, { excludes: Array.isArray(v['sync-exclude']) ? v['sync-exclude'] as string[] : [], ...(maxBytes === undefined ? {} : { maxBytes }), fetch, err: ctx.err as NodeJS.WritableStream & { isTTY?: boolean }, signal: ctx.signal })
  body.sync = synced.body
  delete body.cwdDefault
  if (v.verbose === true) ctx.err.write(`gridctl: synced ${synced.root}: ${synced.files} files, ${synced.bytes} bytes; ${synced.sentBlobs} blobs (${synced.sentBytes} bytes) were new to this node; the manifest ${synced.manifestSent === 'known' ? 'was there already' : synced.manifestSent === 'difference' ? 'went as its difference from the last' : 'went whole'}\n`)
  return synced
}

/** `--detach`: submits and prints only the new id (`{"id"}` with -o json), for run, distribute and the like. */
export async function submitDetached (ctx: CommandContext, path: string, body: Record<string, unknown>): Promise<number> {
  const r = await ctx.client.post<{ id: string }>(path, { ...body, detach: true }, ctx.signal)
  if (ctx.format === 'json') ctx.out.write(JSON.stringify({ id: r.id }) + '\n')
  else if (ctx.format === 'markdown') printObject(ctx.out, ctx.format, [['id', r.id]], r)
  else ctx.out.write(r.id + '\n')
  return 0
}
