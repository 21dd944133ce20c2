import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TimeoutError } from '../../src/interface/index.ts'
import { RpcService } from '../../src/mesh/index.ts'
import { createMeshNode, type MeshLibp2p } from '../../src/mesh/node.ts'
import { DelayedEcho } from './rpc-stall-method.ts'

/** Blocks this process's event loop, as a starved CPU, a long GC or SIGSTOP would. */
function stall (ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) { /* the loop reads nothing meanwhile */ }
}

// A real libp2p node (TCP, Noise, yamux, gridd's RPC service) here and another in its own process. After a stall,
// Node runs an iteration's overdue timers before it reads its sockets: a deadline that passed during the stall must
// not fail a request whose answer came in meanwhile (a membership probe failed so would make a healthy member
// suspect).
describe('mesh - rpc deadlines after a stalled event loop', () => {
  let peer: ChildProcess | undefined
  let node: MeshLibp2p
  let rpc: RpcService
  let to: string

  beforeAll(async () => {
    peer = spawn(process.execPath, ['--no-warnings', '--experimental-transform-types', join(import.meta.dirname, 'rpc-stall-peer.ts')], { stdio: ['pipe', 'pipe', 'inherit'] })
    const addr = await new Promise<string>((resolve, reject) => {
      let out = ''
      peer?.stdout?.on('data', d => { out += String(d); if (out.includes('\n')) resolve(out.trim()) })
      peer?.once('exit', code => { reject(new Error(`the peer process exited (${String(code)}) before it listened`)) })
    })
    node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), psk: null, listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], maxConnections: 10, version: 'test', onUpgradeFailure: () => {} })
    await node.start()
    rpc = new RpcService({ libp2p: node, logger: pino({ level: 'silent' }), registry: new Registry() })
    await rpc.start()
    await node.dial(multiaddr(addr))
    to = addr.split('/p2p/')[1] as string
    // the stream is open and warm: what follows is about the answer, not a dial
    await rpc.request(to, DelayedEcho, { n: 0, delayMs: 0 }, { timeoutMs: 10_000 })
  }, 30_000)

  afterAll(async () => {
    await rpc?.stop()
    await node?.stop()
    peer?.stdin?.end()
    peer?.kill()
  })

  it('takes an answer that came in while the loop was stalled past the deadline', async () => {
    let stalledRounds = 0
    for (let n = 1; n <= 10 && stalledRounds < 3; n++) {
      // the peer answers after 100 ms; this loop stalls from 5 ms for 600 ms, past the 200 ms deadline
      let stalled = false
      const answer = rpc.request(to, DelayedEcho, { n, delayMs: 100 }, { timeoutMs: 200 })
      let answeredBeforeStall = false
      void answer.then(() => { answeredBeforeStall = !stalled }, () => {})
      // the stall runs outside the timers phase (as handling a message or a GC does), so the next iteration starts
      // with the overdue deadline
      setTimeout(() => { setImmediate(() => { stalled = true; stall(600) }) }, 5)
      await expect(answer).resolves.toEqual({ n })
      // a round whose stall began late (a loaded machine), after the answer was read, tested nothing
      if (!answeredBeforeStall) stalledRounds++
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    expect(stalledRounds).toBe(3)
  })

  it('still fails a request whose answer did not come by the deadline', async () => {
    await expect(rpc.request(to, DelayedEcho, { n: 9, delayMs: 2_000 }, { timeoutMs: 150 })).rejects.toBeInstanceOf(TimeoutError)
  })
})
