import { readFileSync } from 'node:fs'
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
