import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { VERSION } from '../../src/version.ts'
import { tempDir } from '../helpers/cluster.ts'
import { GRIDCTL, GRIDD, ROOT } from '../helpers/paths.ts'

const root = tempDir('grid-install-')
const prefix = join(root, 'prefix')
const bin = join(prefix, 'bin')
afterAll(() => { rmSync(root, { recursive: true, force: true }) })

const install = (env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, [join(ROOT, 'deploy/install-bin.mjs'), '--prefix', prefix], { encoding: 'utf8', env, timeout: 60_000 })

/** Runs a shell command line with `dir` first on PATH, from a directory outside the checkout. */
const sh = (line: string, dir: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> =>
  spawnSync('sh', ['-c', line], { encoding: 'utf8', cwd: root, env: { ...process.env, ...env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` }, timeout: 30_000 })

/**
 * A `node` that behaves as Node 20 does for Grid: it reports version 20.11.1 and lacks Promise.withResolvers (what
 * made gridd die half-way through its start on the PATH's Node 20).
 */
function fakeOldNode (): string {
  const dir = join(root, 'old-node')
  mkdirSync(dir, { recursive: true })
  const preload = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.11.1"});delete Promise.withResolvers'
  writeFileSync(join(dir, 'node'), `#!/bin/sh\nexec '${process.execPath}' --import '${preload}' "$@"\n`)
  chmodSync(join(dir, 'node'), 0o755)
  return dir
}

describe('npm run install-bin - gridd and gridctl on PATH', () => {
  let first: SpawnSyncReturns<string>
  beforeAll(() => { first = install() })

  it('installs both launchers and says where, and whether that directory is on PATH', () => {
    expect(first.status, first.stderr).toBe(0)
    expect(first.stdout).toContain(`installed gridd and gridctl into ${bin}`)
    expect(first.stdout).toContain(`${bin} is not on PATH`)
    for (const p of ['gridd', 'gridctl']) expect(existsSync(join(bin, p))).toBe(true)
  })

  it('runs gridctl --version and gridd --help through the launchers, from outside the checkout', () => {
    const v = sh('gridctl --version', bin)
    expect(v.status, v.stderr).toBe(0)
    expect(v.stdout).toBe(`gridctl ${VERSION}\n`)
    expect(v.stderr).toBe('')
    const h = sh('gridd --help', bin)
    expect(h.status, h.stderr).toBe(0)
    expect(h.stdout).toMatch(/^Usage: gridd \[flags\]/)
    expect(sh('gridd --version', bin).stdout).toBe(`gridd ${VERSION}\n`)
  })

  it('is idempotent: a second run writes the same launchers, and sees the directory on PATH', () => {
    const before = ['gridd', 'gridctl'].map(p => readFileSync(join(bin, p), 'utf8'))
    const again = install({ ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` })
    expect(again.status, again.stderr).toBe(0)
    expect(again.stdout).toContain(`${bin} is on PATH`)
    expect(['gridd', 'gridctl'].map(p => readFileSync(join(bin, p), 'utf8'))).toEqual(before)
    expect(sh('gridctl --version', bin).stdout).toBe(`gridctl ${VERSION}\n`)
  })

  it('installs a split bundle: a gridctl command reads its few chunks, not the whole package', () => {
    const lib = join(prefix, 'lib', 'grid')
    const chunks = readdirSync(join(lib, 'chunks'))
    expect(chunks.sort()).toEqual(readdirSync(join(ROOT, 'dist/bundle/chunks')).sort())
    const whole = [join(lib, 'gridd.mjs'), join(lib, 'gridctl.mjs'), ...chunks.map(c => join(lib, 'chunks', c))].reduce((n, f) => n + statSync(f).size, 0)
    expect(whole).toBeGreaterThan(2_000_000)
    const read = (args: string[]): number => {
      const file = join(root, 'modules.json')
      spawnSync(process.execPath, ['--import', join(ROOT, 'tests/helpers/count-modules.mjs'), join(lib, 'gridctl.mjs'), ...args], { env: { ...process.env, GRID_MODULE_COUNT_FILE: file }, timeout: 30_000 })
      const { files } = JSON.parse(readFileSync(file, 'utf8')) as { files: string[] }
      expect(files.every(f => f.startsWith(lib))).toBe(true)
      return files.reduce((n, f) => n + statSync(f).size, 0)
    }
    // the one-file bundle read all of it (2.2 MB: ssh2, typebox, yaml) at every call
    expect(read(['--version'])).toBeLessThan(whole / 50)
    expect(read(['--socket', join(root, 'none.sock'), 'status'])).toBeLessThan(whole / 20)
  })

  it('removes the chunks of an older install, keeping those the new one loads', () => {
    const stale = join(prefix, 'lib', 'grid', 'chunks', 'chunk-OLDBUILD.mjs')
    writeFileSync(stale, 'export {}\n')
    const again = install()
    expect(again.status, again.stderr).toBe(0)
    expect(existsSync(stale)).toBe(false)
    expect(sh('gridctl --version', bin).stdout).toBe(`gridctl ${VERSION}\n`)
  })
})

describe('the bins under a Node older than 22', () => {
  const old = fakeOldNode()
  const tooOld = (p: string): RegExp => new RegExp(`^${p}: error \\[NODE_TOO_OLD\\]: ${p} needs Node\\.js 22 or later \\(found 20\\.11\\.1\\) — install Node\\.js 24 LTS, or run it through deploy/with-node\\.sh, .*npm run install-bin`)

  it('gridd says which Node it needs and what to do, exits 1, and writes no identity or swarm key', () => {
    const data = join(root, 'old-data')
    const r = sh(`node '${GRIDD}' --data-dir '${data}' --socket '${join(root, 'old.sock')}' --listen /ip4/127.0.0.1/tcp/0 --metrics-listen off`, old)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(tooOld('gridd'))
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(existsSync(data)).toBe(false)
  })

  it('gridctl says the same, in one line, and exits 1', () => {
    const r = sh(`node '${GRIDCTL}' --version`, old)
    expect(r.status).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(tooOld('gridctl'))
  })

  it('an installed launcher whose Node has gone falls back to the PATH\'s node, and the bundle says it is too old', () => {
    const launcher = readFileSync(join(bin, 'gridd'), 'utf8').replace(/^NODE=.*$/m, `NODE='${join(root, 'gone', 'node')}'`)
    const dir = join(root, 'stale-bin')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'gridd'), launcher)
    chmodSync(join(dir, 'gridd'), 0o755)
    const data = join(root, 'stale-data')
    const r = sh(`gridd --data-dir '${data}' --listen /ip4/127.0.0.1/tcp/0 --metrics-listen off`, `${dir}${delimiter}${old}`)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(tooOld('gridd'))
    expect(existsSync(data)).toBe(false)
  })
})
