// The deterministic simulator: the real membership code on a virtual clock over an in-memory network with faults.
// Usage: npm run sim -- --nodes 1000 --hours 0.25 --seed 7 [--mode safety|liveness] [--fault-every SECONDS] [--max-faulty SHARE]
//        [--heartbeat-interval MS] [--suspicion-timeout MS] [--json] [--verbose]
import { parseArgs } from 'node:util'
import { simulate, type SimMode, type SimReport } from './sim/simulate.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    hours: { type: 'string', default: '0.25' },
    seed: { type: 'string' },
    mode: { type: 'string', default: 'safety' },
    'fault-every': { type: 'string', default: '10' },
    'max-faulty': { type: 'string', default: '0.05' },
    'heartbeat-interval': { type: 'string' },
    'suspicion-timeout': { type: 'string' },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false }
  }
})

const nodes = Number(values.nodes)
const hours = Number(values.hours)
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
const mode = values.mode as SimMode
if (!Number.isInteger(nodes) || nodes < 2 || nodes > 5000) fail(`--nodes must be an integer from 2 to 5000 (got ${values.nodes})`)
if (!Number.isFinite(hours) || hours <= 0 || hours > 48) fail(`--hours must be a number above 0 and at most 48, fractions allowed (got ${values.hours})`)
if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) fail(`--seed must be an integer from 0 to 2^32-1 (got ${values.seed})`)
if (mode !== 'safety' && mode !== 'liveness') fail(`--mode must be safety or liveness (got ${values.mode})`)
const faultEverySec = Number(values['fault-every'])
const maxFaulty = Number(values['max-faulty'])
if (!Number.isFinite(faultEverySec) || faultEverySec <= 0) fail(`--fault-every must be a number of seconds above 0 (got ${values['fault-every']})`)
if (!Number.isFinite(maxFaulty) || maxFaulty <= 0 || maxFaulty > 0.5) fail(`--max-faulty must be a share above 0 and at most 0.5 (got ${values['max-faulty']})`)
// membership's own settings, to explore them (defaults: Grid's, membership.heartbeatInterval 1s, membership.suspicionTimeout 4s)
const membership: { heartbeatIntervalMs?: number, suspicionTimeoutMs?: number } = {}
for (const [flag, key, lo, hi] of [['heartbeat-interval', 'heartbeatIntervalMs', 100, 60_000], ['suspicion-timeout', 'suspicionTimeoutMs', 100, 600_000]] as const) {
  const v = values[flag]
  if (v === undefined) continue
  const ms = Number(v)
  if (!Number.isInteger(ms) || ms < lo || ms > hi) fail(`--${flag} must be an integer number of ms from ${lo} to ${hi} (got ${v})`)
  membership[key] = ms
}

const r = await simulate({
  nodes, simulatedMs: Math.round(hours * 3_600_000), seed, mode, faultEveryMs: faultEverySec * 1000, maxFaultyShare: maxFaulty, membership,
  ...(values.verbose ? { onFault: f => { process.stderr.write(`${(f.start / 1000).toFixed(1)}s fault ${f.kind} node ${f.node}\n`) } } : {})
})
const replay = `npm run sim -- --nodes ${nodes} --hours ${hours} --seed ${seed} --mode ${mode} --fault-every ${faultEverySec} --max-faulty ${maxFaulty}${Object.keys(membership).length > 0 ? ` --heartbeat-interval ${membership.heartbeatIntervalMs ?? 1000} --suspicion-timeout ${membership.suspicionTimeoutMs ?? 4000}` : ''}`
if (values.json) {
  const doc = {
    seed: r.seed, nodes: r.nodes, simulatedMs: r.simulatedMs, wallMs: r.wallMs, traceHash: r.traceHash,
    detection: { p50Ms: r.detection.p50Ms, p99Ms: r.detection.p99Ms }, falseDeaths: r.falseDeaths,
    bytesPerNodePerSec: r.bytesPerNodePerSec, convergeMs: r.convergeMs, invariantViolations: r.invariantViolations,
    mode: r.mode, speedup: r.speedup, cpuMs: r.cpuMs, cpuSpeedup: r.cpuSpeedup, steady: r.steady, detectionSamples: r.detection.samples, undetected: r.detection.undetected,
    placement: r.placement, bytes: r.bytes, faults: r.faults, events: r.events, violations: r.violations,
    goals: goals(r),
    ...(r.invariantViolations > 0 ? { replay } : {})
  }
  process.stdout.write(JSON.stringify(doc) + '\n')
} else {
  print(r)
}
if (r.invariantViolations > 0) {
  process.stderr.write(`\ninvariant violated (${r.invariantViolations}): seed ${seed}\nreplay: ${replay}\n`)
  process.exitCode = 1
}

function goals (r: SimReport): Record<string, { goal: string, value: number | null, met: boolean | null }> {
  const at1000 = r.nodes >= 1000
  return {
    detectionP99: { goal: 'a silent node detected p99 under 8 s at 1,000 nodes', value: r.detection.p99Ms === null ? null : Math.round(r.detection.p99Ms), met: at1000 && r.detection.p99Ms !== null ? r.detection.p99Ms < 8000 : null },
    speedup: { goal: 'at least 6x real time at 1,000 nodes on one core (simulated time over this process\'s CPU time)', value: r.cpuSpeedup, met: at1000 ? r.cpuSpeedup >= 6 : null },
    bytes: { goal: 'membership traffic under 50 kB/s per node at 1,000 nodes', value: r.bytesPerNodePerSec, met: at1000 ? r.bytesPerNodePerSec < 50_000 : null }
  }
}

function print (r: SimReport): void {
  const ms = (v: number | null): string => v === null ? 'n/a' : `${(v / 1000).toFixed(2)} s`
  const lines = [
    `seed ${r.seed}, ${r.nodes} nodes, ${r.mode} mode, ${(r.simulatedMs / 1000).toFixed(0)} s simulated in ${(r.wallMs / 1000).toFixed(1)} s (${r.speedup}x real time; CPU ${(r.cpuMs / 1000).toFixed(1)} s, ${r.cpuSpeedup}x; ${r.events} events)`,
    `after the warm-up (from ${(r.steady.fromMs / 1000).toFixed(0)} s): ${r.steady.cpuSpeedup}x on CPU time, ${(r.steady.bytesPerNodePerSec / 1000).toFixed(1)} kB/s per node`,
    `trace hash ${r.traceHash}`,
    `faults: ${Object.entries(r.faults).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    `detection of a silent node: p50 ${ms(r.detection.p50Ms)}, p99 ${ms(r.detection.p99Ms)} (${r.detection.samples} faults, ${r.detection.undetected} undetected)`,
    `false deaths: ${r.falseDeaths}`,
    `membership traffic: ${(r.bytesPerNodePerSec / 1000).toFixed(1)} kB/s per node (gossip ${(r.bytes.gossip / 1e6).toFixed(1)} MB, IHAVE ${(r.bytes.ihave / 1e6).toFixed(1)} MB, RPC ${(r.bytes.rpc / 1e6).toFixed(1)} MB)`,
    ...(r.placement === null ? [] : [`placement (${r.placement.tasks} tasks, ${r.placement.unplaced} unplaced): mean wait ${r.placement.meanWaitMs} ms, p99 ${r.placement.p99WaitMs ?? 'n/a'} ms; ideal join-shortest-queue on the same arrivals: mean ${r.placement.idealMeanWaitMs} ms, p99 ${r.placement.idealP99WaitMs ?? 'n/a'} ms`]),
    `converged after the heal: ${r.mode === 'liveness' ? ms(r.convergeMs) : 'n/a (safety mode)'}`,
    `invariant violations: ${r.invariantViolations}`,
    ...r.violations.map(v => `  at ${(v.at / 1000).toFixed(1)} s: ${v.kind}: ${v.detail}`),
    'goals:',
    ...Object.values(goals(r)).map(g => `  ${g.met === null ? 'n/a (needs 1,000 nodes)' : g.met ? 'met   ' : 'missed'}  ${g.goal} (${g.value ?? 'n/a'})`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
}

function fail (msg: string): never {
  process.stderr.write(`${msg}\n`)
  process.exit(2)
}
