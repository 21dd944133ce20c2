import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { GRIDD, GRIDCTL, ROOT } from './paths.ts'

/** The folders tsc builds into dist/ (tsconfig.json's include). */
const SOURCES = ['src', 'daemon', 'proto']

/**
 * Multi-node tests run the built daemon (as users do); `npm test` builds first. A dist/ older than the sources
 * would test yesterday's code, so every source file must have been built since it last changed.
 */
export default function setup (): void {
  for (const f of [GRIDD, GRIDCTL]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run "npm run build" first (npm test does it)`)
  }
  if (statSync(GRIDD).size === 0) throw new Error(`${GRIDD} is empty: rebuild`)
  const stale = staleSources()
  if (stale.length > 0) {
    const shown = stale.slice(0, 5).map(s => `${s.source} (${s.why})`).join(', ')
    throw new Error(`dist/ is older than src/, daemon/ or proto/: ${shown}${stale.length > 5 ? ` and ${stale.length - 5} more` : ''}; run npm run build (npm test does it)`)
  }
}

/** Source files changed after their dist/ counterpart was written, or never built; newest first. */
export function staleSources (root = ROOT): Array<{ source: string, why: string, mtimeMs: number }> {
  const out: Array<{ source: string, why: string, mtimeMs: number }> = []
  for (const dir of SOURCES) {
    for (const file of tsFiles(join(root, dir))) {
      const source = relative(root, file)
      const built = join(root, 'dist', source.replace(/\.ts$/, '.js'))
      const mtimeMs = statSync(file).mtimeMs
      if (!existsSync(built)) out.push({ source, why: 'not built', mtimeMs })
      else if (statSync(built).mtimeMs < mtimeMs) out.push({ source, why: 'changed since the build', mtimeMs })
    }
  }
  return out.sort((a, b) => b.mtimeMs - a.mtimeMs)
}

/** The .ts files under a folder that tsc emits (declaration files emit nothing). */
function tsFiles (dir: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...tsFiles(p))
    else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p)
  }
  return out
}
