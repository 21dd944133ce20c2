/**
 * `gridctl dev up`: N gridd on this machine under ./.grid-dev, one data directory, socket and free port each, one
 * shared swarm key, each bootstrapping from the first; detached (they outlive gridctl), their output in a log per
 * node; then waits until every node sees every other alive. A cluster already running as asked is left as it is.
 */
import { spawn } from 'node:child_process'
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { StatusResponse } from '../../../proto/index.ts'
import { ConflictError, InternalError, TimeoutError } from '../../interface/index.ts'
import { writeFileAtomic } from '../../util/index.ts'
import { ApiClient } from '../client.ts'
import type { Out } from '../output.ts'
import { DEV_CONVERGE_TIMEOUT_MS, DEV_KILL_TIMEOUT_MS, DEV_POLL_INTERVAL_MS, DEV_REQUEST_TIMEOUT_MS, DEV_START_TIMEOUT_MS, DEV_STATE_VERSION, DEV_STOP_TIMEOUT_MS } from './constants.ts'
import { fakeNvidiaSmiScript } from './fake-gpus.ts'
import { griddArgv } from './find-gridd.ts'
import { runsAsNode, signalNode, waitGone } from './process.ts'
import { aliveSeen, portOf } from './status.ts'
import { devStatePath, readDevState, type DevNode, type DevState } from './state.ts'

export interface UpOptions {
  root: string
  nodes: number
  gpusFake: number
  /** whether --nodes / --gpus-fake were given (an already-running cluster is checked against them only then) */
  explicit: { nodes: boolean, gpusFake: boolean }
  gridd: string
  env: NodeJS.ProcessEnv
  /** progress (stderr) */
  err: Out
  tty: boolean
  signal: AbortSignal
}

export type UpResult = { state: DevState, already: boolean }

export async function devUp (opts: UpOptions): Promise<UpResult> {
  const old = readDevState(opts.root)
  if (old !== null) {
    const running = old.nodes.filter(n => runsAsNode(n))
    if (running.length === old.nodes.length) {
      const fakes = old.nodes[0]?.gpus ?? 0
      if ((opts.explicit.nodes && opts.nodes !== old.nodes.length) || (opts.explicit.gpusFake && opts.gpusFake !== fakes)) {
        throw new ConflictError(`a dev cluster of ${old.nodes.length} node${old.nodes.length === 1 ? '' : 's'}${fakes > 0 ? ` with ${fakes} fake GPUs each` : ''} already runs in ${opts.root}; stop it first (gridctl dev down) to start another`)
      }
      return { state: old, already: true }
    }
    if (running.length > 0) {
      const stopped = old.nodes.filter(n => !running.includes(n)).map(n => n.name)
      throw new ConflictError(`the dev cluster in ${opts.root} is partly up (${stopped.join(', ')} not running); gridctl dev down stops the rest, then gridctl dev up starts it again`)
    }
    // stale: a cluster that was killed, or a machine that rebooted; its folders (identities, state) are reused
    rmSync(devStatePath(opts.root), { force: true })
  }
  mkdirSync(opts.root, { recursive: true })
  const swarmKey = join(opts.root, 'swarm.key')
  if (!existsSync(swarmKey)) {
    // loaded here: @libp2p/pnet is only needed to make the key
    const { newSwarmKey } = await import('../../../proto/swarm-key.ts')
    writeFileAtomic(swarmKey, newSwarmKey(), 0o600)
  }
  const state: DevState = { version: DEV_STATE_VERSION, root: opts.root, swarmKey, startedAt: new Date().toISOString(), nodes: [] }
  for (let i = 1; i <= opts.nodes; i++) {
    const name = `n${i}`
    const dataDir = join(opts.root, name)
    state.nodes.push({ name, pid: 0, dataDir, socket: join(dataDir, 'gridd.sock'), log: join(dataDir, 'gridd.log'), port: null, id: null, gpus: opts.gpusFake })
  }
  try {
    const [first, ...rest] = state.nodes as [DevNode, ...DevNode[]]
    start(first, state, [], opts)
    const bootstrap = await answered(first, state, opts)
    for (const n of rest) start(n, state, [bootstrap], opts)
    await Promise.all(rest.map(async n => await answered(n, state, opts)))
    await converged(state, opts)
  } catch (err) {
    if (opts.signal.aborted) {
      opts.err.write(`\ninterrupted: the nodes started so far keep running (gridctl dev status; gridctl dev down stops them)\n`)
      throw err
    }
    // a cluster that did not come up is not left half running
    for (const n of state.nodes) signalNode(n, 'SIGTERM')
    for (const n of await waitGone(state.nodes, DEV_STOP_TIMEOUT_MS)) signalNode(n, 'SIGKILL')
    // once none runs, no record is left either (the logs stay)
    if ((await waitGone(state.nodes, DEV_KILL_TIMEOUT_MS)).length === 0) rmSync(devStatePath(opts.root), { force: true })
    throw err
  }
  return { state, already: false }
}

function save (state: DevState): void {
  writeFileAtomic(devStatePath(state.root), JSON.stringify(state, null, 2) + '\n', 0o644)
}

/** Starts one node's gridd, detached, its stdout and stderr appended to its log; records its pid at once. */
function start (node: DevNode, state: DevState, bootstrap: string[], opts: UpOptions): void {
  mkdirSync(node.dataDir, { recursive: true, mode: 0o700 })
  const args = [
    '--name', node.name,
    '--data-dir', node.dataDir,
    '--socket', node.socket,
    '--swarm-key', state.swarmKey,
    '--listen', '/ip4/127.0.0.1/tcp/0',
    '--metrics-listen', '127.0.0.1:0',
    ...bootstrap.flatMap(b => ['--bootstrap', b])
  ]
  if (node.gpus > 0) {
    const smi = join(node.dataDir, 'nvidia-smi')
    writeFileSync(smi, fakeNvidiaSmiScript(node.name, node.gpus))
    chmodSync(smi, 0o755)
    args.push('--nvidia-smi', smi)
  }
  const [cmd, argv] = griddArgv(opts.gridd, args)
  const log = openSync(node.log, 'a')
  try {
    const child = spawn(cmd, argv, { cwd: node.dataDir, detached: true, stdio: ['ignore', log, log], env: opts.env })
    child.on('error', () => {})
    child.unref()
    if (child.pid === undefined) throw new InternalError(`could not start ${cmd} for ${node.name}`)
    node.pid = child.pid
  } finally {
    closeSync(log)
  }
  save(state)
}

function logTail (node: DevNode, lines = 15): string {
  try {
    return readFileSync(node.log, 'utf8').trim().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/** Waits until the node answers on its socket; returns its 127.0.0.1 multiaddr (for the others' --bootstrap). */
async function answered (node: DevNode, state: DevState, opts: UpOptions): Promise<string> {
  const api = new ApiClient({ socket: node.socket, timeoutMs: DEV_REQUEST_TIMEOUT_MS })
  const deadline = Date.now() + DEV_START_TIMEOUT_MS
  for (;;) {
    if (!runsAsNode(node)) throw new InternalError(`${node.name} (gridd, pid ${node.pid}) exited at start; the end of ${node.log}:\n${logTail(node)}`)
    if (existsSync(node.socket)) {
      try {
        const s = await api.get<StatusResponse>('/status', opts.signal)
        node.id = s.id
        node.port = portOf(s.addrs)
        save(state)
        return s.addrs.find(a => a.startsWith('/ip4/127.0.0.1/')) ?? s.addrs[0] ?? ''
      } catch (err) {
        if (opts.signal.aborted) throw err
      }
    }
    if (Date.now() > deadline) throw new TimeoutError(`${node.name} did not answer on ${node.socket} within ${DEV_START_TIMEOUT_MS / 1000} s; the end of ${node.log}:\n${logTail(node)}`)
    await sleep(DEV_POLL_INTERVAL_MS, undefined, { signal: opts.signal })
  }
}

/** Waits until every node sees every node alive, printing how many do ("… 2/3"). */
async function converged (state: DevState, opts: UpOptions): Promise<void> {
  const names = state.nodes.map(n => n.name)
  const total = names.length
  const deadline = Date.now() + DEV_CONVERGE_TIMEOUT_MS
  let shown = -1
  for (;;) {
    for (const n of state.nodes) if (!runsAsNode(n)) throw new InternalError(`${n.name} (gridd, pid ${n.pid}) exited; the end of ${n.log}:\n${logTail(n)}`)
    const seen = await Promise.all(state.nodes.map(async n => await aliveSeen(n, names, opts.signal)))
    const done = seen.filter(s => s === total).length
    if (done !== shown && total > 1) {
      const line = `waiting for ${total} nodes to see each other… ${done}/${total}`
      opts.err.write(opts.tty ? `\r${line}` : `${line}\n`)
      shown = done
    }
    if (done === total) { if (opts.tty && total > 1) opts.err.write('\n'); return }
    if (Date.now() > deadline) {
      if (opts.tty && total > 1) opts.err.write('\n')
      const lagging = state.nodes.flatMap((n, i) => seen[i] === total ? [] : [`${n.name} sees ${seen[i] ?? '?'}/${total} alive`])
      throw new TimeoutError(`the nodes did not all see each other alive within ${DEV_CONVERGE_TIMEOUT_MS / 1000} s (${lagging.join(', ')}); see their logs in ${state.root}/NODE/gridd.log`)
    }
    await sleep(DEV_POLL_INTERVAL_MS * 2, undefined, { signal: opts.signal })
  }
}
