/**
 * A manifest's canonical bytes (entries sorted by path, fields in a fixed order), so the same tree always has the same
 * manifest hash. No validator here (typebox): gridctl's upload path loads this, not manifest-codec.ts.
 */
import { createHash } from 'node:crypto'
import { closeSync, createReadStream, openSync, readSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Manifest, ManifestEntry, ManifestFile } from '../../proto/sync.ts'

export const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')

export const isFile = (e: ManifestEntry): e is ManifestFile => 'sha256' in e

/** Files up to this size are hashed in one synchronous read (sha256OfSmallFileSync). */
export const SMALL_FILE_BYTES = 1024 * 1024

/**
 * The sha256 of a small file's content (at most SMALL_FILE_BYTES), read synchronously into `buf` (at least that large):
 * for a process that waits on nothing else meanwhile (gridctl), 4x quicker than a stream per file, which takes four
 * trips to the thread pool and a 64 KiB buffer each (10,000 files of 20 KB: 0.24 s against 1.0 s here). A file that
 * has grown past the buffer is read on in pieces.
 */
export function sha256OfSmallFileSync (abs: string, buf: Buffer): string {
  const fd = openSync(abs, 'r')
  try {
    const h = createHash('sha256')
    for (let n = readSync(fd, buf, 0, buf.byteLength, null); n > 0; n = readSync(fd, buf, 0, buf.byteLength, null)) h.update(buf.subarray(0, n))
    return h.digest('hex')
  } finally {
    closeSync(fd)
  }
}

/** The sha256 of a file's content, read as a stream. */
export async function sha256OfFile (abs: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** The directories that hold `entries` (the root not among them), parents first (a path sorts after its prefix). */
export function dirsOf (entries: readonly ManifestEntry[]): string[] {
  const dirs = new Set<string>()
  for (const e of entries) for (let d = dirname(e.path); d !== '.' && !dirs.has(d); d = dirname(d)) dirs.add(d)
  return [...dirs].sort()
}

/** The canonical bytes of a manifest (what its hash names). */
export function encodeManifest (m: Manifest): Buffer {
  const byPath = (a: ManifestEntry, b: ManifestEntry): number => a.path < b.path ? -1 : a.path > b.path ? 1 : 0
  // most come sorted already (gridctl's walk): checked in one pass, sorted only if not
  const sorted = m.entries.every((e, i) => i === 0 || byPath(m.entries[i - 1] as ManifestEntry, e) < 0)
  const entries = (sorted ? m.entries : [...m.entries].sort(byPath))
    .map(e => isFile(e) ? { path: e.path, mode: e.mode, size: e.size, sha256: e.sha256 } : { path: e.path, link: e.link })
  return Buffer.from(JSON.stringify({ version: 1, entries }))
}
