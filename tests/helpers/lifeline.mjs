// Runs one command and ties its life to the test process: when our stdin closes (the test runner exited, crashed or
// was killed), the command's whole process group is killed. Usage: node lifeline.mjs LOGFILE CMD [ARGS...]
// The command's stdout and stderr go to LOGFILE; we print "pid <n>" on our stdout once it is spawned.
import { spawn } from 'node:child_process'
import { openSync } from 'node:fs'

const [logFile, cmd, ...args] = process.argv.slice(2)
const log = openSync(logFile, 'a')
const child = spawn(cmd, args, { stdio: ['ignore', log, log], detached: true })
process.stdout.write(`pid ${child.pid}\n`)
const killAll = () => { try { process.kill(-child.pid, 'SIGKILL') } catch {} }
process.stdin.on('data', () => {})
process.stdin.on('end', () => { killAll(); process.exit(0) })
process.stdin.on('error', () => { killAll(); process.exit(0) })
child.on('exit', (code, signal) => { process.stdout.write(`exit ${code ?? ''} ${signal ?? ''}\n`, () => process.exit(0)) })
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => { killAll(); process.exit(1) })
