/**
 * One simulation: N instances of the real Membership (heartbeats, SWIM prober, local health, failure detector) on
 * the in-memory network and the virtual clock, faults injected from the seed, checks and measurements as it runs.
 *
 * Modes: `safety` injects faults for the whole run and checks that no clean node is declared dead; `liveness`
 * injects faults for the first half, then heals everything (restarts crashed processes, thaws frozen ones, joins
 * partitions, stops the link noise) and checks that every view converges to "everyone alive".
 */
import pino from 'pino'
import { Registry } from 'prom-client'
import { Membership, type LagSampler, type MembershipInit } from '../../src/membership/index.ts'
import type { LoadReport } from '../../src/interface/index.ts'
import { Checks, percentile, type FaultRecord } from './checks.ts'
import { KIND, VirtualClock } from './clock.ts'
import { SimMesh, SimNetwork, type LinkModel } from './network.ts'
import { Placement, type PlacementOptions, type PlacementReport } from './placement.ts'
import { Rng } from './rng.ts'
import { Trace } from './trace.ts'

export type SimMode = 'safety' | 'liveness'

export interface SimOptions {
  nodes: number
  simulatedMs: number
  seed: number
  mode: SimMode
  /** mean time between injected faults (the cluster's, not each node's) */
  faultEveryMs?: number
  /** at most this share of the nodes faulty at once */
  maxFaultyShare?: number
  link?: Partial<LinkModel>
  membership?: Partial<MembershipInit>
  /** faults at fixed times (tests), beside the random ones (faultEveryMs: Infinity for none) */
  script?: Array<{ atMs: number, kind: FaultRecord['kind'], nodes: number[], forMs: number }>
  /** tasks placed by the real routing against an ideal join-shortest-queue; null: none */
  placement?: PlacementOptions | null
  /** told each fault as it starts (the CLI's --verbose) */
  onFault?: (f: FaultRecord) => void
}

export interface SimReport {
  seed: number
  nodes: number
  mode: SimMode
  simulatedMs: number
  wallMs: number
  traceHash: string
  detection: { p50Ms: number | null, p99Ms: number | null, samples: number, undetected: number }
  falseDeaths: number
  /** every dead transition any node saw (true detections, their notices, false deaths) */
  deaths: number
  bytesPerNodePerSec: number
  bytes: { gossip: number, ihave: number, rpc: number }
  convergeMs: number | null
  placement: PlacementReport | null
  invariantViolations: number
  violations: Array<{ at: number, kind: string, detail: string }>
  faults: Record<string, number>
  events: number
  /** simulated time over wall time */
  speedup: number
  /** CPU time this process spent (user + system): on a shared machine, what one core of its own would take */
  cpuMs: number
  /** simulated time over CPU time */
  cpuSpeedup: number
  /**
   * The same from the end of the warm-up (STEADY_FROM_MS, or half a shorter run) to the end: a cluster that starts
   * together first floods everyone with everyone's first heartbeat (N^2 deliveries), which a short run is mostly made of.
   */
  steady: { fromMs: number, cpuSpeedup: number, bytesPerNodePerSec: number }
}

/** Where the steady part of a run starts (see SimReport.steady). */
export const STEADY_FROM_MS = 60_000

/** Grid's defaults (config.ts): a 1 s heartbeat, probed after 3 missed, 1 s probes, 3 helpers, 4 s to refute. */
export const DEFAULT_MEMBERSHIP: Omit<MembershipInit, 'name'> = {
  cluster: 'sim',
  version: '0.1.0',
  heartbeatIntervalMs: 1000,
  suspectAfterMissed: 3,
  probeTimeoutMs: 1000,
  indirectProbes: 3,
  suspicionTimeoutMs: 4000,
  deadMemberExpiryMs: 24 * 3_600_000
}

/** A LAN-to-datacentre spread: 0.2-20 ms links, 2 ms jitter, 1% gossip and stream packet loss, 0.2% replays. */
export const DEFAULT_LINK: LinkModel = { baseDelayMs: [0.2, 20], jitterMeanMs: 2, gossipLoss: 0.01, rpcLoss: 0.01, replay: 0.002 }

/** Tasks of 30 s on average keeping 70% of the slots busy. */
export const DEFAULT_PLACEMENT: PlacementOptions = { utilisation: 0.7, meanTaskMs: 30_000 }

const CONVERGE_CHECK_MS = 1000
/** The heartbeat's load: a typical worker (what the real encoded size is counted from). */
const LOAD: LoadReport = { cpu: 0.42, cpus: 32, memTotalMiB: 257_000, memFreeMiB: 180_000, taskMemoryMiB: 200_000, taskMemoryFreeMiB: 150_000, running: 3, queued: 0, slots: 32, freeSlots: 29, gpus: 8, freeGpus: 5, gpuUtilizationPercent: 37.5, gpuMemoryUsedMiB: 120_000, gpuMemoryTotalMiB: 640_000, done: 1234, failed: 5 }

export async function simulate (opts: SimOptions): Promise<SimReport> {
  const wallStart = performance.now()
  const cpuStart = process.cpuUsage()
  const rng = new Rng(opts.seed)
  const trace = new Trace()
  const clock = new VirtualClock(rng.fork(), trace)
  const faultRng = rng.fork()
  const link = { ...DEFAULT_LINK, ...opts.link }
  const n = opts.nodes
  clock.install()
  try {
    const net = new SimNetwork(clock, rng.fork(), n, link)
    const checks = new Checks(n, net.index, () => clock.now)
    const logger = pino({ level: 'silent' })
    const init = { ...DEFAULT_MEMBERSHIP, ...opts.membership }
    const members: Array<Membership | undefined> = new Array(n).fill(undefined)
    const counts: Record<string, number> = {}
    const placementOpts = opts.placement === undefined ? DEFAULT_PLACEMENT : opts.placement
    const placement = placementOpts === null ? undefined : new Placement(clock, net, rng.fork(), i => members[i]?.view(), placementOpts)
    placement?.start(10_000, opts.simulatedMs)

    const sampler = (i: number): LagSampler => ({
      enable () {}, disable () {},
      p99Ms: () => net.lagMs[i] ?? 0,
      reset: () => { net.lagMs[i] = 0 }
    })
    const boot = (i: number): void => {
      clock.on(i, () => {
        const mesh = new SimMesh(net, i, net.life[i] ?? 0)
        net.attach(i, mesh)
        const m = new Membership({ mesh, logger, registry: new Registry(), load: placement === undefined ? () => LOAD : () => placement.load(i, LOAD), isRegistered: () => true, eventLoopLag: sampler(i) }, { ...init, name: `sim-${String(i).padStart(4, '0')}` })
        m.on('member:state', t => {
          trace.detail(`${i}>${t.id}:${t.to}`)
          checks.onTransition(i, t)
        })
        members[i] = m
        void m.start()
      })
    }
    // nodes come up over the first second, as a cluster started together would
    for (let i = 0; i < n; i++) clock.at(rng.range(0, 1000), -1, KIND.control, () => { boot(i) })

    const healAt = opts.mode === 'liveness' ? opts.simulatedMs / 2 : Infinity
    const faultEvery = opts.faultEveryMs ?? 10_000
    const maxFaulty = Math.max(1, Math.floor(n * (opts.maxFaultyShare ?? 0.05)))
    const open = new Map<number, { f: FaultRecord, undo: () => void }>()
    let partitionGroup = 0

    const apply = (kind: FaultRecord['kind'], chosen: number[], span: number): void => {
      counts[kind] = (counts[kind] ?? 0) + 1
      const group = ++partitionGroup
      for (const i of chosen) {
        const f = checks.faultStart(i, kind)
        opts.onFault?.(f)
        trace.detail(`fault ${kind} ${i}`)
        const started = clock.now
        let undo: () => void
        switch (kind) {
          case 'kill':
          case 'power':
            net.crash(i, kind === 'kill')
            members[i] = undefined
            placement?.crashed(i)
            undo = () => { net.revive(i); boot(i) }
            break
          case 'freeze':
            net.freeze(i)
            undo = () => { net.thaw(i, clock.now - started) }
            break
          case 'partition':
            net.faults.group[i] = group
            undo = () => { net.faults.group[i] = 0 }
            break
          default:
            net.faults.slowMs[i] = faultRng.range(100, 400)
            undo = () => { net.faults.slowMs[i] = 0 }
        }
        const end = (): void => {
          if (open.get(i)?.f !== f) return
          open.delete(i)
          undo()
          checks.faultEnd(f)
        }
        open.set(i, { f, undo: end })
        clock.at(span, -1, KIND.fault, end)
      }
    }

    const inject = (): void => {
      if (clock.now >= healAt) return
      clock.at(faultRng.exp(faultEvery), -1, KIND.fault, inject)
      if (clock.now < 10_000) return // let the cluster form first
      const kinds: FaultRecord['kind'][] = ['kill', 'power', 'freeze', 'partition', 'slow']
      const kind = kinds[faultRng.int(kinds.length)] as FaultRecord['kind']
      const span = kind === 'freeze' ? faultRng.range(1000, 30_000) : faultRng.range(5000, 60_000)
      const size = kind === 'partition' ? Math.max(1, Math.floor(n * faultRng.range(0.005, 0.03))) : 1
      const chosen: number[] = []
      for (let tries = 0; chosen.length < size && tries < size * 10; tries++) {
        const i = faultRng.int(n)
        if (!open.has(i) && !chosen.includes(i) && open.size + chosen.length < maxFaulty) chosen.push(i)
      }
      if (chosen.length === size) apply(kind, chosen, span)
    }
    if (Number.isFinite(faultEvery)) clock.at(0, -1, KIND.fault, inject)
    for (const s of opts.script ?? []) clock.at(s.atMs, -1, KIND.fault, () => { apply(s.kind, s.nodes.filter(i => !open.has(i)), s.forMs) })

    let convergeMs: number | null = null
    if (Number.isFinite(healAt)) {
      clock.at(healAt, -1, KIND.fault, () => {
        trace.detail('heal')
        for (const { undo } of [...open.values()]) undo()
        net.noise = false
        const check = (): void => {
          if (convergeMs !== null) return
          if (converged(members, net)) { convergeMs = clock.now - healAt; trace.detail(`converged ${convergeMs}`); return }
          clock.at(CONVERGE_CHECK_MS, -1, KIND.control, check)
        }
        clock.at(CONVERGE_CHECK_MS, -1, KIND.control, check)
      })
    }

    // two legs, so the steady part is measured apart; the events and the trace are those of one run
    const steadyFrom = Math.min(STEADY_FROM_MS, Math.round(opts.simulatedMs / 2))
    await clock.runUntil(steadyFrom)
    const cpuAtSteady = process.cpuUsage()
    const bytesAtSteady = net.gossipBytes + net.rpcBytes
    const publishedAtSteady = net.published
    await clock.runUntil(opts.simulatedMs)
    const steadyCpu = process.cpuUsage(cpuAtSteady)
    const steadyS = (opts.simulatedMs - steadyFrom) / 1000
    const steadyIhave = net.ihaveBytesFor(net.published - publishedAtSteady, steadyS)
    const steadyBytes = net.gossipBytes + net.rpcBytes - bytesAtSteady + steadyIhave

    if (Number.isFinite(healAt) && convergeMs === null) {
      checks.violations.push({ at: clock.now, kind: 'not-converged', detail: `views had not converged ${Math.round((clock.now - healAt) / 1000)}s after the heal` })
    }
    const { latencies, undetected } = checks.detection()
    const ihave = net.ihaveBytes(opts.simulatedMs)
    const total = net.gossipBytes + ihave + net.rpcBytes
    clock.uninstall()
    const wall = performance.now() - wallStart
    const cpu = process.cpuUsage(cpuStart)
    const cpuMs = (cpu.user + cpu.system) / 1000
    const invariantViolations = checks.falseDeaths + checks.violations.filter(v => v.kind === 'not-converged').length
    return {
      seed: opts.seed,
      nodes: n,
      mode: opts.mode,
      simulatedMs: opts.simulatedMs,
      wallMs: Math.round(wall),
      traceHash: trace.digest(),
      detection: { p50Ms: roundMs(percentile(latencies, 50)), p99Ms: roundMs(percentile(latencies, 99)), samples: latencies.length, undetected },
      falseDeaths: checks.falseDeaths,
      deaths: checks.deaths,
      bytesPerNodePerSec: Math.round(total / n / (opts.simulatedMs / 1000)),
      bytes: { gossip: net.gossipBytes, ihave: Math.round(ihave), rpc: net.rpcBytes },
      convergeMs,
      placement: placement?.report() ?? null,
      invariantViolations,
      violations: checks.violations,
      faults: counts,
      events: trace.events,
      speedup: Math.round(opts.simulatedMs / wall * 100) / 100,
      cpuMs: Math.round(cpuMs),
      cpuSpeedup: Math.round(opts.simulatedMs / cpuMs * 100) / 100,
      steady: {
        fromMs: steadyFrom,
        cpuSpeedup: Math.round(steadyS * 1000 / ((steadyCpu.user + steadyCpu.system) / 1000) * 100) / 100,
        bytesPerNodePerSec: Math.round(steadyBytes / n / steadyS)
      }
    }
  } finally {
    clock.uninstall()
  }
}

/** Every live node sees every other live node alive. */
function converged (members: Array<Membership | undefined>, net: SimNetwork): boolean {
  for (let i = 0; i < members.length; i++) {
    const m = members[i]
    if (m === undefined) return false
    for (let j = 0; j < members.length; j++) {
      if (j !== i && m.state(net.ids[j] as string) !== 'alive') return false
    }
  }
  return true
}

function roundMs (v: number | null): number | null { return v === null ? null : Math.round(v) }
