/**
 * bench/cli: how long a gridctl call takes, start to exit, against one local daemon, side by side with the floor (a
 * bare `node -e ''` of the same Node), and how many modules each command loads.
 *
 *   npm run bench -- cli [--n N]
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { GRIDCTL, ROOT } from '../tests/helpers/paths.ts'
import { median, percentile, startCluster, table, withCluster } from './lib.ts'

const { values } = parseArgs({ options: { n: { type: 'string', default: '30' } } })
const N = Number(values.n)
const HOOK = join(ROOT, 'tests/helpers/count-modules.mjs')

function timed (args: string[]): number[] {
  const out: number[] = []
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint()
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr.toString().slice(-300)}`)
    out.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  return out
}

function modules (args: string[], file: string): number {
  spawnSync(process.execPath, ['--import', HOOK, ...args], { env: { ...process.env, GRID_MODULE_COUNT_FILE: file }, stdio: 'ignore' })
  const n = (JSON.parse(readFileSync(file, 'utf8')) as { total: number }).total
  rmSync(file, { force: true })
  return n
}

await withCluster(await startCluster(1), async c => {
  const socket = c.node('n1').socket
  const cases: Array<[string, string[]]> = [
    ["node -e ''", ['-e', '']],
    ['gridctl --version', [GRIDCTL, '--version']],
    ['gridctl status', [GRIDCTL, '--socket', socket, 'status']],
    ['gridctl run -- true', [GRIDCTL, '--socket', socket, 'run', '--', 'true']]
  ]
  const rows: Array<Array<string | number>> = []
  let floor = NaN
  for (const [name, args] of cases) {
    spawnSync(process.execPath, args, { stdio: 'ignore' }) // warm the page cache
    const ms = timed(args)
    const p50 = median(ms)
    if (Number.isNaN(floor)) floor = p50
    rows.push([name, p50, percentile(ms, 95), p50 / floor, args[0] === '-e' ? '-' : String(modules(args, join(c.root, 'modules.json')))])
  }
  table(`gridctl start to exit, ${N} runs each (ms)`, ['command', 'p50', 'p95', 'x bare node', 'modules'], rows)
})
