/**
 * The steady load of a chaos run, and what the harness watches while it runs:
 * - tasks submitted (detached) to several nodes; each task's process writes a line to a run log on the host
 *   filesystem when it starts and when it ends (run-start, run-end: what actually ran, where, when);
 * - session writes (a global sequence number as the value) to a small set of keys from several nodes;
 * - every node's membership changes, from its log (member);
 * - after the faults, the final reads: every node's record of every accepted task and value of every session.
 */
import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs'
import type { ChaosCluster, ChaosDaemon } from './daemons.ts'
import type { History, RoundValue } from './history.ts'
import type { Rng } from './rng.ts'

export const TASK_RUN_SECONDS = 1
export const OP_TIMEOUT_MS = 5_000
export const SESSION_KEYS = 12
const INFLIGHT_MAX = 24
/** how long one node may take to answer a poll of its view and state hash */
const ROUND_TIMEOUT_MS = 5_000

export interface LoadOptions { taskEveryMs: number, writeEveryMs: number, loadNodes: string[] }

export class Load {
  private timers: NodeJS.Timeout[] = []
  private inflight = 0
  private paused = false
  private seq = 0
  private proc = 0
  readonly accepted: string[] = []
  private readonly done: Array<Promise<void>> = []

  constructor (private readonly cluster: ChaosCluster, private readonly history: History, private readonly rng: Rng, readonly runLog: string, private readonly opts: LoadOptions) {
    writeFileSync(runLog, '')
  }

  start (): void {
    this.timers.push(setInterval(() => { this.spawn(async () => { await this.task() }) }, this.opts.taskEveryMs))
    this.timers.push(setInterval(() => { this.spawn(async () => { await this.write() }) }, this.opts.writeEveryMs))
  }

  /** Stops issuing new operations for a while (the cluster settling after a heal: agreement is measured quiet). */
  pause (): void { this.paused = true }
  resume (): void { this.paused = false }

  /** Stops issuing operations and waits for those in flight. */
  async stop (): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    await Promise.allSettled(this.done)
  }

  private spawn (fn: () => Promise<void>): void {
    if (this.inflight >= INFLIGHT_MAX || this.paused) return
    this.inflight++
    const p = fn().catch(() => {}).finally(() => { this.inflight-- })
    this.done.push(p)
    if (this.done.length > 1000) this.done.splice(0, 500)
  }

  private pick (): ChaosDaemon {
    return this.cluster.daemon(this.rng.pick(this.opts.loadNodes))
  }

  private async task (): Promise<void> {
    const d = this.pick()
    const process = ++this.proc
    const line = (what: string): string => `echo "${what} $GRID_TASK_ID $GRID_NODE_NAME $GRID_ATTEMPT.$$ $(date +%s%3N)" >> ${this.runLog}`
    // a run its executor stops (SIGTERM: a cancel, a fence) logs its end too, so the checker knows when it ended
    // (a background sleep and `wait`, so the trap runs at once); a run killed with its daemon has no end line, and
    // the checker takes the daemon's death for its end
    const script = `trap '${line('end')}; exit 143' TERM; ${line('start')}; sleep ${TASK_RUN_SECONDS} & wait $!; ${line('end')}`
    this.history.add({ type: 'invoke', op: 'task', node: d.name, process })
    try {
      const r = await d.api.post<{ id: string }>('/tasks', { command: ['sh', '-c', script], detach: true, retries: 20 }, AbortSignal.timeout(OP_TIMEOUT_MS))
      this.accepted.push(r.id)
      this.history.add({ type: 'ok', op: 'task', node: d.name, process, key: r.id, value: { id: r.id } })
    } catch (err) {
      this.history.add({ type: timedOut(err) ? 'info' : 'fail', op: 'task', node: d.name, process, error: (err as Error).message })
    }
  }

  private async write (): Promise<void> {
    const d = this.pick()
    const seq = ++this.seq
    const key = `chaos-k${this.rng.int(SESSION_KEYS)}`
    this.history.add({ type: 'invoke', op: 'write', node: d.name, process: seq, key, value: { seq } })
    try {
      await d.api.put(`/sessions/${key}`, { value: { seq } }, AbortSignal.timeout(OP_TIMEOUT_MS))
      this.history.add({ type: 'ok', op: 'write', node: d.name, process: seq, key, value: { seq } })
    } catch (err) {
      this.history.add({ type: timedOut(err) ? 'info' : 'fail', op: 'write', node: d.name, process: seq, key, value: { seq }, error: (err as Error).message })
    }
  }
}

/** Whether a failed call may still have happened (a timeout, a connection that broke) rather than been refused. */
function timedOut (err: unknown): boolean {
  const e = err as { name?: string, code?: string, message?: string }
  return e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'ECONNRESET' || /timed? ?out|socket hang up|aborted/i.test(e.message ?? '')
}

/** Reads the run log as it grows: run-start / run-end events, and which runs are open now (per node). */
export class RunLogTail {
  private offset = 0
  private rest = ''
  readonly open = new Map<string, string>()

  constructor (readonly file: string, private readonly history: History) {}

  poll (): void {
    const size = statSync(this.file).size
    if (size <= this.offset) return
    const fd = openSync(this.file, 'r')
    try {
      const buf = Buffer.alloc(size - this.offset)
      readSync(fd, buf, 0, buf.length, this.offset)
      this.offset = size
      const text = this.rest + buf.toString()
      const lines = text.split('\n')
      this.rest = lines.pop() ?? ''
      for (const l of lines) {
        const [what, id, node, run, ms] = l.trim().split(' ')
        if ((what !== 'start' && what !== 'end') || id === undefined || node === undefined || run === undefined || ms === undefined) continue
        this.history.add({ type: 'info', op: what === 'start' ? 'run-start' : 'run-end', node, key: id, value: { run }, wall: Number(ms) })
        if (what === 'start') this.open.set(`${id} ${run}`, node)
        else this.open.delete(`${id} ${run}`)
      }
    } finally { closeSync(fd) }
  }

  /** The node with the most runs open now. */
  busiest (): string | undefined {
    const count = new Map<string, number>()
    for (const n of this.open.values()) count.set(n, (count.get(n) ?? 0) + 1)
    return [...count.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
  }
}

/**
 * Every node's membership changes, read from its log ("member state changed", with the time the daemon logged it):
 * exact to the millisecond, where polling views would miss a state that lasts less than a poll.
 */
export function memberEvents (cluster: ChaosCluster, history: History): number {
  let n = 0
  for (const d of cluster.daemons) {
    let text = ''
    try { text = readFileSync(d.logFile, 'utf8') } catch { continue }
    for (const line of text.split('\n')) {
      if (!line.includes('"member state changed"')) continue
      try {
        const e = JSON.parse(line) as { time?: string, name?: string, to?: string }
        if (e.time === undefined || e.name === undefined || e.to === undefined) continue
        history.add({ type: 'info', op: 'member', node: d.name, value: { target: e.name, state: e.to }, wall: Date.parse(e.time) })
        n++
      } catch {}
    }
  }
  return n
}

/** One poll of every node's view and state hash (recorded as a round). */
export async function round (cluster: ChaosCluster, history: History): Promise<RoundValue> {
  const v: RoundValue = { views: {}, hashes: {} }
  await Promise.all(cluster.daemons.map(async d => {
    try {
      const [nodes, hash] = await Promise.all([
        d.api.get<Array<{ name: string, state: string }>>('/nodes', AbortSignal.timeout(ROUND_TIMEOUT_MS)),
        d.api.get<{ hash: string }>('/state/hash', AbortSignal.timeout(ROUND_TIMEOUT_MS))
      ])
      v.views[d.name] = Object.fromEntries(nodes.map(n => [n.name, n.state]))
      v.hashes[d.name] = hash.hash
    } catch {}
  }))
  history.add({ type: 'info', op: 'round', node: 'harness', value: v })
  return v
}

export function agreed (v: RoundValue, names: string[]): boolean {
  const hs = names.map(n => v.hashes[n])
  return names.every(o => names.every(t => v.views[o]?.[t] === 'alive')) && hs.every(h => h !== undefined && h === hs[0])
}

/** Polls rounds until every node agrees (true) or the deadline passes (false). */
export async function untilAgreed (cluster: ChaosCluster, history: History, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const names = cluster.daemons.map(d => d.name)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (agreed(await round(cluster, history), names)) return true
    if (Date.now() > deadline) return false
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** After healing: every node's record of every accepted task (waiting until they are final) and of every session. */
export async function finalReads (cluster: ChaosCluster, history: History, accepted: string[], timeoutMs: number): Promise<void> {
  const FINAL = new Set(['completed', 'failed', 'timeout', 'cancelled'])
  const deadline = Date.now() + timeoutMs
  let records = new Map<string, Map<string, { status: string, attempts: number }>>()
  for (;;) {
    records = new Map()
    await Promise.all(cluster.daemons.map(async d => {
      const m = new Map<string, { status: string, attempts: number }>()
      try {
        const list = await d.api.get<Array<{ id: string, status: string, attempts: number }>>('/tasks', AbortSignal.timeout(10_000))
        for (const t of list) m.set(t.id, { status: t.status, attempts: t.attempts })
      } catch {}
      records.set(d.name, m)
    }))
    const pending = accepted.filter(id => cluster.daemons.some(d => !FINAL.has(records.get(d.name)?.get(id)?.status ?? '')))
    if (pending.length === 0 || Date.now() > deadline) break
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
  for (const d of cluster.daemons) {
    for (const id of accepted) {
      const r = records.get(d.name)?.get(id)
      history.add({ type: 'info', op: 'final-task', node: d.name, key: id, value: r ?? null })
    }
    try {
      const sessions = await d.api.get<Array<{ id: string, value: { seq?: number } }>>('/sessions', AbortSignal.timeout(10_000))
      const held = new Map(sessions.map(s => [s.id, s.value]))
      for (let k = 0; k < SESSION_KEYS; k++) {
        const v = held.get(`chaos-k${k}`)
        history.add({ type: 'info', op: 'final-read', node: d.name, key: `chaos-k${k}`, value: v === undefined ? null : { seq: v.seq } })
      }
    } catch {}
  }
}
