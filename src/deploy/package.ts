/**
 * The package deploy installs: what `npm run bundle` writes, the two programs (gridd.mjs, gridctl.mjs) and the chunks
 * they load (chunks/), each with its sha256, and the version stamped into them.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NotFoundError, InvalidArgumentError } from '../interface/index.ts'
import { CHUNKS_DIR, PACKAGE_FILES } from './constants.ts'

export interface PackageFile {
  path: string
  sha256: string
  size: number
}

export interface PackageChunk extends PackageFile {
  /** Its file name in chunks/. */
  name: string
}

export interface GridPackage {
  dir: string
  version: string
  gridd: PackageFile
  gridctl: PackageFile
  /** Every file of chunks/, by name. */
  chunks: PackageChunk[]
}

function hasPackage (dir: string): boolean {
  return PACKAGE_FILES.every(f => existsSync(join(dir, f)))
}

/**
 * Where the package is when --package is not given: around the running gridctl when it is itself the bundle (or an
 * installed lib/; this code then runs from a file of its chunks/), else dist/bundle of the checkout it runs from.
 */
export function findPackageDir (from: string = dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = from
  for (let i = 0; i < 6; i++) {
    if (hasPackage(dir)) return dir
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
  if (found === null) throw new NotFoundError('no Grid package found: run "npm run bundle" in the Grid checkout, or pass --package DIR (the folder it writes: gridd.mjs, gridctl.mjs and chunks/)')
  for (const f of PACKAGE_FILES) {
    if (!existsSync(join(found, f))) throw new InvalidArgumentError(`--package ${found} has no ${f}; it must hold what "npm run bundle" writes (gridd.mjs, gridctl.mjs and chunks/)`)
  }
  const texts = new Map<string, string>()
  const file = (name: string): PackageFile => {
    const path = join(found, name)
    const bytes = readFileSync(path)
    texts.set(name, bytes.toString('latin1'))
    return { path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length }
  }
  const gridd = file('gridd.mjs')
  const gridctl = file('gridctl.mjs')
  const chunksDir = join(found, CHUNKS_DIR)
  const names = existsSync(chunksDir) ? readdirSync(chunksDir).filter(n => n.endsWith('.mjs')).sort() : []
  const chunks = names.map(name => ({ name, ...file(`${CHUNKS_DIR}/${name}`) }))
  const missing = missingChunks(texts)
  if (missing.length > 0) {
    throw new InvalidArgumentError(`--package ${found} lacks ${missing.length} of the chunks its programs load (${CHUNKS_DIR}/${missing[0] ?? ''}${missing.length > 1 ? ', ...' : ''}): copy the whole folder "npm run bundle" writes, or run it again`)
  }
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
  return { dir: found, version, gridd, gridctl, chunks }
}

/**
 * The chunks that a file of the package imports (an entry: "./chunks/NAME"; a chunk: "./NAME") and the package lacks.
 * esbuild writes every import of a chunk as such a literal, static and dynamic alike.
 */
function missingChunks (texts: Map<string, string>): string[] {
  const missing = new Set<string>()
  for (const [file, text] of texts) {
    const re = file.startsWith(`${CHUNKS_DIR}/`) ? /["']\.\/([\w.-]+\.mjs)["']/g : /["']\.\/chunks\/([\w.-]+\.mjs)["']/g
    for (const m of text.matchAll(re)) {
      const name = m[1] as string
      if (!texts.has(`${CHUNKS_DIR}/${name}`)) missing.add(name)
    }
  }
  return [...missing].sort()
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
