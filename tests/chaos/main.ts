/**
 * npm run chaos -- [--nodes N] [--duration D] [--seed S] [--faults LIST] [--json] [--keep]
 * npm run chaos -- --check HISTORY [--nodes N] [--json]   (judge a kept history again)
 * Root only (network namespaces, veths, a bridge, nftables). Exits 0 when the verdict is valid, 1 when not, 2 on a
 * usage error, 3 when it cannot run here (the reason on stderr).
 */
import { parseDuration } from '../../src/interface/index.ts'
import { check } from './checker.ts'
import { readHistory } from './history.ts'
import { FAULTS, parseFaults } from './nemesis.ts'
import { disownRuns, sweep, unavailable } from './netns.ts'
import { table, toJson } from './report.ts'
import { chaosRun } from './run.ts'

const USAGE = `usage: npm run chaos -- [--nodes N] [--duration D] [--seed S] [--faults LIST] [--json] [--keep]
  --nodes N      daemons, each in its own network namespace (5 to 10; default 5)
  --duration D   how long faults are injected (as in 60s, 5m; default 2m)
  --seed S       the seed of every choice (default: the time)
  --faults LIST  comma-separated, or all (default): ${FAULTS.join(', ')}
  --json         print one JSON document instead of the table
  --keep         keep the run's directory (history.jsonl, daemons' logs) even when the verdict is valid
  --check FILE   judge a history.jsonl again (no run; --nodes says how many nodes it had)`

async function main (argv: string[]): Promise<number> {
  const o: Record<string, string | boolean> = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--json' || a === '--keep') o[a.slice(2)] = true
    else if (a === '--help' || a === '-h') { process.stdout.write(USAGE + '\n'); return 0 } else if (a.startsWith('--') && argv[i + 1] !== undefined) o[a.slice(2)] = argv[++i] as string
    else { process.stderr.write(`unknown argument ${a}\n${USAGE}\n`); return 2 }
  }
  const nodes = Number(o.nodes ?? 5)
  const durationMs = typeof o.duration === 'string' ? (parseDuration(o.duration) ?? Number(o.duration) * 1000) : 120_000
  const seed = Number(o.seed ?? Date.now() % 1_000_000)
  let faults
  try { faults = parseFaults(typeof o.faults === 'string' ? o.faults : undefined) } catch (err) { process.stderr.write(`${(err as Error).message}\n`); return 2 }
  if (!Number.isInteger(nodes) || nodes < 3 || nodes > 16 || !Number.isFinite(durationMs) || !Number.isFinite(seed)) { process.stderr.write(`${USAGE}\n`); return 2 }
  if (typeof o.check === 'string') {
    const v = check(readHistory(o.check), { nodes: Array.from({ length: nodes }, (_, i) => `n${i + 1}`), convergeBoundMs: 60_000 })
    process.stdout.write((o.json === true ? JSON.stringify(toJson(v, { seed, nodes, durationMs, history: o.check })) : table(v)) + '\n')
    return v.valid ? 0 : 1
  }
  const why = await unavailable()
  if (why !== null) { process.stderr.write(`chaos: cannot run here: ${why}\n`); return 3 }
  // interrupted: what this run made goes all the same (the daemons die with the harness, through their lifeline)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`chaos: ${sig}: removing this run's namespaces, links and mounts\n`)
      disownRuns()
      void sweep().finally(() => { process.exit(130) })
    })
  }
  process.stderr.write(`chaos: ${nodes} nodes, ${durationMs} ms of faults, seed ${seed}, faults ${faults.join(',')}\n`)
  const r = await chaosRun({ nodes, durationMs, seed, faults, keep: true })
  const doc = toJson(r.verdict, { seed, nodes, durationMs, history: r.historyFile })
  if (o.json === true) process.stdout.write(JSON.stringify(doc) + '\n')
  else process.stdout.write(table(r.verdict) + `\n\nhistory: ${r.historyFile} (seed ${seed})\n`)
  return r.verdict.valid ? 0 : 1
}

process.exitCode = await main(process.argv.slice(2))
