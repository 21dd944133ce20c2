/**
 * A manifest as its difference from another (`sync.manifest`): what the receiver needs when it has the last tree
 * this node sent it, and what it does to rebuild the new one.
 */
import type { Manifest, ManifestEntry } from '../../proto/index.ts'
import { isFile } from './manifest-codec.ts'

export interface ManifestDelta { removed: string[], upserted: ManifestEntry[] }

const same = (a: ManifestEntry, b: ManifestEntry): boolean => isFile(a)
  ? isFile(b) && a.sha256 === b.sha256 && a.mode === b.mode && a.size === b.size
  : !isFile(b) && a.link === b.link

export function diffManifests (base: Manifest, next: Manifest): ManifestDelta {
  const old = new Map(base.entries.map(e => [e.path, e]))
  const upserted: ManifestEntry[] = []
  for (const e of next.entries) {
    const o = old.get(e.path)
    old.delete(e.path)
    if (o === undefined || !same(o, e)) upserted.push(e)
  }
  return { removed: [...old.keys()], upserted }
}

export function applyDelta (base: Manifest, d: ManifestDelta): Manifest {
  const entries = new Map(base.entries.map(e => [e.path, e]))
  for (const p of d.removed) entries.delete(p)
  for (const e of d.upserted) entries.set(e.path, e)
  return { version: 1, entries: [...entries.values()] }
}

/** Roughly what a delta costs on the wire (its JSON length). */
export function deltaBytes (d: ManifestDelta): number { return Buffer.byteLength(JSON.stringify(d)) }
