/**
 * `--fetch`: after an attempt ends, the files under its tree that match the patterns (globs relative to the tree) are
 * taken into the cache, and a manifest of them is made, for the origin to pull and the client to write back.
 */
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { glob, lstat, realpath } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import type { Manifest, ManifestFile } from '../../proto/index.ts'
import type { BlobCache } from './blob-cache.ts'
import { isSafeRelPath } from './manifest-codec.ts'

export async function collectFiles (cache: BlobCache, dir: string, patterns: readonly string[]): Promise<{ manifest: Manifest, bytes: number }> {
  const root = await realpath(dir)
  const entries: ManifestFile[] = []
  const seen = new Set<string>()
  let bytes = 0
  for await (const found of glob([...patterns], { cwd: root })) {
    const rel = String(found).split(sep).join('/')
    if (seen.has(rel) || !isSafeRelPath(rel)) continue
    seen.add(rel)
    const abs = join(root, rel)
    const st = await lstat(abs).catch(() => undefined)
    // regular files only, and only inside the tree (a glob does not follow a link out, but check)
    if (st === undefined || !st.isFile()) continue
    const real = await realpath(abs).catch(() => '')
    if (!real.startsWith(root + sep)) continue
    const hash = await takeIn(cache, abs)
    entries.push({ path: rel, mode: st.mode & 0o777, size: st.size, sha256: hash })
    bytes += st.size
  }
  return { manifest: { version: 1, entries }, bytes }
}

/** Copies a file into the cache, hashing as it goes; its hash. */
async function takeIn (cache: BlobCache, abs: string): Promise<string> {
  const h = createHash('sha256')
  const tmp = cache.tmpPath('collect')
  let size = 0
  await pipeline(createReadStream(abs), new Transform({ transform (chunk: Buffer, _enc, cb) { h.update(chunk); size += chunk.byteLength; cb(null, chunk) } }), createWriteStream(tmp, { mode: 0o600 }))
  const hash = h.digest('hex')
  await cache.commit(tmp, hash, size)
  return hash
}
