import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { ConflictError } from '../interface/index.ts'

/**
 * One daemon per data directory: a pid file created exclusively. A file left by a process that no longer runs is
 * taken over; one whose process is alive is an error naming it.
 */
export function lockDataDir (dataDir: string): { release: () => void } {
  const path = join(dataDir, 'gridd.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644)
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      return { release: () => { try { if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path) } catch {} } }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const pid = Number(readFileSync(path, 'utf8').trim())
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new ConflictError(`another gridd (pid ${pid}) is using the data directory ${dataDir}; stop it, or give this one another --data-dir`)
      }
      unlinkSync(path)
    }
  }
  throw new ConflictError(`cannot lock the data directory ${dataDir}`)
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
