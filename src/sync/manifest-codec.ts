/**
 * A manifest as a blob: its canonical bytes (entries sorted by path, fields in a fixed order), so the same tree always
 * has the same manifest hash, and the checks every receiver makes on a manifest's paths before it lays one out.
 */
import { posix } from 'node:path'
import { manifest as manifestValidator, SYNC_MANIFEST_MAX_ENTRIES, type Manifest, type ManifestEntry, type ManifestFile } from '../../proto/index.ts'
import { InvalidArgumentError, ProtocolError } from '../interface/index.ts'
import { isFile } from './manifest-bytes.ts'

export { encodeManifest, isFile, sha256Hex } from './manifest-bytes.ts'

/** A manifest blob's bytes → the manifest, checked (shape and paths); a peer's bad manifest is a ProtocolError. */
export function decodeManifest (bytes: Uint8Array, fromPeer: boolean): Manifest {
  let value: unknown
  try { value = JSON.parse(Buffer.from(bytes).toString('utf8')) } catch (err) { throw new ProtocolError(`a manifest blob is not JSON: ${(err as Error).message}`) }
  return checkManifest(value, fromPeer)
}

/** Shape and path checks: relative, normalized, no `..`, no duplicates; links stay inside the tree. */
export function checkManifest (value: unknown, fromPeer: boolean): Manifest {
  const m = fromPeer ? manifestValidator.parsePeer(value, 'manifest') : manifestValidator.parseUser(value, 'sync.manifest')
  const fail = (msg: string): never => { throw fromPeer ? new ProtocolError(`invalid manifest: ${msg}`) : new InvalidArgumentError(`invalid sync.manifest: ${msg}`) }
  const seen = new Set<string>()
  for (const e of m.entries) {
    if (!isSafeRelPath(e.path)) fail(`path ${JSON.stringify(e.path)} is not a normalized relative path inside the tree`)
    if (seen.has(e.path)) fail(`path ${JSON.stringify(e.path)} appears twice`)
    seen.add(e.path)
    if (!isFile(e) && !linkStaysInside(e.path, e.link)) fail(`link ${JSON.stringify(e.path)} points out of the tree (${e.link})`)
  }
  return m
}

/**
 * A manifest rebuilt from a checked base and a difference (`upserted`, shape-checked with its request): the checks of
 * checkManifest on the entries that came, not again on the base's; paths cannot repeat (the rebuild is by path).
 */
export function checkChange (m: Manifest, upserted: readonly ManifestEntry[], fromPeer: boolean): Manifest {
  const fail = (msg: string): never => { throw fromPeer ? new ProtocolError(`invalid manifest: ${msg}`) : new InvalidArgumentError(`invalid sync.manifest: ${msg}`) }
  if (m.entries.length > SYNC_MANIFEST_MAX_ENTRIES) fail(`more than ${SYNC_MANIFEST_MAX_ENTRIES} entries`)
  for (const e of upserted) {
    if (!isSafeRelPath(e.path)) fail(`path ${JSON.stringify(e.path)} is not a normalized relative path inside the tree`)
    if (!isFile(e) && !linkStaysInside(e.path, e.link)) fail(`link ${JSON.stringify(e.path)} points out of the tree (${e.link})`)
  }
  return m
}

export function isSafeRelPath (p: string): boolean {
  if (p.startsWith('/') || p.includes('\0') || p.includes('\\')) return false
  return p.split('/').every(part => part !== '' && part !== '.' && part !== '..')
}

/** Whether a link at `path` (relative to the tree) with `target` resolves, lexically, inside the tree. */
export function linkStaysInside (path: string, target: string): boolean {
  if (target.startsWith('/') || target.includes('\0')) return false
  const resolved = posix.normalize(posix.join(posix.dirname(path), target))
  return resolved !== '..' && !resolved.startsWith('../') && !posix.isAbsolute(resolved)
}

/** The distinct blobs of a manifest's files, with their sizes. */
export function blobsOf (m: Manifest): Map<string, number> {
  const out = new Map<string, number>()
  for (const e of m.entries) if (isFile(e)) out.set(e.sha256, e.size)
  return out
}
