import { readFileSync } from './builtins.ts'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Set by the bundler (deploy/bundle.mjs); absent when running from dist/ or the sources. */
declare const __GRID_VERSION__: string | undefined

/** This build's version: stamped into bundles, else read from the package.json above this file. */
export const VERSION: string = (() => {
  if (typeof __GRID_VERSION__ === 'string') return __GRID_VERSION__
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'grid' && typeof pkg.version === 'string') return pkg.version
    } catch {}
    dir = dirname(dir)
  }
  return '0.0.0-unknown'
})()

/**
 * Node flags gridd runs with, set by every launcher we ship (the bin's shebang, npm start, the launcher gridctl deploy
 * writes, the test harness). V8 otherwise grows the young generation to 64 MB semi-spaces under gridd's steady stream
 * of small allocations (heartbeats, streams), and keeps them: 8 MB semi-spaces took a 10-node daemon from ~255 MB to
 * ~150 MB RSS at the same idle CPU. A runtime v8.setFlagsFromString cannot change it: the heap is sized at start.
 */
export const GRIDD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8']
