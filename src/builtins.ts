/**
 * The Node built-ins that gridctl's start-up path uses, through require rather than `import`: an ESM import of a
 * built-in evaluates every one of its exports, and node:fs's and node:util's lazy ones (fs.promises, util.types, ...)
 * cost about 5 ms each of every gridctl call (bench/cli). Elsewhere, import them as usual. (Not named `require`: the
 * bundle's banner declares that name in every chunk.)
 */
import { createRequire } from 'node:module'

const load = createRequire(import.meta.url)

export const { existsSync, readFileSync } = load('node:fs') as typeof import('node:fs')
export const { parseArgs } = load('node:util') as typeof import('node:util')
