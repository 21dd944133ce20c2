/**
 * gridctl's start-up stays light (issue 19): every call pays for the modules it loads before it sends anything, so
 * `--version` loads no command, and a command only its own modules, none of a package (no libp2p, typebox, ssh2 or
 * yaml for a request that is plain HTTP on the socket). Checked on the sources' static import graph (what Node loads
 * before any `import()` runs), as esbuild resolves it, so it fails the moment someone adds a top-level import of a
 * heavy module. The cluster test (tests/cluster/gridctl.test.ts) counts the modules the built gridctl really loads.
 */
import { join, relative } from 'node:path'
import { build, type Metafile } from 'esbuild'
import { describe, expect, it } from 'vitest'
import { COMMANDS } from '../../src/cli/commands/index.ts'
import { COMMAND_LOADERS } from '../../src/cli/commands/registry.ts'
import { ROOT } from '../helpers/paths.ts'

const CLI = 'src/cli'

/** The static import graph from these entries: file -> the files and packages it imports at its top. */
async function graph (entries: string[]): Promise<Metafile['inputs']> {
  const r = await build({ entryPoints: entries.map(e => join(ROOT, e)), bundle: true, write: false, metafile: true, platform: 'node', format: 'esm', packages: 'external', outdir: join(ROOT, 'dist/unused'), logLevel: 'silent', splitting: true })
  return r.metafile.inputs
}

/** What loading `entries` loads before any dynamic import: our own files (relative to the root) and the packages. */
async function staticClosure (entries: string[]): Promise<{ files: string[], packages: string[] }> {
  const inputs = await graph(entries)
  const files = new Set<string>()
  const packages = new Set<string>()
  const visit = (f: string): void => {
    if (files.has(f)) return
    files.add(f)
    for (const imp of inputs[f]?.imports ?? []) {
      if (imp.kind !== 'import-statement') continue
      if (imp.external === true) { if (!imp.path.startsWith('node:')) packages.add(imp.path) } else visit(imp.path)
    }
  }
  for (const e of entries) visit(relative(process.cwd(), join(ROOT, e)))
  return { files: [...files].map(f => relative(ROOT, join(process.cwd(), f))).sort(), packages: [...packages].sort() }
}

describe('gridctl start-up', () => {
  it('has a lazy loader for every command, in the help\'s order, loading that same command', async () => {
    expect(COMMAND_LOADERS.map(([n]) => n)).toEqual(COMMANDS.map(c => c.name))
    for (const [name, load] of COMMAND_LOADERS) expect(await load(), name).toBe(COMMANDS.find(c => c.name === name))
  })

  it('loads no command, client or package for --version', async () => {
    // the bin checks Node's version, then imports the program, which answers --version before loading anything else
    const { files, packages } = await staticClosure([`${CLI}/gridctl.ts`, `${CLI}/run-gridctl.ts`])
    expect(packages).toEqual([])
    expect(files.filter(f => f.startsWith(`${CLI}/commands/`))).toEqual([`${CLI}/commands/registry.ts`])
    expect(files).not.toContain(`${CLI}/client.ts`)
    expect(files.length, files.join(' ')).toBeLessThanOrEqual(8)
  })

  for (const [name, file] of [['status', 'status.ts'], ['run', 'run.ts'], ['workflow', 'workflow.ts'], ['tasks', 'tasks.ts'], ['nodes', 'nodes.ts']] as const) {
    it(`loads only its own command and no package for ${name}`, async () => {
      const { files, packages } = await staticClosure([`${CLI}/gridctl.ts`, `${CLI}/run-gridctl.ts`, `${CLI}/client.ts`, `${CLI}/commands/${file}`])
      // yaml (workflow files), ssh2 (deploy), typebox (schemas), libp2p (keygen) load only where a command needs them
      expect(packages).toEqual([])
      const commands = files.filter(f => f.startsWith(`${CLI}/commands/`) && f !== `${CLI}/commands/registry.ts`)
      // workflow's `logs` is tasks.ts' command; nodes shows health's column
      const own = { status: ['status.ts'], run: ['run.ts'], workflow: ['tasks.ts', 'workflow.ts'], tasks: ['tasks.ts'], nodes: ['health.ts', 'nodes.ts'] }[name]
      expect(commands).toEqual(own.map(f => `${CLI}/commands/${f}`))
      expect(files.length, files.join(' ')).toBeLessThan(30)
    })
  }
})
