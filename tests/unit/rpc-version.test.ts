import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import Type from 'typebox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RPC_PROTOCOL, method } from '../../proto/index.ts'
import { PeerUnreachableError } from '../../src/interface/index.ts'
import { RpcService } from '../../src/mesh/index.ts'
import { createMeshNode, type MeshLibp2p } from '../../src/mesh/node.ts'
import { waitFor } from '../helpers/cluster.ts'
import type { LogLine } from './rpc-memory-network.ts'

const Echo = method('test.echo', Type.Object({}), Type.Object({}))

async function node (): Promise<MeshLibp2p> {
  const n = await createMeshNode({
    privateKey: await generateKeyPair('Ed25519'),
    psk: null,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    announce: [],
    maxConnections: 10,
    version: 'test',
    onUpgradeFailure: () => {}
  })
  await n.start()
  return n
}

// two real libp2p nodes on loopback: what identify stores and what libp2p throws are libp2p's, not a stand-in's
describe('mesh - rpc protocol versions', () => {
  let ours: MeshLibp2p
  let old: MeshLibp2p
  let rpc: RpcService
  const logs: LogLine[] = []

  beforeAll(async () => {
    ours = await node()
    old = await node()
    // a gridd of the previous RPC version: it handles only /grid/rpc/1.0.0
    await old.handle('/grid/rpc/1.0.0', stream => { stream.abort(new Error('not in this test')) })
    rpc = new RpcService({ libp2p: ours, logger: pino({ level: 'info' }, { write: (l: string) => { logs.push(JSON.parse(l) as LogLine) } }), registry: new Registry() })
    await rpc.start()
  })

  afterAll(async () => {
    await rpc?.stop()
    await ours?.stop()
    await old?.stop()
  })

  it('says in one log line that a peer speaks another version, naming both, on first contact', async () => {
    const addr = old.getMultiaddrs()[0]
    if (addr === undefined) throw new Error('the old node listens nowhere')
    await ours.dial(addr)
    const id = old.peerId.toString()
    const err = await rpc.request(id, Echo, {}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PeerUnreachableError)
    expect((err as Error).message).toBe(`${id} does not speak ${RPC_PROTOCOL}`)
    await rpc.request(id, Echo, {}).catch(() => {})
    const line = await waitFor('the log line', () => logs.find(l => l.level === 40), { timeoutMs: 5_000, intervalMs: 20 })
    expect(line).toMatchObject({ peer: id, ours: RPC_PROTOCOL, theirs: '/grid/rpc/1.0.0', msg: expect.stringMatching(/^peer speaks another RPC protocol version/) })
    expect(logs.filter(l => l.level >= 40)).toHaveLength(1)
  })
})
