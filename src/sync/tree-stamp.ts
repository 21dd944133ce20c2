/**
 * A laid-out tree's stamp: the inode and ctime of each of its files and directories right after the layout, so that
 * once the task that had the tree has ended, the executor can tell whether it left the tree exactly as laid out and
 * may take it as the spare for the next attempt (spare-tree.ts) instead of copying every file again.
 *
 * A task can set a file's mtime, but not its ctime: any write, chmod, chown, link or rename of a file changes it, and
 * any name that comes, goes or is replaced in a directory changes the directory's. An entry whose inode or ctime
 * moved was touched. The kernel's file clock is coarse (a tick, up to 10 ms), so an entry stamped within
 * TREE_STAMP_RACY_MS of the stamp being taken could have been changed again in the same tick without its ctime moving
 * (git's "racy" index entries): such a file is checked by its content (its sha256 against the manifest's), such a
 * directory by its names. The root is always checked by its names (the executor sets its times when the task ends,
 * and it is renamed as a whole).
 */
import { lstatSync, readdirSync } from 'node:fs'
import type { Manifest } from '../../proto/index.ts'
import { dirsOf, isFile, sha256OfFile } from './manifest-bytes.ts'

/** Entries stamped this close to the stamp's time are checked by content (files) or names (directories). */
export const TREE_STAMP_RACY_MS = 100
/** lstat calls between yields to the event loop (a tree of 10,000 files holds it for a few ms at a time). */
const STAT_BATCH = 500

interface Mark { ino: number, ctimeMs: number, size: number }

export interface TreeStamp {
  /** relative path (files and directories other than the root) → its mark */
  marks: Map<string, Mark>
  /** when the stamp was taken (after the last of its entries was placed) */
  at: number
}

const yieldLoop = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

async function markAll (root: string, rels: readonly string[], into: Map<string, Mark>): Promise<void> {
  for (let i = 0; i < rels.length; i++) {
    if (i > 0 && i % STAT_BATCH === 0) await yieldLoop()
    const rel = rels[i] as string
    const st = lstatSync(`${root}/${rel}`)
    into.set(rel, { ino: st.ino, ctimeMs: st.ctimeMs, size: st.size })
  }
}

/** Stamps tree `root`, just laid out from `m` (before any task has it). */
export async function stampTree (root: string, m: Manifest): Promise<TreeStamp> {
  const marks = new Map<string, Mark>()
  await markAll(root, [...dirsOf(m.entries), ...m.entries.filter(isFile).map(e => e.path)], marks)
  return { marks, at: Date.now() }
}

/**
 * The stamp of a tree after entries were placed anew in it (a spare with a difference applied): `removed` dropped,
 * `placed` and every directory marked again.
 */
export async function restamp (root: string, m: Manifest, s: TreeStamp, removed: readonly string[], placed: readonly string[]): Promise<TreeStamp> {
  const marks = new Map(s.marks)
  for (const p of removed) marks.delete(p)
  const dirs = dirsOf(m.entries)
  const want = new Set(dirs)
  await markAll(root, [...dirs, ...placed], marks)
  // a directory that is no longer in the tree (its files removed) leaves no mark behind
  const files = new Set(m.entries.filter(isFile).map(e => e.path))
  for (const p of [...marks.keys()]) if (!want.has(p) && !files.has(p)) marks.delete(p)
  return { marks, at: Date.now() }
}

/** Whether tree `root` is still exactly as `m` was laid out there and stamped (nothing written, made or removed). */
export async function unchangedSince (root: string, m: Manifest, s: TreeStamp): Promise<boolean> {
  const racy = (mk: Mark): boolean => mk.ctimeMs >= s.at - TREE_STAMP_RACY_MS
  const children = new Map<string, Set<string>>()
  for (const e of m.entries) {
    const parts = e.path.split('/')
    for (let i = 0; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/')
      let set = children.get(dir)
      if (set === undefined) { set = new Set(); children.set(dir, set) }
      set.add(parts[i] as string)
    }
  }
  const sameNames = (rel: string): boolean => {
    const want = children.get(rel) ?? new Set<string>()
    const names = readdirSync(rel === '' ? root : `${root}/${rel}`)
    return names.length === want.size && names.every(n => want.has(n))
  }
  try {
    if (!sameNames('')) return false
    const recheck: string[] = []
    let i = 0
    for (const [rel, mk] of s.marks) {
      if (++i % STAT_BATCH === 0) await yieldLoop()
      const st = lstatSync(`${root}/${rel}`)
      if (st.ino !== mk.ino || st.ctimeMs !== mk.ctimeMs || (!st.isDirectory() && st.size !== mk.size)) return false
      if (racy(mk)) recheck.push(rel)
    }
    const sha = new Map(m.entries.filter(isFile).map(e => [e.path, e.sha256]))
    for (const rel of recheck) {
      const want = sha.get(rel)
      if (want === undefined ? !sameNames(rel) : await sha256OfFile(`${root}/${rel}`) !== want) return false
    }
    return true
  } catch {
    // something of it went away or cannot be read: not as laid out
    return false
  }
}
