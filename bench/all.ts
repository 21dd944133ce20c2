/**
 * bench/all: every benchmark in one run, BullMQ measured once (first, alone) and shared, so that every comparison
 * comes from the same run on the same machine. About 15-25 minutes on 2 cores.
 *
 *   npm run bench -- all
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runBullmq } from './peer.ts'

const dir = mkdtempSync(join(tmpdir(), 'grid-bench-'))
process.env.GRID_BENCH_PEER_FILE = join(dir, 'bullmq.json')
try {
  await runBullmq()
  for (const [name, args] of [['tasks', ['--bullmq']], ['workers', ['--bullmq']], ['state', []], ['membership', []]] as const) {
    console.error(`\n== bench ${name}`)
    const r = spawnSync(process.execPath, ['bench/run.mjs', name, ...args], { stdio: 'inherit', env: process.env })
    if (r.status !== 0) console.error(`bench ${name} exited ${r.status ?? '?'}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(0)
