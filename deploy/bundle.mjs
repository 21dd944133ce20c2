// Builds the package deploy installs, which needs no node_modules: dist/bundle/gridd.mjs and dist/bundle/gridctl.mjs,
// the two programs, and dist/bundle/chunks/, the code they share and the code each loads only when it needs it (every
// gridctl command, the daemon's main). Usage: npm run bundle
//
// Split, not one file each: a single-file gridctl made every call read and parse 2.2 MB (ssh2, typebox, yaml) and load
// every Node built-in any command imports; split, `gridctl --version` loads its 2 KB entry and what that imports
// (bench/cli). Chunk names carry a hash of their content, so a chunk of one build never stands for another's, and an
// entry's bytes name every chunk it can load: the entry's sha256 changes whenever anything it runs changes.
import { build } from 'esbuild'
import { chmodSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const OUT = `${ROOT}dist/bundle`
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8'))

rmSync(`${OUT}/chunks`, { recursive: true, force: true })
await build({
  entryPoints: { gridd: `${ROOT}daemon/gridd.ts`, gridctl: `${ROOT}src/cli/gridctl.ts` },
  outdir: OUT,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  // ssh2's optional native add-ons: without them it uses Node's own crypto
  external: ['*.node', 'cpu-features'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  logLevel: 'warning',
  define: { __GRID_VERSION__: JSON.stringify(pkg.version) },
  // a few dependencies use require() and __dirname (ssh2's poly1305); give every file of the ESM bundle both
  banner: { js: "import { createRequire as __gridRequire } from 'node:module'; import { fileURLToPath as __gridFileURLToPath } from 'node:url'; import { dirname as __gridDirname } from 'node:path'; const require = __gridRequire(import.meta.url); const __filename = __gridFileURLToPath(import.meta.url); const __dirname = __gridDirname(__filename);" }
})
for (const p of ['gridd', 'gridctl']) chmodSync(`${OUT}/${p}.mjs`, 0o755)
console.log(`bundled grid ${pkg.version} into dist/bundle/`)
