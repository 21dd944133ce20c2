// Builds self-contained single-file programs (no node_modules needed) for deployment:
// dist/bundle/gridd.mjs and dist/bundle/gridctl.mjs. Usage: npm run bundle
import { build } from 'esbuild'
import { readFileSync, chmodSync } from 'node:fs'

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const common = {
  // ssh2's optional native add-ons: without them it uses Node's own crypto
  external: ['*.node', 'cpu-features'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  logLevel: 'warning',
  define: { __GRID_VERSION__: JSON.stringify(pkg.version) },
  // a few dependencies use require() and __dirname (ssh2's poly1305); give the ESM bundle both
  banner: { js: "import { createRequire as __gridRequire } from 'node:module'; import { fileURLToPath as __gridFileURLToPath } from 'node:url'; import { dirname as __gridDirname } from 'node:path'; const require = __gridRequire(import.meta.url); const __filename = __gridFileURLToPath(import.meta.url); const __dirname = __gridDirname(__filename);" }
}
for (const [entry, out] of [['daemon/gridd.ts', 'dist/bundle/gridd.mjs'], ['src/cli/gridctl.ts', 'dist/bundle/gridctl.mjs']]) {
  await build({ ...common, entryPoints: [entry], outfile: out })
  chmodSync(out, 0o755)
}
console.log(`bundled grid ${pkg.version} into dist/bundle/`)
