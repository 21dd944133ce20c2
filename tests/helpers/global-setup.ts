import { existsSync, statSync } from 'node:fs'
import { GRIDD, GRIDCTL } from './paths.ts'

/** Multi-node tests run the built daemon (as users do); `npm test` builds first. */
export default function setup (): void {
  for (const f of [GRIDD, GRIDCTL]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run "npm run build" first (npm test does it)`)
  }
  if (statSync(GRIDD).size === 0) throw new Error(`${GRIDD} is empty: rebuild`)
}
