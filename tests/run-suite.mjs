// The whole suite, as `npm test` runs it (after the build and the typecheck): the unit tier, then the two cluster
// streams side by side. `cluster` holds the files whose daemons time heartbeats, failures and placement; it runs one
// file at a time. `cluster-side` holds the files that start one daemon, or check output, docs and deployment, whose
// waits are not timings; it runs beside `cluster`, also one file at a time, so at most two files' daemons share the
// CPUs (about ten daemons on 2 cores). Each stream is its own vitest process; the exit code is the worst of the three.
// Arguments (a file, -t NAME, --project X) run one plain `vitest run ARGS` instead.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

const vitest = new URL('../node_modules/vitest/vitest.mjs', import.meta.url).pathname
const args = process.argv.slice(2)

function run (vargs, prefix) {
  return new Promise(resolve => {
    const p = spawn(process.execPath, [vitest, 'run', ...vargs], { stdio: prefix === undefined ? 'inherit' : ['ignore', 'pipe', 'pipe'] })
    if (prefix !== undefined) {
      // one stream's lines are marked so that interleaved output stays readable
      for (const s of [p.stdout, p.stderr]) createInterface({ input: s }).on('line', l => { process.stdout.write(`${prefix}${l}\n`) })
    }
    p.on('exit', (code, signal) => { resolve(code ?? (signal === null ? 1 : 128 + 1)) })
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { p.kill(sig) })
  })
}

if (args.length > 0) process.exit(await run(args))
const unit = await run(['--project', 'unit'])
const [cluster, side] = await Promise.all([run(['--project', 'cluster']), run(['--project', 'cluster-side'], '[side] ')])
console.log(`\nunit: ${unit === 0 ? 'passed' : `failed (${unit})`}; cluster: ${cluster === 0 ? 'passed' : `failed (${cluster})`}; cluster-side: ${side === 0 ? 'passed' : `failed (${side})`}`)
process.exit(Math.max(unit, cluster, side))
