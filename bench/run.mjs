// Runs one benchmark: bundles bench/NAME.ts with esbuild (dependencies stay external) and runs it with this Node.
// Usage: npm run bench -- NAME [ARGS...]   (NAME: cli, membership, placement, state, sync, tasks, workers, jobs, workflows)
import { build } from 'esbuild'
import { mkdirSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

const [name, ...rest] = process.argv.slice(2)
if (name === undefined) {
  console.error('usage: npm run bench -- NAME [ARGS...]   (cli, membership, placement, state, sync, tasks, workers, jobs, workflows)')
  process.exit(2)
}
mkdirSync('dist/bench', { recursive: true })
const out = `dist/bench/${name}.mjs`
await build({ entryPoints: [`bench/${name}.ts`], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile: out, packages: 'external', logLevel: 'warning' })
process.argv = [process.argv[0], out, ...rest]
await import(pathToFileURL(out).href)
