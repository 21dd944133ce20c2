/**
 * The Node.js version check every entry point runs first, before it imports anything that needs a recent Node: it has
 * no imports of its own, so it runs (and explains) even on a Node too old for the rest of Grid.
 */

/** The oldest Node.js major Grid runs on (package.json engines; 24 LTS is the target). */
export const NODE_MAJOR_MIN = 22

/** What to do about it: HINTS.NODE_TOO_OLD in src/interface/hints.ts, written out (a unit test keeps them equal). */
export const NODE_TOO_OLD_HINT = 'install Node.js 24 LTS, or run it through deploy/with-node.sh, or put both commands on PATH with a ' +
  'suitable Node: npm run install-bin (see the README)'

/** The line to print when `version` (as in process.versions.node) is too old for Grid, else undefined. */
export function nodeTooOld (program: string, version: string): string | undefined {
  const major = Number(version.split('.')[0])
  if (Number.isInteger(major) && major >= NODE_MAJOR_MIN) return undefined
  // the shape of every hinted error (formatHinted in src/interface/hints.ts), written out: this file imports nothing
  return `${program}: error [NODE_TOO_OLD]: ${program} needs Node.js ${NODE_MAJOR_MIN} or later (found ${version}) — ${NODE_TOO_OLD_HINT}`
}

/** Exits 1 with that line when this process's Node is too old; returns when it is recent enough. */
export function exitIfNodeTooOld (program: string): void {
  const message = nodeTooOld(program, process.versions.node)
  if (message === undefined) return
  process.stderr.write(`${message}\n`)
  process.exit(1)
}
