#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * gridd: the daemon's bin. It checks the Node version before anything else runs (the program's imports need Node >= 22,
 * and an older one would fail half-way, after writing an identity), then runs the program (daemon/gridd-main.ts).
 *
 * Exit codes: 0 stopped cleanly; 1 failed at start or at run time (or Node is too old); 2 bad flags or configuration.
 */
import { exitIfNodeTooOld } from '../src/node-version.ts'

exitIfNodeTooOld('gridd')
const { main } = await import('./gridd-main.ts')
main().then(code => {
  // give pino's stdout a moment to drain before exiting
  process.stdout.write('', () => process.exit(code))
}, (err: unknown) => {
  process.stderr.write(`gridd: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
