import { randomBytes } from 'node:crypto'
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync } from 'node:fs'
import { dirname, basename, join } from 'node:path'

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content, never a mix:
 * write a temporary file beside it, fsync it, rename it over the target, fsync the directory.
 */
export function writeFileAtomic (path: string, data: Uint8Array | string, mode = 0o600): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true })
  const tmp = join(dir, `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`)
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    try { unlinkSync(tmp) } catch {}
    throw err
  }
  closeSync(fd)
  renameSync(tmp, path)
  fsyncDir(dir)
}

export function fsyncDir (dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
