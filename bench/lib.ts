/** Shared pieces of the benchmarks: statistics, tables, process CPU and memory from /proc, a cluster launcher. */
import { readFileSync } from 'node:fs'
import { type Agent, request } from 'node:http'
import { staleConnection } from '../src/cli/client.ts'
import { Cluster } from '../tests/helpers/cluster.ts'

export { Cluster, waitFor, Gridd, runCtl } from '../tests/helpers/cluster.ts'

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] as number
}

export function median (values: number[]): number { return percentile(values, 50) }

export function fmt (n: number, digits = 2): string {
  if (!Number.isFinite(n)) return '-'
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(digits)
}

/** Prints a Markdown table (it reads as a plain table in a terminal too). */
export function table (title: string, header: string[], rows: Array<Array<string | number>>): void {
  const cells = rows.map(r => r.map(c => typeof c === 'number' ? fmt(c) : c))
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map(r => (r[i] ?? '').length)))
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  console.log(`\n### ${title}\n`)
  console.log(line(header))
  console.log(`| ${widths.map(w => '-'.repeat(w)).join(' | ')} |`)
  for (const r of cells) console.log(line(r))
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return ticks / 100
}

export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) * 1024
}

/** The pid of a process's child whose command line matches (the daemon's spawner), or null. */
export function childPid (pid: number, match: RegExp): number | null {
  let kids: string[] = []
  try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(x => x !== '') } catch { return null }
  for (const k of kids) {
    try { if (match.test(readFileSync(`/proc/${k}/cmdline`, 'utf8'))) return Number(k) } catch {}
  }
  return null
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Starts `n` daemons: the first, then the others at once (each knows only the first). */
export async function startCluster (n: number, opts: { args?: (i: number) => string[], env?: (i: number) => Record<string, string>, parallel?: boolean } = {}): Promise<Cluster> {
  const c = new Cluster()
  const extra = (i: number): { args?: string[], env?: Record<string, string> } => {
    const o: { args?: string[], env?: Record<string, string> } = {}
    const a = opts.args?.(i)
    const e = opts.env?.(i)
    if (a !== undefined) o.args = a
    if (e !== undefined) o.env = { GRID_TEST_LOG_LEVEL: 'warn', ...e }
    else o.env = { GRID_TEST_LOG_LEVEL: 'warn' }
    return o
  }
  process.env.GRID_TEST_LOG_LEVEL = 'warn'
  await c.add('n1', extra(0))
  if (opts.parallel === false) {
    for (let i = 1; i < n; i++) await c.add(`n${i + 1}`, extra(i))
  } else {
    await Promise.all(Array.from({ length: n - 1 }, async (_, i) => await c.add(`n${i + 2}`, extra(i + 1))))
  }
  return c
}

/** Runs `fn` and always destroys the cluster, even on Ctrl-C. */
export async function withCluster<T> (c: Cluster, fn: (c: Cluster) => Promise<T>): Promise<T> {
  const stop = (): void => { void c.destroy().finally(() => process.exit(130)) }
  process.once('SIGINT', stop)
  try {
    return await fn(c)
  } finally {
    process.off('SIGINT', stop)
    // a daemon profiled (--cpu-prof, --heap-prof through GRID_TEST_NODE_FLAGS) writes its profile as it exits: stop
    // each with SIGTERM first (destroy's SIGKILL would lose it)
    if (/--(cpu|heap)-prof/.test(process.env.GRID_TEST_NODE_FLAGS ?? '')) await Promise.all(c.nodes.map(async n => { await n.stop() }))
    await c.destroy()
  }
}

export interface Reply { status: number, text: string }

let resetCount = 0
/** Says how many requests met a kept-alive connection the daemon had just closed, and were sent again. */
export function reportResets (): void {
  if (resetCount > 0) console.log(`\n(${resetCount} requests were reset by a daemon closing an idle keep-alive connection, and sent again)`)
}

/**
 * One request to a daemon's control socket on a keep-alive agent (what an application calling the API would use). A
 * request that goes out on a reused connection just as the daemon closes it for being idle is reset before the daemon
 * read it: it is sent again on a fresh connection (the same rule as gridctl's client), and counted.
 */
export async function call (agent: Agent, socket: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<Reply>((resolve, reject) => {
        const req = request({ socketPath: socket, agent, method, path: `/v1${path}`, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, res => {
          let text = ''
          res.on('data', d => { text += String(d) })
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
          res.on('error', reject)
        })
        req.on('error', err => { reject(Object.assign(err, { stale: staleConnection(req, err) })) })
        req.end(payload)
      })
    } catch (err) {
      if ((err as { stale?: boolean }).stale !== true || attempt >= 1) throw err
      resetCount++
    }
  }
}
