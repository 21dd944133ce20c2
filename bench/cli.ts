/**
 * bench/cli: how long a gridctl call takes, start to exit, against one local daemon, side by side with the floor (a
 * bare `node -e ''` of the same Node), and how many modules each command loads. Every case runs once per round, the
 * rounds one after another, so that the floor and each build are measured in the same window on a loaded machine.
 *
 * Builds: the tsc build (dist/src/cli/gridctl.js, `npm run build`) and, when it exists, the bundle that install-bin
 * and deploy install (dist/bundle/gridctl.mjs, `npm run bundle`), each also with Node's compile cache
 * (NODE_COMPILE_CACHE, as the launchers set it); --base DIR adds another checkout's builds (before/after).
 *
 *   npm run bench -- cli [--n N] [--base DIR]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { GRIDCTL, ROOT } from '../tests/helpers/paths.ts'
import { median, percentile, startCluster, table, withCluster } from './lib.ts'

const { values } = parseArgs({ options: { n: { type: 'string', default: '30' }, base: { type: 'string' } } })
const N = Number(values.n)
const HOOK = join(ROOT, 'tests/helpers/count-modules.mjs')

interface Case { name: string, args: string[], env?: Record<string, string>, count?: boolean }

function once (c: Case): number {
  const t = process.hrtime.bigint()
  const r = spawnSync(process.execPath, c.args, { env: { ...process.env, ...c.env }, stdio: ['ignore', 'ignore', 'pipe'] })
  if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr.toString().slice(-300)}`)
  return Number(process.hrtime.bigint() - t) / 1e6
}

function modules (args: string[], file: string): number {
  spawnSync(process.execPath, ['--import', HOOK, ...args], { env: { ...process.env, GRID_MODULE_COUNT_FILE: file }, stdio: 'ignore' })
  const n = (JSON.parse(readFileSync(file, 'utf8')) as { total: number }).total
  rmSync(file, { force: true })
  return n
}

const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

await withCluster(await startCluster(1), async c => {
  const socket = c.node('n1').socket
  const cache = mkdtempSync(join(tmpdir(), 'grid-compile-cache-'))
  const commands: Array<[string, string[]]> = [['--version', ['--version']], ['status', ['--socket', socket, 'status']], ['run -- true', ['--socket', socket, 'run', '--', 'true']]]
  const builds: Array<[string, string]> = [['tsc', GRIDCTL]]
  const bundle = join(ROOT, 'dist/bundle/gridctl.mjs')
  if (existsSync(bundle)) builds.push(['bundle', bundle])
  if (values.base !== undefined) {
    builds.push(['base tsc', join(values.base, 'dist/src/cli/gridctl.js')])
    const b = join(values.base, 'dist/bundle/gridctl.mjs')
    if (existsSync(b)) builds.push(['base bundle', b])
  }
  const cases: Case[] = [{ name: "node -e ''", args: ['-e', ''] }]
  for (const [build, bin] of builds) {
    for (const [cmd, args] of commands) {
      cases.push({ name: `${build}: gridctl ${cmd}`, args: [bin, ...args], count: build.endsWith('tsc') })
      cases.push({ name: `${build} + compile cache: gridctl ${cmd}`, args: [bin, ...args], env: { NODE_COMPILE_CACHE: cache } })
    }
  }
  for (const k of cases) once(k) // the page cache warm, the compile cache filled
  const loadBefore = load()
  const ms = cases.map(() => [] as number[])
  for (let i = 0; i < N; i++) cases.forEach((k, j) => { (ms[j] as number[]).push(once(k)) })
  const loadAfter = load()
  const floor = median(ms[0] as number[])
  const rows = cases.map((k, j) => {
    const p50 = median(ms[j] as number[])
    return [k.name, p50, percentile(ms[j] as number[], 95), p50 / floor, k.count === true ? String(modules(k.args, join(c.root, 'modules.json'))) : '-']
  })
  table(`gridctl start to exit, ${N} rounds of every case (ms); load average ${loadBefore} before, ${loadAfter} after`, ['command', 'p50', 'p95', 'x bare node', 'modules'], rows)
  rmSync(cache, { recursive: true, force: true })
})
