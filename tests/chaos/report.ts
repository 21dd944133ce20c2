/** The chaos run's outputs: the table per fault class, and the one JSON document `--json` prints. */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Verdict } from './checker.ts'

export interface ChaosJson {
  valid: boolean
  tasks: { accepted: number, completed: number, lost: number, ranTwice: number, atLeastOnce: number, atLeastOnceCutOff: number }
  writes: { acknowledged: number, lost: number }
  falseDeaths: number
  suspicionsPerNodeHour: number
  detection: { p50Ms: number | null, p99Ms: number | null }
  convergeMs: number | null
  faults: Verdict['faults']
  problems: string[]
  seed: number
  nodes: number
  durationMs: number
  history: string
}

export function toJson (v: Verdict, run: { seed: number, nodes: number, durationMs: number, history: string }): ChaosJson {
  return {
    valid: v.valid,
    tasks: { accepted: v.tasks.accepted, completed: v.tasks.completed, lost: v.tasks.lost, ranTwice: v.tasks.ranTwice, atLeastOnce: v.tasks.atLeastOnce, atLeastOnceCutOff: v.tasks.atLeastOnceCutOff },
    writes: { acknowledged: v.writes.acknowledged, lost: v.writes.lost },
    falseDeaths: v.falseDeaths,
    suspicionsPerNodeHour: v.suspicionsPerNodeHour,
    detection: { p50Ms: v.detection.p50Ms, p99Ms: v.detection.p99Ms },
    convergeMs: v.convergeMs,
    faults: v.faults,
    problems: v.problems,
    ...run
  }
}

const ms = (x: number | null): string => x === null ? '-' : `${x}`

export function table (v: Verdict): string {
  const head = ['fault', 'n', 'detect p50', 'p99', 'undet.', 'false susp/nh', 'false deaths/nh', 'tasks acc', 'done', 'lost', 'twice', 'alo died', 'alo cut', 'writes ack', 'lost', 'converge p50', 'p99']
  const rows = v.faults.map(f => [f.fault, String(f.count), ms(f.detection.p50Ms), ms(f.detection.p99Ms), String(f.detection.undetected),
    String(f.falseSuspicionsPerNodeHour), String(f.falseDeathsPerNodeHour), String(f.tasks.accepted), String(f.tasks.completed), String(f.tasks.lost),
    String(f.tasks.ranTwice), String(f.tasks.atLeastOnce), String(f.tasks.atLeastOnceCutOff), String(f.writes.acknowledged), String(f.writes.lost), ms(f.convergeMs.p50Ms), ms(f.convergeMs.p99Ms)])
  const all = [head, ...rows]
  const w = head.map((_, i) => Math.max(...all.map(r => (r[i] as string).length)))
  const line = (r: string[]): string => r.map((c, i) => i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number)).join('  ')
  const out = [line(head), ...rows.map(line), '',
    `valid: ${v.valid}   tasks: ${v.tasks.accepted} accepted, ${v.tasks.completed} completed, ${v.tasks.lost} lost, ${v.tasks.ranTwice} ran twice, ${v.tasks.atLeastOnce} at least once (executor died), ${v.tasks.atLeastOnceCutOff} at least once (executor cut off), ${v.tasks.diverged} diverged`,
    `writes: ${v.writes.acknowledged} acknowledged, ${v.writes.lost} lost, ${v.writes.superseded} superseded, ${v.writes.diverged} diverged`,
    `detection p50 ${ms(v.detection.p50Ms)} ms, p99 ${ms(v.detection.p99Ms)} ms (${v.detection.samples} samples, ${v.detection.undetected} undetected)   false deaths ${v.falseDeaths}   suspicions ${v.suspicions} (${v.suspicionsPerNodeHour}/node-hour, false ${v.falseSuspicions})   converged ${ms(v.convergeMs)} ms after the last fault`]
  if (v.problems.length > 0) out.push('', 'problems:', ...v.problems.map(p => `  ${p}`))
  return out.join('\n')
}

/**
 * What the daemons logged about the tasks a verdict's problems name, for a failure on a machine whose run directory
 * is gone afterwards (CI): the nemesis schedule, each task's run lines, and its daemons' log lines (at most `max` each).
 */
export function problemContext (root: string, problems: string[], max = 40): string {
  const ids = [...new Set(problems.flatMap(p => [...p.matchAll(/\btask (t[0-9a-z]+)/g)].map(m => m[1] as string)))].slice(0, 5)
  const out: string[] = []
  const read = (f: string): string[] => { try { return readFileSync(f, 'utf8').split('\n') } catch { return [] } }
  for (const l of read(join(root, 'history.jsonl'))) {
    if (l === '') continue
    const e = JSON.parse(l) as { op: string, mono: number, wall: number, value?: unknown }
    if (out.length === 0) out.push(`history ms 0 is ${new Date(e.wall - e.mono).toISOString()} (wall ${Math.round(e.wall - e.mono)})`)
    if (e.op !== 'nemesis') continue
    out.push(`nemesis ${Math.round(e.mono)} ms ${JSON.stringify(e.value)}`)
  }
  const logs = readdirSync(root).filter(f => /^n\d+\.log$/.test(f)).sort()
  for (const id of ids) {
    out.push(`-- task ${id}`)
    out.push(...read(join(root, 'runs.log')).filter(l => l.includes(id)))
    for (const f of logs) {
      const lines = read(join(root, f)).filter(l => l.includes(id))
      out.push(...lines.slice(0, max).map(l => l.length > 400 ? `${l.slice(0, 400)}...` : l))
      if (lines.length > max) out.push(`(${f}: ${lines.length - max} more lines)`)
    }
  }
  return out.join('\n')
}
