/**
 * `npm run fuzz -- [--runs N] [--target NAME] [--seed S]`: fuzzes each decoder (tests/fuzz/targets.ts) and prints
 * its runs, runs per second and crashes; a crash prints the shrunk input and its seed, and saves the input in the
 * corpus when it is bytes (a regression seed). Exit code 1 if any target crashed.
 */
import { parseArgs } from 'node:util'
import { writeSeed } from './corpus.ts'
import { fuzz, type FuzzReport } from './harness.ts'
import { TARGETS, cleanUp } from './targets.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10000' }, target: { type: 'string', multiple: true }, seed: { type: 'string' }, json: { type: 'boolean', default: false } } })
const runs = Number(values.runs)
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number, got ${values.runs}`)
const names = values.target ?? []
const unknown = names.filter(n => !TARGETS.some(t => t.name === n))
if (unknown.length > 0) throw new Error(`unknown target ${unknown.join(', ')}; targets: ${TARGETS.map(t => t.name).join(', ')}`)
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed)

const reports: FuzzReport[] = []
for (const t of TARGETS.filter(t => names.length === 0 || names.includes(t.name))) {
  const r = fuzz(t, { runs, seed })
  reports.push(r)
  if (values.json) console.log(JSON.stringify(r))
  else console.log(`${t.name.padEnd(17)} ${String(r.runs).padStart(10)} runs ${String(r.runsPerSecond).padStart(8)} runs/s ${r.seconds.toFixed(1).padStart(7)} s  crashes ${r.crashes}`)
  if (r.failure !== undefined) {
    console.log(`  seed ${r.failure.seed} path ${r.failure.path ?? '-'}\n  input ${r.failure.counterexample}\n  ${r.failure.error.replace(/\n/g, '\n  ')}`)
    const m = /^\[(?:Buffer|Uint8Array)\.from\(\[([\d,]*)\]\)\]$/.exec(r.failure.counterexample)
    if (m !== null) console.log(`  saved as ${writeSeed(t.name, `crash-${r.failure.seed}`, new Uint8Array((m[1] as string).split(',').filter(Boolean).map(Number)))}`)
  }
}
cleanUp()
if (!values.json) console.log(`total ${reports.reduce((n, r) => n + r.runs, 0)} runs, ${reports.reduce((n, r) => n + r.crashes, 0)} crashes, seed ${seed}`)
process.exitCode = reports.some(r => r.crashes > 0) ? 1 : 0
