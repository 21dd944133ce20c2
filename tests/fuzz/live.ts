/**
 * `npm run fuzz:live -- [--duration 60s] [--seed N]`: starts two daemons (from dist/: build first), attacks n1 with the
 * live fuzzer (tests/helpers/live-fuzz.ts) while valid tasks go both ways, and prints what happened. Exit code 1 when
 * a daemon died, a valid task failed, n1's RSS went past 1.5x its baseline, a bad control request got a 500, or the
 * attacker was never banned.
 */
import { parseArgs } from 'node:util'
import { parseDuration } from '../../src/interface/index.ts'
import { runLiveFuzz } from '../helpers/live-fuzz-run.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '60s' }, seed: { type: 'string', default: '1' } } })
const durationMs = parseDuration(values.duration)
if (durationMs === undefined) throw new Error(`--duration must be a duration such as 60s or 5m, got ${values.duration}`)
const r = await runLiveFuzz({ durationMs, seed: Number(values.seed), log: line => { console.log(line) } })
const ratio = r.peakRssBytes / r.baselineRssBytes
console.log(JSON.stringify({ ...r, rssRatio: Number(ratio.toFixed(2)) }, null, 1))
const problems = [
  ...(r.up.length === 2 ? [] : [`daemons up at the end: ${r.up.join(', ')}`]),
  ...(r.taskFailures.length === 0 ? [] : [`${r.taskFailures.length} valid tasks failed`]),
  ...(ratio < 1.5 ? [] : [`n1 RSS peaked at ${ratio.toFixed(2)}x its baseline`]),
  ...((r.stats.httpStatus['500'] ?? 0) === 0 ? [] : [`${r.stats.httpStatus['500']} bad control requests got a 500`]),
  ...(r.bans > 0 ? [] : ['the attacker was never banned'])
]
console.log(problems.length === 0 ? 'live fuzz: no defect seen' : `live fuzz: ${problems.join('; ')}`)
process.exitCode = problems.length === 0 ? 0 : 1
