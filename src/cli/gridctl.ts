#!/usr/bin/env node
/**
 * gridctl: the command-line client of the local gridd, over its control socket. This bin checks the Node version
 * before anything else runs (the commands' imports need Node >= 22), then runs the program (run-gridctl.ts).
 *
 * Exit codes: 0 success; 1 the operation failed (or the daemon is unreachable, or Node is too old); 2 usage error;
 * a task's own exit code for `run`.
 */
import { exitIfNodeTooOld } from '../node-version.ts'

exitIfNodeTooOld('gridctl')
const { runGridctl } = await import('./run-gridctl.ts')
const ctrl = new AbortController()
let interrupted = 0
process.on('SIGINT', () => {
  interrupted++
  if (interrupted > 1) process.exit(130)
  ctrl.abort(new Error('interrupted'))
})
process.stdout.on('error', err => { if ((err as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0) })
const code = await runGridctl(process.argv.slice(2), {
  out: { write: t => { process.stdout.write(t) } },
  err: { write: t => { process.stderr.write(t) } },
  env: process.env,
  tty: process.stdout.isTTY === true,
  columns: () => process.stdout.columns,
  signal: ctrl.signal
})
process.stdout.write('', () => process.exit(code))
