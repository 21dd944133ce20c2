/** Runs shared/peers/bench_bullmq.sh (BullMQ on a local Redis) and returns its medians, by metric name. */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../tests/helpers/paths.ts'

export async function runBullmq (repeats = 1): Promise<Record<string, number>> {
  // `npm run bench -- all` measures BullMQ once and shares the figures with every benchmark of that run
  const shared = process.env.GRID_BENCH_PEER_FILE
  if (shared !== undefined && existsSync(shared)) return JSON.parse(readFileSync(shared, 'utf8')) as Record<string, number>
  const candidates = [join(ROOT, '..', 'shared', 'peers', 'bench_bullmq.sh'), join(ROOT, 'shared', 'peers', 'bench_bullmq.sh')]
  const script = candidates.find(p => existsSync(p))
  if (script === undefined) throw new Error(`shared/peers/bench_bullmq.sh not found (looked in ${candidates.join(', ')})`)
  console.error(`running ${script} (REPEATS=${repeats}): a few minutes`)
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('bash', [script], { env: { ...process.env, REPEATS: String(repeats) }, stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    p.stdout.on('data', d => { text += String(d) })
    p.on('close', code => { code === 0 ? resolve(text) : reject(new Error(`bench_bullmq.sh exited ${code ?? '?'}`)) })
  })
  const m: Record<string, number> = {}
  for (const line of out.split('\n')) {
    const x = /^(\w+)\s+median=\s*([0-9.]+)/.exec(line)
    if (x !== null) m[x[1] as string] = Number(x[2])
  }
  console.error(`BullMQ: ${JSON.stringify(m)}`)
  if (shared !== undefined) writeFileSync(shared, JSON.stringify(m))
  return m
}
