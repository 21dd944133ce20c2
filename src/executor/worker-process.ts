/**
 * One warm worker process: forked by the spawner with its environment (GRID_*, its GPUs) and direct stdio (its stdin
 * and stdout one socket to the daemon, so requests and replies take no hop through the spawner), its stdout cut into
 * reply lines, stopped politely (stdin closed, TERM after a grace period, KILL after another) or at once. How it
 * ended (exit, a start that failed, the spawner's death) goes to `ended`, once.
 */
import type { WorkerOutcome } from '../../proto/index.ts'
import { WORKER_EXIT_GRACE_MS, WORKER_RESTART_BASE_MS, WORKER_RESTART_CAP_MS } from './constants.ts'
import type { ResourceHold } from './ledger.ts'
import type { Child, ProcessHost } from './process-host.ts'
import type { WorkerInfo, WorkerRequest, WorkerTypeConfig } from './index.ts'
import { ReplyLines } from './worker-replies.ts'

/** A request on its way: queued, or sent to a worker. */
export interface Pending {
  req: WorkerRequest
  /** the request's, for the queue */
  priority: number
  resolve: (o: WorkerOutcome) => void
  attempts: number
  timer?: NodeJS.Timeout
  /** the worker it was last sent to */
  proc?: Proc
}

export interface Proc {
  key: string
  type: string
  session: string | null
  child: Child
  held: ResourceHold
  inflight: Map<string, Pending>
  /** request lines not written yet (they leave together at the end of the current run of code: flushRequests) */
  outbox: string[]
  nextId: number
  served: number
  startedAt: number
  lastUsedAt: number
  retiring: boolean
  idle?: NodeJS.Timeout
  /** it was said to be running (`worker:state`) */
  announced: boolean
  /** it is over (exited, never started, or lost with the spawner) */
  ended: boolean
  done: Promise<void>
}

/** How a worker ended: its exit, a start that failed, or the spawner's death (the last two say why). */
export type WorkerEnd =
  | { kind: 'exit', code: number | null, signal: NodeJS.Signals | null }
  | { kind: 'failed' | 'lost', why: string }

export interface WorkerSpec {
  key: string
  type: string
  session: string | null
  config: WorkerTypeConfig
  held: ResourceHold
  nodeId: string
  nodeName: string
}

export interface WorkerHooks {
  spawned: () => void
  /** a line of its stdout */
  line: (line: string) => void
  /** it wrote a line longer than the limit */
  overflow: () => void
  stderr: (d: Buffer) => void
  ended: (end: WorkerEnd) => void
}

/** Starts a worker (the caller checks `processes.running` and has reserved `spec.held`). */
export function startWorker (processes: ProcessHost, spec: WorkerSpec, hooks: WorkerHooks): Proc {
  const t = spec.config
  const env: Record<string, string> = { ...t.env, GRID_WORKER_TYPE: spec.type, GRID_NODE_ID: spec.nodeId, GRID_NODE_NAME: spec.nodeName }
  if (spec.session !== null) env.GRID_SESSION = spec.session
  if (spec.held.gpus.length > 0 || t.gpus > 0) {
    env.CUDA_VISIBLE_DEVICES = spec.held.gpus.join(',')
    env.CUDA_DEVICE_ORDER = 'PCI_BUS_ID'
  }
  const lines = new ReplyLines({ line: hooks.line, overflow: hooks.overflow })
  let markDone = (): void => {}
  const done = new Promise<void>(resolve => { markDone = resolve })
  const end = (e: WorkerEnd): void => {
    proc.ended = true
    markDone()
    hooks.ended(e)
  }
  const child = processes.spawn({ argv: t.command, env, stdio: 'direct', ...(t.cwd === undefined ? {} : { cwd: t.cwd }) }, {
    spawned: () => { proc.announced = true; hooks.spawned() },
    output: (stream, d) => { if (stream === 1) lines.push(d); else hooks.stderr(d) },
    error: e => { end({ kind: 'failed', why: `cannot start the ${spec.type} worker (${t.command[0] ?? ''}): ${e.code === 'ENOENT' ? 'command not found' : e.message}` }) },
    exit: (code, signal) => { end({ kind: 'exit', code, signal }) },
    lost: () => { end({ kind: 'lost', why: `the ${spec.type} worker died with this node's spawner` }) }
  })
  const now = Date.now()
  const proc: Proc = { key: spec.key, type: spec.type, session: spec.session, child, held: spec.held, inflight: new Map(), outbox: [], nextId: 1, served: 0, startedAt: now, lastUsedAt: now, retiring: false, announced: false, ended: false, done }
  return proc
}

/** Writes the request lines waiting in its outbox, in one write. */
export function flushRequests (proc: Proc): void {
  if (proc.outbox.length === 0) return
  const text = proc.outbox.join('\n') + '\n'
  proc.outbox = []
  proc.child.write(text)
}

/** Ends a worker: politely (stdin closed, TERM after a grace period, KILL after another) or at once. */
export async function stopWorker (proc: Proc, hard: boolean, killGraceMs: number): Promise<void> {
  proc.retiring = true
  clearTimeout(proc.idle)
  if (proc.ended) return
  flushRequests(proc)
  proc.child.end()
  const grace = hard ? 0 : WORKER_EXIT_GRACE_MS
  const term = setTimeout(() => { proc.child.kill('SIGTERM') }, grace)
  const kill = setTimeout(() => { proc.child.kill('SIGKILL') }, grace + killGraceMs)
  await proc.done
  clearTimeout(term)
  clearTimeout(kill)
}

export function workerInfo (p: Proc): WorkerInfo {
  return { type: p.type, session: p.session, pid: p.child.pid ?? 0, gpus: p.held.gpus, served: p.served, inflight: p.inflight.size, startedAt: p.startedAt, lastUsedAt: p.lastUsedAt }
}

/** How long to wait before starting a worker again after `crashes` crashes in a row. */
export function crashBackoffMs (crashes: number): number {
  return Math.min(WORKER_RESTART_CAP_MS, WORKER_RESTART_BASE_MS * 2 ** crashes)
}
