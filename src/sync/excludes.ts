/**
 * What a synced tree leaves out: the defaults (SYNC_DEFAULT_EXCLUDES), DIR/.gridignore (else DIR/.gitignore), and the
 * caller's `--sync-exclude` patterns, all in gitignore syntax. The `ignore` package implements gitignore's rules
 * (negation, anchoring, directory-only patterns, `**`) as git does, and is tested against git's own behaviour.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import ignore, { type Ignore } from 'ignore'
import { InvalidArgumentError } from '../interface/index.ts'
import { SYNC_DEFAULT_EXCLUDES } from './constants.ts'

export interface Excludes {
  /** whether `rel` (relative to the tree, `/`-separated; `dir` true for a directory) is left out */
  excluded(rel: string, dir: boolean): boolean
  /** which ignore file was read, if any */
  file: '.gridignore' | '.gitignore' | null
  /** the rules in force (defaults, the ignore file's text, the extra patterns): a walk cache's listings hold under them */
  rules: string
}

/** The excludes of tree `root`: defaults, its ignore file, then `extra` (later patterns win, as in gitignore). */
export function loadExcludes (root: string, extra: readonly string[] = []): Excludes {
  const ig: Ignore = ignore().add(SYNC_DEFAULT_EXCLUDES.map(d => `${d}/`))
  let file: Excludes['file'] = null
  let fileText = ''
  for (const name of ['.gridignore', '.gitignore'] as const) {
    let text: string
    try {
      text = readFileSync(join(root, name), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw new InvalidArgumentError(`--sync: cannot read ${join(root, name)}: ${(err as Error).message}`, { cause: err })
    }
    ig.add(text)
    fileText = text
    file = name
    break
  }
  ig.add([...extra])
  return { excluded: (rel, dir) => ig.ignores(dir ? `${rel}/` : rel), file, rules: JSON.stringify([SYNC_DEFAULT_EXCLUDES, file, fileText, extra]) }
}
