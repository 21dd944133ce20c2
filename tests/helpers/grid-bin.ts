/**
 * A bin folder for shell sessions that run Grid the way a person does (`gridctl ...`, `gridd ...` on the PATH): small
 * wrappers that exec this Node (the runner's, >= 22) on dist's gridctl and gridd, with gridd's Node flags, and
 * optionally a `python3` that is a Python with torch (the examples' and guides' tests put it first on the PATH).
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { GRIDD_NODE_FLAGS } from '../../src/version.ts'
import { GRIDCTL, GRIDD } from './paths.ts'

const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

/** Writes DIR/bin/{gridctl,gridd} (and python3, when given) and returns DIR/bin. */
export function writeGridBin (dir: string, opts: { python?: string } = {}): string {
  const bin = join(dir, 'bin')
  mkdirSync(bin, { recursive: true })
  const wrapper = (args: string[]): string => `#!/bin/sh\nexec ${[process.execPath, ...args].map(q).join(' ')} "$@"\n`
  writeFileSync(join(bin, 'gridctl'), wrapper([GRIDCTL]))
  writeFileSync(join(bin, 'gridd'), wrapper([...GRIDD_NODE_FLAGS, GRIDD]))
  for (const f of ['gridctl', 'gridd']) chmodSync(join(bin, f), 0o755)
  if (opts.python !== undefined) symlinkSync(opts.python, join(bin, 'python3'))
  return bin
}

/** PATH with `bin` first. */
export function pathWith (bin: string): string {
  return [bin, process.env.PATH ?? ''].join(delimiter)
}

/**
 * A Python that can import torch: GRID_TEST_TORCH_PYTHON, else /usr/bin/python3 (Debian's python3-torch, which CI
 * installs), else the PATH's python3 (which may be a pyenv shim without it); undefined when none can.
 */
export function torchPython (): string | undefined {
  const candidates = [process.env.GRID_TEST_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => p !== undefined && p !== '')
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 })
    if (r.status === 0) {
      if (py.includes('/')) return py
      const which = spawnSync('sh', ['-c', `command -v ${py}`], { encoding: 'utf8' })
      return which.stdout.trim()
    }
  }
  return undefined
}
