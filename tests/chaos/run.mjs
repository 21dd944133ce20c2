// npm run chaos -- [ARGS...]: bundles tests/chaos/main.ts with esbuild (dependencies stay external, as bench/run.mjs
// does) and runs it with this Node.
import { build } from 'esbuild'
import { mkdirSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

mkdirSync('dist/chaos', { recursive: true })
const out = 'dist/chaos/main.mjs'
await build({ entryPoints: ['tests/chaos/main.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile: out, packages: 'external', logLevel: 'warning' })
process.argv = [process.argv[0], out, ...process.argv.slice(2)]
await import(pathToFileURL(out).href)
