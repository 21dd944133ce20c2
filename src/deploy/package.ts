/**
 * The package deploy installs: the two self-contained bundles `npm run bundle` writes (gridd.mjs, gridctl.mjs), with
 * their sha256 and the version stamped into them.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NotFoundError, InvalidArgumentError } from '../interface/index.ts'
import { PACKAGE_FILES } from './constants.ts'

export interface PackageFile {
  path: string
  sha256: string
  size: number
}

export interface GridPackage {
  dir: string
  version: string
  gridd: PackageFile
  gridctl: PackageFile
}

function hasPackage (dir: string): boolean {
  return PACKAGE_FILES.every(f => existsSync(join(dir, f)))
}

/**
 * Where the package is when --package is not given: beside the running gridctl when it is itself the bundle (or an
 * installed lib/), else dist/bundle of the checkout it runs from.
 */
export function findPackageDir (from: string = dirname(fileURLToPath(import.meta.url))): string | null {
  if (hasPackage(from)) return from
  let dir = from
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'dist', 'bundle')
    if (hasPackage(candidate)) return candidate
    const parent = dirname(dir)
    if (parent === dir) break
    dir = parent
  }
  return null
}

export async function loadPackage (dir?: string, options: { signal?: AbortSignal } = {}): Promise<GridPackage> {
  const found = dir === undefined ? findPackageDir() : resolve(dir)
  if (found === null) throw new NotFoundError('no Grid package found: run "npm run bundle" in the Grid checkout, or pass --package DIR (a folder with gridd.mjs and gridctl.mjs)')
  for (const f of PACKAGE_FILES) {
    if (!existsSync(join(found, f))) throw new InvalidArgumentError(`--package ${found} has no ${f}; it must hold the bundles "npm run bundle" writes (gridd.mjs, gridctl.mjs)`)
  }
  const file = (name: string): PackageFile => {
    const path = join(found, name)
    const bytes = readFileSync(path)
    return { path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length }
  }
  const gridd = file('gridd.mjs')
  const gridctl = file('gridctl.mjs')
  const version = await new Promise<string>((resolveVersion, reject) => {
    execFile(process.execPath, [gridd.path, '--version'], { timeout: 30_000, ...(options.signal === undefined ? {} : { signal: options.signal }) }, (err, stdout, stderr) => {
      const m = /^gridd (\S+)/.exec(stdout)
      if (err !== null || m === null) {
        reject(new InvalidArgumentError(`cannot read the version of ${gridd.path} (${(err?.message ?? stderr.trim()) || 'no "gridd VERSION" line'}); rebuild it with "npm run bundle"`))
      } else {
        resolveVersion(m[1] as string)
      }
    })
  })
  return { dir: found, version, gridd, gridctl }
}

export function formatSize (bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`
}

/** sha256 of bytes, hex. */
export function sha256 (data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}
