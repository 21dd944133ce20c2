// Puts gridd and gridctl on PATH: bundles them (npm run bundle's dist/bundle: the two programs and their chunks/),
// installs the bundle, and for each program a small launcher that runs it with this Node (>= 22: npm run install-bin
// runs it through deploy/with-node.sh) and gridd's Node flags. Idempotent: a second run rewrites the same files.
//
// Usage: npm run install-bin [-- --prefix DIR]
//   --prefix DIR   bins go to DIR/bin, bundles to DIR/lib/grid (default ~/.local: ~/.local/bin; /usr/local for all users)
import { copyFileSync, chmodSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const PROGRAMS = ['gridd', 'gridctl']

/** gridd's Node flags, from the bin's shebang (tests/unit/node-flags.test.ts keeps it equal to GRIDD_NODE_FLAGS). */
export function griddNodeFlags (root = ROOT) {
  const shebang = readFileSync(join(root, 'daemon/gridd.ts'), 'utf8').split('\n')[0]
  return shebang.replace(/^#!\/usr\/bin\/env -S node/, '').trim().split(/\s+/).filter(f => f !== '')
}

const shq = s => `'${String(s).replace(/'/g, "'\\''")}'`

/**
 * gridctl's launchers keep Node's compile cache (NODE_COMPILE_CACHE, Node >= 22.1) of the bundle's entry and chunks.
 * When the bundle was one file of 2 MB, it took a quarter to 40 % off every call's start (bench/cli); since the
 * bundle is split, a call parses only its command's small chunks and the cache gains a few ms at most, but it costs
 * nothing. A NODE_COMPILE_CACHE already set wins. The same lines are in
 * the launcher gridctl deploy writes (src/deploy/render.ts).
 */
export const COMPILE_CACHE_LINES = `# Node's compile cache of the bundle (Node >= 22.1): its compiled code kept between calls, not parsed again each time
[ -n "\${NODE_COMPILE_CACHE-}" ] || [ -z "\${HOME-}" ] || { NODE_COMPILE_CACHE="\${XDG_CACHE_HOME:-$HOME/.cache}/grid/compile-cache"; export NODE_COMPILE_CACHE; }
`

/**
 * One launcher: runs the installed bundle with the Node it was installed with; if that Node has gone (a cleared cache),
 * with the node on PATH, whose version the bundle checks first (it says what to do when that one is too old).
 */
export function renderLauncher (program, nodePath, bundlePath, flags) {
  return `#!/bin/sh
# ${program}, installed by npm run install-bin: the bundled ${program}, run by a Node >= 22.
NODE=${shq(nodePath)}
[ -x "$NODE" ] || NODE=node
${program === 'gridctl' ? COMPILE_CACHE_LINES : ''}exec "$NODE" ${[...flags, bundlePath].map(shq).join(' ')} "$@"
`
}

/** Writes a file through a temporary name, so a program running from the old one never reads half a file. */
function put (path, write, mode) {
  const tmp = `${path}.tmp-${process.pid}`
  write(tmp)
  chmodSync(tmp, mode)
  renameSync(tmp, path)
}

export async function installBin (argv) {
  const { values } = parseArgs({ args: argv, options: { prefix: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help === true) {
    process.stdout.write('Usage: npm run install-bin [-- --prefix DIR]\n\nInstalls gridd and gridctl into DIR/bin (default ~/.local/bin), their bundles into DIR/lib/grid.\n')
    return 0
  }
  const prefix = resolve(values.prefix ?? join(homedir(), '.local'))
  const binDir = join(prefix, 'bin')
  const libDir = join(prefix, 'lib', 'grid')
  await import(pathToFileURL(join(ROOT, 'deploy/bundle.mjs')).href)
  mkdirSync(binDir, { recursive: true })
  const chunksDir = join(libDir, 'chunks')
  mkdirSync(chunksDir, { recursive: true })
  // the chunks first (their names carry their content's hash: a chunk already there is the same file), then the
  // programs that load them, then what older builds left
  const chunks = readdirSync(join(ROOT, 'dist/bundle/chunks'))
  for (const c of chunks) put(join(chunksDir, c), tmp => copyFileSync(join(ROOT, 'dist/bundle/chunks', c), tmp), 0o644)
  for (const p of PROGRAMS) {
    const bundle = join(libDir, `${p}.mjs`)
    put(bundle, tmp => copyFileSync(join(ROOT, 'dist/bundle', `${p}.mjs`), tmp), 0o755)
    const launcher = renderLauncher(p, process.execPath, bundle, p === 'gridd' ? griddNodeFlags() : [])
    put(join(binDir, p), tmp => writeFileSync(tmp, launcher), 0o755)
  }
  for (const old of readdirSync(chunksDir)) if (!chunks.includes(old)) rmSync(join(chunksDir, old), { force: true })
  const onPath = (process.env.PATH ?? '').split(delimiter).some(d => d !== '' && resolve(d) === binDir)
  process.stdout.write(`installed gridd and gridctl into ${binDir} (bundles in ${libDir}, run by Node ${process.versions.node} at ${process.execPath})\n`)
  process.stdout.write(onPath
    ? `${binDir} is on PATH: run gridd and gridctl from anywhere\n`
    : `${binDir} is not on PATH: add it, as in  export PATH="${binDir}:$PATH"  (in ~/.profile or your shell's rc file)\n`)
  return 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  installBin(process.argv.slice(2)).then(code => { process.exitCode = code }, err => {
    process.stderr.write(`install-bin: ${err.message}\n`)
    process.exitCode = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? 2 : 1
  })
}
