/**
 * Which gridd `gridctl dev up` starts: --gridd PATH, else the one that came with this gridctl: gridd.mjs of the
 * bundle (npm run bundle, npm run install-bin), or daemon/gridd.js of the dist/ tree it runs from (npm run build).
 */
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NotFoundError } from '../../interface/index.ts'
import { GRIDD_NODE_FLAGS } from '../../version.ts'

export function findGridd (explicit: string | undefined, from = dirname(fileURLToPath(import.meta.url))): string {
  if (explicit !== undefined) {
    const p = resolve(explicit)
    if (!existsSync(p)) throw new NotFoundError(`--gridd ${explicit}: no such file`)
    return p
  }
  // the bundle: this code runs from its chunks/, gridd.mjs is one folder up (or beside, if ever bundled whole)
  for (const dir of [from, dirname(from)]) if (existsSync(join(dir, 'gridd.mjs'))) return join(dir, 'gridd.mjs')
  let dir = from
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'daemon', 'gridd.js')
    if (existsSync(candidate)) return candidate
    const parent = dirname(dir)
    if (parent === dir) break
    dir = parent
  }
  throw new NotFoundError(`no gridd found beside this gridctl (${from}): build it (npm run build), or pass --gridd PATH`)
}

/** The argv that starts `gridd` with `args`: a JavaScript file runs on this Node with gridd's Node flags. */
export function griddArgv (gridd: string, args: string[]): [string, string[]] {
  return /\.m?js$/.test(gridd) ? [process.execPath, [...GRIDD_NODE_FLAGS, gridd, ...args]] : [gridd, args]
}
