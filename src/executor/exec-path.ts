/**
 * Whether a program can be executed, and a directory entered, judged before a wrapper (a cgroup's shell, setpriv)
 * would turn a missing program into an exit status 127: said as a spawn without a wrapper would say it.
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs'
import { delimiter, isAbsolute, join, resolve } from 'node:path'

/** Can a process start in it? */
export function isDirectory (path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** Why `cmd` could not be executed (as execvp would find it on `path`), or undefined when it can. */
export function cannotExec (cmd: string, path: string, cwd: string | undefined): { code: string, message: string } | undefined {
  const candidates = cmd.includes('/')
    ? [isAbsolute(cmd) ? cmd : resolve(cwd ?? process.cwd(), cmd)]
    : path.split(delimiter).map(d => join(d === '' ? (cwd ?? process.cwd()) : resolve(cwd ?? process.cwd(), d), cmd))
  let denied = false
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) { denied = true; continue }
      accessSync(c, fsConstants.X_OK)
      return undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') denied = true
    }
  }
  return denied ? { code: 'EACCES', message: `spawn ${cmd} EACCES` } : { code: 'ENOENT', message: `spawn ${cmd} ENOENT` }
}
