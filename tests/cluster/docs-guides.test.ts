import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { processAlive, tempDir } from '../helpers/cluster.ts'
import { pathWith, writeGridBin } from '../helpers/grid-bin.ts'
import { fencedBlocks, testedBlocks, type GuideBlock } from '../helpers/guide-blocks.ts'
import { ROOT } from '../helpers/paths.ts'

// Every guide in docs/ with tested shell blocks (```sh tested) runs them: one bash session per guide (set -euo
// pipefail), in a fresh temporary directory, blocks in file order, with `gridctl` and `gridd` on the PATH (wrappers
// around dist's build, run by this Node). The session's environment: GRID_SRC is the repository (for files a guide
// uses, as $GRID_SRC/systemd/gridd.service), no GRID_* variable of the runner's leaks in, and NO_COLOR is set.
// Whatever the blocks start (daemons in the background, `gridctl dev up`'s detached ones) is ended afterwards: the
// session's process group, then every process whose command line or working directory is under the temp directory
// or whose environment carries the session's mark (DOCS_GUIDE_SESSION).
const DOCS = join(ROOT, 'docs')
const SESSION_TIMEOUT_MS = 110_000
/**
 * Guides that run every shell command they show, but for those no test machine can: commands that need root
 * (`sudo ...`) or other machines (`gridctl deploy`, `gridctl cluster`), which they show in plain ```sh blocks.
 */
const FULLY_TESTED = ['concepts.md', 'gpu.md', 'operations.md']
const UNTESTABLE = /^(sudo |gridctl (deploy|cluster) )/

interface Guide { file: string, blocks: GuideBlock[] }
/** GRID_TEST_GUIDES=a.md,b.md runs only those guides (while writing one) */
const only = process.env.GRID_TEST_GUIDES?.split(',').filter(f => f !== '')
const guides: Guide[] = readdirSync(DOCS).filter(f => f.endsWith('.md') && (only === undefined || only.includes(f))).sort()
  .map(file => ({ file, blocks: testedBlocks(readFileSync(join(DOCS, file), 'utf8')) }))
  .filter(g => g.blocks.length > 0)

const roots = new Set<string>()

/** Set in the session's environment: its processes carry it, even those that detach (setsid) and leave its directory. */
const SESSION_MARK = 'DOCS_GUIDE_SESSION'

/**
 * Processes (not this one) of a guide's session: whose command line names a path under `root`, whose working
 * directory is under it, or whose environment carries the session's mark.
 */
function processesUnder (root: string): number[] {
  const out: number[] = []
  const mark = `${SESSION_MARK}=${root}`
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue
    try {
      const args = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0')
      let cwd = ''
      try { cwd = readlinkSync(`/proc/${e}/cwd`) } catch {}
      let marked = false
      try { marked = readFileSync(`/proc/${e}/environ`, 'utf8').split('\0').includes(mark) } catch {}
      if (marked || args.some(a => a.includes(root)) || cwd === root || cwd.startsWith(root + '/')) out.push(Number(e))
    } catch {}
  }
  return out
}

/** TERM, then KILL after a grace, to the session's group and to whatever else runs under its directory. */
async function endEverything (root: string, pgid: number | undefined): Promise<void> {
  const signalAll = (sig: NodeJS.Signals): number[] => {
    if (pgid !== undefined) { try { process.kill(-pgid, sig) } catch {} }
    const pids = processesUnder(root)
    for (const pid of pids) { try { process.kill(pid, sig) } catch {} }
    return pids
  }
  signalAll('SIGCONT')
  signalAll('SIGTERM')
  const deadline = Date.now() + 25_000
  const groupAlive = (): boolean => { if (pgid === undefined) return false; try { process.kill(-pgid, 0); return true } catch { return false } }
  while (Date.now() < deadline && (groupAlive() || processesUnder(root).some(processAlive))) await new Promise(resolve => setTimeout(resolve, 100))
  signalAll('SIGKILL')
}

/** Runs a guide's tested blocks in one bash session; resolves with what ran, and how it ended. */
async function runGuide (g: Guide): Promise<{ ok: boolean, report: string, timing: string }> {
  const root = tempDir(`grid-guide-${g.file.replace(/\.md$/, '')}-`)
  roots.add(root)
  const work = join(root, 'work')
  const blocks = join(root, 'blocks')
  mkdirSync(work)
  mkdirSync(blocks)
  const bin = writeGridBin(root)
  const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`
  const driver = ['set -euo pipefail']
  g.blocks.forEach((b, i) => {
    writeFileSync(join(blocks, `${i}.sh`), b.code)
    driver.push(`printf ${i} > ${q(join(blocks, 'at'))}; date +%s%3N >> ${q(join(blocks, 'times'))}; source ${q(join(blocks, `${i}.sh`))} > ${q(join(blocks, `${i}.out`))} 2>&1 < /dev/null`)
  })
  driver.push(`printf done > ${q(join(blocks, 'at'))}; date +%s%3N >> ${q(join(blocks, 'times'))}`)
  writeFileSync(join(blocks, 'driver.sh'), driver.join('\n') + '\n')
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('GRID_')) env[k] = v
  Object.assign(env, { PATH: pathWith(bin), GRID_SRC: ROOT.replace(/\/$/, ''), NO_COLOR: '1', [SESSION_MARK]: root })
  const p = spawn('bash', ['--noprofile', '--norc', join(blocks, 'driver.sh')], { cwd: work, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let own = ''
  p.stdout.on('data', (d: Buffer) => { own += d.toString() })
  p.stderr.on('data', (d: Buffer) => { own += d.toString() })
  let timedOut = false
  const code = await new Promise<number>(resolve => {
    const t = setTimeout(() => { timedOut = true; try { process.kill(-(p.pid as number), 'SIGKILL') } catch {} }, SESSION_TIMEOUT_MS)
    p.on('exit', (c, sig) => { clearTimeout(t); resolve(c ?? (sig === null ? 1 : 128)) })
    p.on('error', () => { clearTimeout(t); resolve(127) })
  })
  await endEverything(root, p.pid)
  const at = existsSync(join(blocks, 'at')) ? readFileSync(join(blocks, 'at'), 'utf8') : '0'
  const ok = code === 0 && at === 'done' && !timedOut
  const failed = at === 'done' ? -1 : Number(at)
  // each block's wall time (the guides' tested parts are meant to stay quick)
  const times = existsSync(join(blocks, 'times')) ? readFileSync(join(blocks, 'times'), 'utf8').trim().split('\n').map(Number) : []
  const took = (i: number): string => times[i + 1] === undefined ? '' : ` (${((times[i + 1] as number) - (times[i] as number)) / 1000} s)`
  const parts: string[] = []
  for (let i = 0; i < g.blocks.length && (failed === -1 || i <= failed); i++) {
    const b = g.blocks[i] as GuideBlock
    const out = existsSync(join(blocks, `${i}.out`)) ? readFileSync(join(blocks, `${i}.out`), 'utf8') : ''
    const tail = out.trimEnd().split('\n').slice(i === failed ? -80 : -15).join('\n')
    const what = i === failed ? (timedOut ? `timed out after ${SESSION_TIMEOUT_MS / 1000} s` : `FAILED (exit ${code})`) : `ok${took(i)}`
    parts.push(`--- docs/${g.file}:${b.line} ${what}\n${i === failed ? b.code.trimEnd() + '\n--- its output:\n' : ''}${tail}`)
  }
  if (own.trim() !== '') parts.push(`--- the session's own output:\n${own.trimEnd()}`)
  if (ok && process.env.GRID_TEST_KEEP === undefined) rmSync(root, { recursive: true, force: true })
  const total = times.length > 1 ? ((times.at(-1) as number) - (times[0] as number)) / 1000 : undefined
  return { ok, report: parts.join('\n'), timing: g.blocks.map((b, i) => `:${b.line}${took(i)}`).join(' ') + (total === undefined ? '' : `, ${total} s in all`) }
}

describe('docs guides - every ```sh tested block runs, in one bash session per guide', () => {
  afterAll(async () => {
    for (const root of roots) {
      await endEverything(root, undefined)
      if (process.env.GRID_TEST_KEEP === undefined) rmSync(root, { recursive: true, force: true })
    }
  })

  it.skipIf(only !== undefined)('finds the guides and their tested blocks', () => {
    expect(guides.map(g => g.file)).toEqual(expect.arrayContaining(FULLY_TESTED))
  })

  it.each(FULLY_TESTED)('docs/%s shows no shell command it does not run, but those that need root or other machines', file => {
    const untested = fencedBlocks(readFileSync(join(DOCS, file), 'utf8')).filter(b => /^(sh|bash|shell|console)\b/.test(b.info) && b.info !== 'sh tested')
    const lines = untested.flatMap(b => b.code.split('\n').map((l, i) => ({ at: `docs/${file}:${b.line + 1 + i}`, l: l.trim() })))
    // a command line (not a comment, a blank line, or the continuation of the line before) that a test could run
    const runnable = lines.filter(({ l }, i) => l !== '' && !l.startsWith('#') && !(lines[i - 1]?.l.endsWith('\\') ?? false) && !UNTESTABLE.test(l))
    expect(runnable.map(({ at, l }) => `${at}: ${l}`)).toEqual([])
  })

  for (const g of guides) {
    it(`docs/${g.file}: its ${g.blocks.length} tested blocks run`, async () => {
      const r = await runGuide(g)
      if (!r.ok) throw new Error(`docs/${g.file} failed:\n${r.report}`)
      console.info(`docs/${g.file}: blocks ${r.timing}`)
    }, SESSION_TIMEOUT_MS + 40_000)
  }
})
